"""Per-criterion heads over fixed features (TF-IDF, frozen embeddings), and the scorer
shape both of those share.

- "ridge": one ridge regression per criterion on the level index, turned into level
  probabilities. Regressing on the level index respects the order of levels (a miss by one
  costs less than a miss by three), and a normal distribution around the prediction, with the
  spread of its errors, gives a probability per level. With alpha None (the default) each
  criterion's strength is chosen by leave-one-out over ALPHA_GRID, which scikit-learn's RidgeCV
  computes in closed form, and the spread is the leave-one-out error, not the training
  residual, which a weakly regularised fit shrinks.
- "logistic": one multinomial logistic regression per criterion (see LogisticHeads).
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.stats import norm
from sklearn.linear_model import Ridge, RidgeCV

from prescore.models.inputs import levels_per_criterion, pad_probabilities
from prescore.models.length import EvidenceLength
from prescore.models.scorer import EvalSet, Scorer

ALPHA_GRID = np.logspace(-2, 3, 11)
LOGISTIC_ALPHA = 0.1  # the logistic heads' strength when none is given
MIN_SPREAD = 0.25  # never claim certainty from a tiny fit


class OrdinalRidgeHeads:
    def __init__(self, alpha: float | None = None) -> None:
        self.alpha = alpha  # None: chosen per criterion by leave-one-out

    def fit(
        self, features: np.ndarray, y: np.ndarray, keys: np.ndarray, num_levels: dict[str, int]
    ) -> OrdinalRidgeHeads:
        self.num_levels_ = dict(num_levels)
        self.heads_: dict[str, tuple[Ridge | RidgeCV, float]] = {}
        for key in sorted(set(keys)):
            rows = keys == key
            self.heads_[str(key)] = self._fit_one(features[rows], y[rows])
        return self

    def _fit_one(self, features: np.ndarray, y: np.ndarray) -> tuple[Ridge | RidgeCV, float]:
        """The regression and the spread of its errors on items it did not see."""
        if self.alpha is None and len(y) > 2:
            tuned = RidgeCV(alphas=ALPHA_GRID, store_cv_results=True).fit(features, y)
            best = int(np.argmin(np.abs(ALPHA_GRID - tuned.alpha_)))
            spread = float(np.sqrt(np.mean(tuned.cv_results_[:, best])))
            return tuned, max(spread, MIN_SPREAD)
        ridge = Ridge(alpha=1.0 if self.alpha is None else self.alpha).fit(features, y)
        residual = y - ridge.predict(features)
        return ridge, max(float(np.std(residual)), MIN_SPREAD)

    def chosen_alphas(self) -> dict[str, float]:
        """Each criterion's regularisation strength, as given or as leave-one-out chose it."""
        return {
            key: float(ridge.alpha_ if isinstance(ridge, RidgeCV) else ridge.alpha)
            for key, (ridge, _) in self.heads_.items()
        }

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

    def __init__(self, alpha: float | None = None) -> None:
        # regularisation strength, as for the ridge: C = 1 / alpha (None: LOGISTIC_ALPHA)
        self.alpha = alpha

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
            self.heads_[str(key)] = LogisticRegression(
                C=1 / (self.alpha or LOGISTIC_ALPHA), max_iter=2000
            ).fit(features[rows], y[rows])
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


def make_heads(head: str, alpha: float | None) -> OrdinalRidgeHeads | LogisticHeads:
    if alpha is not None and not alpha > 0:
        raise ValueError(f"alpha must be above 0, or left out to be chosen per criterion: {alpha}")
    if head == "ridge":
        return OrdinalRidgeHeads(alpha)
    if head == "logistic":
        return LogisticHeads(alpha)
    raise ValueError(f"head must be 'ridge' or 'logistic', not {head!r}")


class HeadsScorer(Scorer):
    """A scorer whose text features (and, if asked, evidence length) feed one head per
    criterion; subclasses say how text becomes features."""

    head: str
    alpha: float | None
    length_features: bool

    def text_features(self, texts: list[str], fitting: bool) -> Any:
        """A matrix with one row per text, dense or sparse; `fitting` on the training texts."""
        raise NotImplementedError

    def check_params(self) -> None:
        make_heads(self.head, self.alpha)  # raises on an unknown head or a bad alpha

    def features(self, texts: list[str], fitting: bool = False) -> Any:
        features = self.text_features(texts, fitting)
        if not self.length_features:
            return features
        if fitting:
            self.length_ = EvidenceLength().fit(texts)
        lengths = self.length_.transform(texts)
        columns: list[Any] = [features, lengths]  # dense or sparse text features, then lengths
        if sparse.issparse(features):
            return sparse.hstack(columns).tocsr()
        return np.hstack(columns)

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        *,
        eval_set: EvalSet | None = None,
        callbacks: list[Any] | None = None,
    ) -> Self:
        """Heads fit in closed form or to convergence, with no epochs to watch: `eval_set` and
        `callbacks` are accepted, so any scorer fits the same way, and left unused."""
        self.num_levels_ = levels_per_criterion(X)
        features = self.features(X["text"].tolist(), fitting=True)
        self.heads_ = make_heads(self.head, self.alpha).fit(
            features, np.asarray(y), self.keys(X), self.num_levels_
        )
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        self.check_input(X)
        features = self.features(X["text"].tolist())
        return pad_probabilities(self.heads_.predict_proba(features, self.keys(X)), self.width)
