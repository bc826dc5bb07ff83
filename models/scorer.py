"""What every scorer shares: scikit-learn style fit / predict_proba / predict, and save / load.

X is a table with `text`, `credential_id` and `criterion_id` (plus `num_levels` to fit); y is
the index of the final level. predict_proba has one row per item and one column per level of
the widest scale, zero beyond each item's own scale.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from prescore.models.inputs import INPUT_COLUMNS, criterion_keys, unknown_criteria

SCORER_FILE = "scorer.json"


class Scorer:
    kind: ClassVar[str]
    num_levels_: dict[str, int]

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments as stored, read off the signature as scikit-learn does."""
        names = [n for n in inspect.signature(type(self).__init__).parameters if n != "self"]
        return {name: getattr(self, name) for name in names}

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:
        raise NotImplementedError

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

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
                {"kind": self.kind, "params": self.get_params(), "num_levels": self.num_levels_},
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
    from prescore.models.tfidf import TfidfScorer
    from prescore.models.transformer import TransformerScorer

    classes: list[type[Scorer]] = [TfidfScorer, EmbeddingScorer, TransformerScorer, EnsembleScorer]
    return {cls.kind: cls for cls in classes}


def make_scorer(kind: str, params: dict[str, Any]) -> Scorer:
    """A scorer of `kind` built from `params`; ValueError names whatever cannot work, before
    any training starts."""
    classes = scorer_classes()
    if kind not in classes:
        raise ValueError(f"unknown scorer kind {kind!r}; known: {sorted(classes)}")
    cls = classes[kind]
    accepted = cls().get_params()
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for {kind}; known: {sorted(accepted)}")
    try:
        scorer = cls(**params)
    except TypeError as error:
        raise ValueError(f"bad parameter for {kind}: {error}") from None
    check = getattr(scorer, "check_params", None)
    if check is not None:
        check()
    return scorer


def load_scorer(folder: Path) -> Scorer:
    """A scorer saved by `Scorer.save`, of whichever kind it is."""
    meta = json.loads((folder / SCORER_FILE).read_text())
    scorer = scorer_classes()[meta["kind"]]._load_state(folder, meta["params"])
    scorer.num_levels_ = {k: int(v) for k, v in meta["num_levels"].items()}
    return scorer
