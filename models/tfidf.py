"""TF-IDF features and one head per criterion (ordinal ridge or logistic): the fast baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import joblib
import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer

from prescore.models.heads import make_heads
from prescore.models.inputs import levels_per_criterion, pad_probabilities
from prescore.models.scorer import Scorer


class TfidfScorer(Scorer):
    kind = "tfidf"

    def __init__(
        self,
        max_features: int = 50_000,
        ngram_max: int = 2,
        min_df: int = 2,
        head: str = "ridge",
        alpha: float = 1.0,
    ) -> None:
        self.max_features = max_features
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.head = head  # "ridge" (ordinal) or "logistic"; see models/heads.py
        self.alpha = alpha

    def check_params(self) -> None:
        make_heads(self.head, self.alpha)  # raises on an unknown head

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:
        self.num_levels_ = levels_per_criterion(X)
        self.vectorizer_ = TfidfVectorizer(
            max_features=self.max_features,
            ngram_range=(1, self.ngram_max),
            min_df=min(self.min_df, len(X)),
            sublinear_tf=True,
        )
        features = self.vectorizer_.fit_transform(X["text"].tolist())
        self.heads_ = make_heads(self.head, self.alpha).fit(
            features, np.asarray(y), self.keys(X), self.num_levels_
        )
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        self.check_input(X)
        features = self.vectorizer_.transform(X["text"].tolist())
        return pad_probabilities(self.heads_.predict_proba(features, self.keys(X)), self.width)

    def _save_state(self, folder: Path) -> None:
        joblib.dump({"vectorizer": self.vectorizer_, "heads": self.heads_}, folder / "tfidf.joblib")

    @classmethod
    def _load_state(cls, folder: Path, params: dict[str, Any]) -> Self:
        scorer = cls(**params)
        state = joblib.load(folder / "tfidf.joblib")
        scorer.vectorizer_, scorer.heads_ = state["vectorizer"], state["heads"]
        return scorer
