"""Credential decisions: one "earned / not yet" per submission, from its criteria's levels.

A micro-credential is binary, so the decision, not a criterion's exact level, is what the
platform automates. Per criterion, P(met) is the calibrated probability mass at or above the
met level. Per submission (the items sharing submission_id and credential_id, one per
criterion), P(earned) first combines its criteria's P(met) under the award rule as if they
were independent (a Poisson-binomial tail), then is recalibrated on the calibration split,
grouped by submission (Platt scaling on the log-odds): the criteria of one submission are
scored on the same evidence by the same model, so they are not independent, and the
recalibration absorbs what independence gets wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from prescore.data.schema import AwardRule

EARNED, NOT_YET = "earned", "not_yet"
MIN_RECALIBRATION_SUBMISSIONS = 30  # fewer, or one decision only: keep the combined probability
EPSILON = 1e-6


def p_met(probabilities: np.ndarray, met_index: int) -> np.ndarray:
    """P(level >= met level) per row of calibrated level probabilities."""
    return np.asarray(np.atleast_2d(probabilities)[:, met_index:].sum(axis=1))


def p_at_least(p_met_each: Sequence[float], needed: int) -> float:
    """P(at least `needed` of the criteria are met), each met independently with its own
    probability: the Poisson-binomial tail, by dynamic programming over the criteria."""
    counts = np.zeros(len(p_met_each) + 1)
    counts[0] = 1.0
    for p in p_met_each:
        counts[1:] = counts[1:] * (1 - p) + counts[:-1] * p
        counts[0] *= 1 - p
    return float(counts[needed:].sum())


def combined_p_earned(p_met_each: Sequence[float], award: AwardRule, criteria: int) -> float:
    """P(earned) if the criteria were independent; `criteria` is the rubric's count."""
    return p_at_least(p_met_each, award.required(criteria))


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(p, EPSILON, 1 - EPSILON)
    return np.asarray(np.log(clipped / (1 - clipped)))


@dataclass(frozen=True)
class Recalibration:
    """P(earned) = sigmoid(slope * logit(p) + intercept); (1, 0) leaves p as it is."""

    slope: float = 1.0
    intercept: float = 0.0

    def apply(self, p: np.ndarray) -> np.ndarray:
        z = self.slope * _logit(np.asarray(p, dtype=float)) + self.intercept
        return np.asarray(1 / (1 + np.exp(-z)))


def fit_recalibration(p: np.ndarray, earned: np.ndarray) -> Recalibration:
    """Platt scaling of the combined probability against the humans' decisions, one row per
    calibration submission; identity where there is too little to fit."""
    earned = np.asarray(earned, dtype=int)
    if len(earned) < MIN_RECALIBRATION_SUBMISSIONS or len(set(earned.tolist())) < 2:
        return Recalibration()
    model = LogisticRegression(C=100.0).fit(_logit(np.asarray(p)).reshape(-1, 1), earned)
    return Recalibration(float(model.coef_[0, 0]), float(model.intercept_[0]))


def decision_of(p_earned: float) -> tuple[str, float]:
    """The suggested decision and its confidence, the probability that it is right."""
    return (EARNED, p_earned) if p_earned >= 0.5 else (NOT_YET, 1 - p_earned)


def cohen_kappa(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Cohen's kappa of two raters' binary decisions; NaN (undefined, so every gate on it
    fails) where there are none or either rater gave one decision only: agreement beyond
    chance cannot be told from a rater who never varies."""
    x, y = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if len(x) == 0 or len(set(x.tolist())) < 2 or len(set(y.tolist())) < 2:
        return float("nan")
    observed = float(np.mean(x == y))
    chance = float(x.mean() * y.mean() + (1 - x.mean()) * (1 - y.mean()))
    return (observed - chance) / (1 - chance)
