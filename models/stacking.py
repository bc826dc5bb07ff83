"""Gradient boosting over the ridge's out-of-fold scores, the writing features and words.

A linear model weighs length linearly; human scores rise with length and then flatten, and
how much a long essay earns depends on how well it is written. A short answer earns a level
for the number of key ideas it names, which no weighting of its words can count. Trees learn
those bends: they read the ridge's score, a ridge per feature block (words, characters,
encoder vectors), the other criteria's scores on the same text, the writing features and
which common words a text holds (models/essay.py `booster_inputs`). They are fitted on the
ridges' out-of-fold scores, as stacking must be, and their own out-of-fold predictions are
what the cut points and the spread are then fitted on. LightGBM is an optional dependency:
`pip install lightgbm`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.model_selection import KFold

BOOSTER_PARAMS: dict[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_child_samples": 20,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "n_jobs": 1,
    "verbose": -1,
}


def booster(seed: int) -> Any:
    try:
        from lightgbm import LGBMRegressor
    except ImportError:
        raise ValueError("stack='lightgbm' needs LightGBM: pip install lightgbm") from None
    return LGBMRegressor(random_state=seed, **BOOSTER_PARAMS)


def fit_stacked(
    inputs: np.ndarray, labels: np.ndarray, folds: int, seed: int
) -> tuple[Any, np.ndarray]:
    """The booster fitted on all `inputs` (first column: the ridge's out-of-fold score), and
    its own out-of-fold predictions."""
    out = np.zeros(len(labels))
    splitter = KFold(n_splits=min(folds, len(labels)), shuffle=True, random_state=seed + 1)
    for train, held in splitter.split(inputs):
        out[held] = booster(seed).fit(inputs[train], labels[train]).predict(inputs[held])
    return booster(seed).fit(inputs, labels), out
