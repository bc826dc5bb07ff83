"""TF-IDF features and one head per criterion (ordinal ridge or logistic): the fast baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import joblib
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from prescore.models.heads import HeadsScorer


class TfidfScorer(HeadsScorer):
    kind = "tfidf"

    def __init__(
        self,
        max_features: int = 50_000,
        ngram_max: int = 2,
        min_df: int = 2,
        head: str = "ridge",
        alpha: float | None = None,
        length_features: bool = False,
    ) -> None:
        self.max_features = max_features
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.head = head  # "ridge" (ordinal) or "logistic"; see models/heads.py
        self.alpha = alpha  # None: chosen per criterion (see models/heads.py)
        self.length_features = length_features  # see models/length.py

    @property
    def runtime(self) -> str:
        return "scikit-learn"

    def text_features(self, texts: list[str], fitting: bool) -> sparse.csr_matrix:
        if fitting:
            self.vectorizer_ = TfidfVectorizer(
                max_features=self.max_features,
                ngram_range=(1, self.ngram_max),
                min_df=min(self.min_df, len(texts)),
                sublinear_tf=True,
            )
            return self.vectorizer_.fit_transform(texts)
        return self.vectorizer_.transform(texts)

    def _save_state(self, folder: Path) -> None:
        state = {"vectorizer": self.vectorizer_, "heads": self.heads_}
        length = self.length_ if self.length_features else None
        joblib.dump({**state, "length": length}, folder / "tfidf.joblib")

    @classmethod
    def _load_state(cls, folder: Path, params: dict[str, Any]) -> Self:
        scorer = cls(**params)
        state = joblib.load(folder / "tfidf.joblib")
        scorer.vectorizer_, scorer.heads_ = state["vectorizer"], state["heads"]
        if state["length"] is not None:
            scorer.length_ = state["length"]
        return scorer
