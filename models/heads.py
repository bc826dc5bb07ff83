"""Per-criterion heads over fixed features (TF-IDF, frozen embeddings).

- "ridge": one ridge regression per criterion on the level index, turned into level
  probabilities. Regressing on the level index respects the order of levels (a miss by one
  costs less than a miss by three), and a normal distribution around the prediction, with the
  spread of the training residuals, gives a probability per level.
- "logistic": one multinomial logistic regression per criterion (see LogisticHeads).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import norm
from sklearn.linear_model import Ridge


class OrdinalRidgeHeads:
    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(
        self, features: np.ndarray, y: np.ndarray, keys: np.ndarray, num_levels: dict[str, int]
    ) -> OrdinalRidgeHeads:
        self.num_levels_ = dict(num_levels)
        self.heads_: dict[str, tuple[Ridge, float]] = {}
        for key in sorted(set(keys)):
            rows = keys == key
            ridge = Ridge(alpha=self.alpha).fit(features[rows], y[rows])
            residual = y[rows] - ridge.predict(features[rows])
            spread = float(max(np.std(residual), 0.25))  # never claim certainty from a tiny fit
            self.heads_[str(key)] = (ridge, spread)
        return self

    def predict_proba(self, features: np.ndarray, keys: np.ndarray) -> list[np.ndarray]:
        rows_out: list[np.ndarray] = [np.empty(0)] * len(keys)
        for key in set(keys):
            rows = np.flatnonzero(keys == key)
            ridge, spread = self.heads_[str(key)]
            centre = ridge.predict(features[rows])
            edges = np.arange(self.num_levels_[str(key)] + 1) - 0.5
            edges[0], edges[-1] = -np.inf, np.inf
            cumulative = norm.cdf((edges[None, :] - centre[:, None]) / spread)
            probabilities = np.diff(cumulative, axis=1)
            for row, p in zip(rows, probabilities, strict=True):
                rows_out[row] = p / p.sum()
        return rows_out


class LogisticHeads:
    """One multinomial logistic regression per criterion: sharper probabilities than the
    ridge, at the cost of ignoring the order of levels.

    Levels a criterion never showed in training get probability zero.
    """

    def __init__(self, alpha: float = 0.1) -> None:
        self.alpha = alpha  # regularisation strength, as for the ridge: C = 1 / alpha

    def fit(
        self, features: np.ndarray, y: np.ndarray, keys: np.ndarray, num_levels: dict[str, int]
    ) -> LogisticHeads:
        from sklearn.linear_model import LogisticRegression

        self.num_levels_ = dict(num_levels)
        self.heads_: dict[str, Any] = {}
        for key in sorted(set(keys)):
            rows = keys == key
            levels = np.unique(y[rows])
            if len(levels) == 1:
                self.heads_[str(key)] = int(levels[0])  # one level seen: predict it
                continue
            self.heads_[str(key)] = LogisticRegression(C=1 / self.alpha, max_iter=2000).fit(
                features[rows], y[rows]
            )
        return self

    def predict_proba(self, features: np.ndarray, keys: np.ndarray) -> list[np.ndarray]:
        rows_out: list[np.ndarray] = [np.empty(0)] * len(keys)
        for key in set(keys):
            rows = np.flatnonzero(keys == key)
            head = self.heads_[str(key)]
            full = np.zeros((len(rows), self.num_levels_[str(key)]))
            if isinstance(head, int):
                full[:, head] = 1.0
            else:
                full[:, head.classes_] = head.predict_proba(features[rows])
            for row, p in zip(rows, full, strict=True):
                rows_out[row] = p
        return rows_out


def make_heads(head: str, alpha: float) -> OrdinalRidgeHeads | LogisticHeads:
    if head == "ridge":
        return OrdinalRidgeHeads(alpha)
    if head == "logistic":
        return LogisticHeads(alpha)
    raise ValueError(f"head must be 'ridge' or 'logistic', not {head!r}")
