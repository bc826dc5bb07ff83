"""What every scorer shares: scikit-learn's estimator contract (get_params / set_params /
clone, fit / predict_proba / predict), and save / load.

X is a table with `text`, `credential_id` and `criterion_id` (plus `num_levels` to fit); y is
the index of the final level. predict_proba has one row per item and one column per level of
the widest scale, zero beyond each item's own scale.

Hyper-parameters are constructor arguments stored as given; what a single fit needs besides
the training data (the held-out set, Trainer callbacks) arrives as fit parameters, so a
scorer is built once, from its config, and never patched afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from prescore.models.inputs import INPUT_COLUMNS, count_tokens, criterion_keys, unknown_criteria

SCORER_FILE = "scorer.json"

# (X, y) held out from training: per-epoch loss and best epoch for the transformer, the
# pooling weights for the ensemble
EvalSet = tuple[pd.DataFrame, np.ndarray]


class Scorer(BaseEstimator):
    kind: ClassVar[str]
    # True where fit chooses something on `eval_set` (an epoch, pooling weights): those rows
    # then certify nothing (eval/protocol.py)
    selects_on_eval_set: ClassVar[bool] = False
    num_levels_: dict[str, int]

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        *,
        eval_set: EvalSet | None = None,
        callbacks: list[Any] | None = None,
    ) -> Self:
        """Fit on (X, y). `eval_set` and `callbacks` (Hugging Face Trainer callbacks: progress,
        MLflow logging) serve scorers that train for epochs; the others accept and ignore them,
        so one call fits any kind."""
        raise NotImplementedError

    def check_params(self) -> None:
        """Refuse settings that could only fail later, mid-training; a config check calls it."""

    def fit_summary(self) -> dict[str, float]:
        """Numbers the last fit reports beside the evaluation (optimizer steps, processes,
        pooling weights), for MLflow; none by default."""
        return {}

    def base_tokenizer(self) -> Any:
        """The base model's tokenizer, for the language check (models/language.py); None for a
        scorer without a base model (TF-IDF learns its vocabulary from the evidence)."""
        return None

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens per text as this scorer reads them (the service's budget and its batches are
        counted in these): the base tokenizer's, without special tokens, or words."""
        return count_tokens(texts, self.base_tokenizer())

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    @property
    def runtime(self) -> str:
        """What computes the probabilities, as responses and /credentials name it."""
        return "python"

    def use_graph(self) -> Self:
        """For serving: compute without holding the GIL where the scorer can (a transformer's
        traced encoder, models/encoder_graph.py); as it is elsewhere."""
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.predict_proba(X).argmax(axis=1))

    def check_input(self, X: pd.DataFrame) -> None:
        missing = [c for c in INPUT_COLUMNS if c not in X]
        if missing:
            raise ValueError(f"input lacks column(s) {missing}; scorers need {list(INPUT_COLUMNS)}")
        unknown = unknown_criteria(X, self.num_levels_)
        if unknown:
            raise ValueError(f"this model was not trained on criteria {unknown}")

    @property
    def width(self) -> int:
        return max(self.num_levels_.values())

    def keys(self, X: pd.DataFrame) -> np.ndarray:
        return criterion_keys(X)

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        self._save_state(folder)
        (folder / SCORER_FILE).write_text(
            json.dumps(
                {
                    "kind": self.kind,
                    "params": self.get_params(deep=False),
                    "num_levels": self.num_levels_,
                },
                indent=2,
            )
        )
        return folder

    def _save_state(self, folder: Path) -> None:
        raise NotImplementedError

    @classmethod
    def _load_state(cls, folder: Path, params: dict[str, Any]) -> Self:
        raise NotImplementedError


def scorer_classes() -> dict[str, type[Scorer]]:
    """Every scorer kind a config may name, by its `kind`."""
    from prescore.models.embeddings import EmbeddingScorer
    from prescore.models.ensemble import EnsembleScorer
    from prescore.models.essay import EssayScorer
    from prescore.models.tfidf import TfidfScorer
    from prescore.models.transformer import TransformerScorer

    classes: list[type[Scorer]] = [
        TfidfScorer,
        EssayScorer,
        EmbeddingScorer,
        TransformerScorer,
        EnsembleScorer,
    ]
    return {cls.kind: cls for cls in classes}


def scorer_class(kind: str) -> type[Scorer]:
    classes = scorer_classes()
    if kind not in classes:
        raise ValueError(f"unknown scorer kind {kind!r}; known: {sorted(classes)}")
    return classes[kind]


def make_scorer(kind: str, params: dict[str, Any]) -> Scorer:
    """A scorer of `kind` built once from `params`; ValueError names whatever cannot work,
    before any training starts. Names are checked against the class's constructor, so an
    unknown one is reported as such rather than as a TypeError."""
    cls = scorer_class(kind)
    accepted = cls._get_param_names()
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for {kind}; known: {sorted(accepted)}")
    scorer = cls(**params)
    scorer.check_params()
    return scorer


def load_scorer(folder: Path) -> Scorer:
    """A scorer saved by `Scorer.save`, of whichever kind it is."""
    meta = json.loads((folder / SCORER_FILE).read_text())
    scorer = scorer_classes()[meta["kind"]]._load_state(folder, meta["params"])
    scorer.num_levels_ = {k: int(v) for k, v in meta["num_levels"].items()}
    return scorer
