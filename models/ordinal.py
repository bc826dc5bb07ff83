"""From a regression score to a level and to level probabilities that agree with it.

- Cut points: the AES literature regresses the score and then moves the boundaries between
  levels to where quadratic weighted kappa is highest on out-of-fold predictions (the
  "optimised rounder"); plain rounding loses about 0.02-0.05 QWK on ASAP.
- Probabilities: the levels get a discrete Gaussian, p_k proportional to
  exp(-(k - c)^2 / (2 spread^2)), whose centre c stays within half a level of the cut-point
  level (so that level is the most probable: the suggested level, routing's argmax and QWK
  all see one level) and is placed there so the expected level is the regression score (what
  RMSE rewards) wherever the cut-point level allows. The spread is fitted by likelihood on the
  same out-of-fold scores.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

CUT_GRID = 41  # candidate positions per cut point and pass
CUT_PASSES = 3
MIN_GAP = 1e-3  # cut points stay strictly increasing, so every level keeps an interval
MIN_SPREAD = 0.2  # in level positions: never claim certainty from a tiny fit
MAX_SPREAD = 20.0
BISECTIONS = 40


def qwk(predicted: np.ndarray, truth: np.ndarray, num_levels: int) -> float:
    """Quadratic weighted kappa of two level arrays on 0..num_levels-1 (1.0 where both are
    constant and equal, 0.0 where the truth is constant and the prediction is not)."""
    if num_levels < 2 or len(truth) == 0:
        return 1.0
    observed = np.bincount(
        predicted * num_levels + truth, minlength=num_levels * num_levels
    ).reshape(num_levels, num_levels)
    a = observed.sum(axis=1)
    b = observed.sum(axis=0)
    levels = np.arange(num_levels)
    weights = (levels[:, None] - levels[None, :]) ** 2
    expected = np.outer(a, b) / len(truth)
    denominator = float((weights * expected).sum())
    if denominator == 0:
        return 1.0 if (predicted == truth).all() else 0.0
    return 1.0 - float((weights * observed).sum()) / denominator


def levels_from_cut_points(scores: np.ndarray, cut_points: np.ndarray) -> np.ndarray:
    """Level k where cut k-1 < score <= cut k: the number of cut points below the score."""
    return np.searchsorted(cut_points, scores, side="left").astype(int)


def rounding_cut_points(num_levels: int) -> np.ndarray:
    """k + 0.5 between levels k and k+1: plain rounding of a level-index regression."""
    return np.arange(num_levels - 1, dtype=float) + 0.5


def fit_cut_points(scores: np.ndarray, labels: np.ndarray, num_levels: int) -> np.ndarray:
    """Increasing cut points that maximise QWK of the levels they give on (scores, labels),
    by coordinate search from plain rounding; a cut moves only where QWK strictly rises, so
    with too little data they stay at rounding."""
    cuts = rounding_cut_points(num_levels)
    if num_levels < 2 or len(np.unique(labels)) < 2:
        return cuts
    labels = np.asarray(labels, dtype=int)
    best = qwk(levels_from_cut_points(scores, cuts), labels, num_levels)
    for _ in range(CUT_PASSES):
        moved = False
        for k in range(len(cuts)):
            low = cuts[k - 1] + MIN_GAP if k > 0 else cuts[k] - 1.0
            high = cuts[k + 1] - MIN_GAP if k + 1 < len(cuts) else cuts[k] + 1.0
            for candidate in np.linspace(low, high, CUT_GRID):
                trial = cuts.copy()
                trial[k] = candidate
                value = qwk(levels_from_cut_points(scores, trial), labels, num_levels)
                if value > best + 1e-12:
                    best, cuts, moved = value, trial, True
        if not moved:
            break
    return cuts


def discrete_gaussian(position: np.ndarray, num_levels: int, spread: float) -> np.ndarray:
    """(items, num_levels): p_k proportional to exp(-(k - position)^2 / (2 spread^2))."""
    levels = np.arange(num_levels)
    logits = -((levels[None, :] - position[:, None]) ** 2) / (2 * spread**2)
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits)
    return np.asarray(probabilities / probabilities.sum(axis=1, keepdims=True))


def level_probabilities(
    scores: np.ndarray, cut_points: np.ndarray, num_levels: int, spread: float
) -> np.ndarray:
    """(items, num_levels): a discrete Gaussian over level positions whose most likely level
    is the cut-point level and whose expected level is the regression score wherever that
    level allows it. Rows sum to one and their argmax is `levels_from_cut_points`.

    The regression estimates the expected level (what RMSE and MCRMSE score), the cut points
    the level QWK rewards; they can disagree near a cut point. The centre is therefore searched
    (by bisection: the mean rises with the centre) inside the cut-point level's interval of
    positions, for the one whose mean is the score, and held at that interval's end where no
    centre inside reaches it."""
    scores = np.asarray(scores, dtype=float)
    level = levels_from_cut_points(scores, cut_points)
    far = num_levels + 10 * spread  # beyond it the end level's mean no longer moves
    # the lower end belongs to the level below: ties in argmax go to the lower level
    low = np.where(level > 0, level - 0.5 + 1e-9, -far)
    high = np.where(level < num_levels - 1, level + 0.5, far)
    target = np.clip(scores, 0, num_levels - 1)
    levels = np.arange(num_levels)
    for _ in range(BISECTIONS):
        middle = (low + high) / 2
        mean = discrete_gaussian(middle, num_levels, spread) @ levels
        below = mean < target
        low = np.where(below, middle, low)
        high = np.where(below, high, middle)
    return discrete_gaussian((low + high) / 2, num_levels, spread)


def fit_spread(
    scores: np.ndarray, labels: np.ndarray, cut_points: np.ndarray, num_levels: int
) -> float:
    """The spread that gives the true levels the highest likelihood on out-of-fold scores."""
    if len(labels) < 2 or num_levels < 2:
        return 1.0
    rows = np.arange(len(labels))

    def nll(log_spread: float) -> float:
        p = level_probabilities(scores, cut_points, num_levels, float(np.exp(log_spread)))
        return float(-np.mean(np.log(np.clip(p[rows, labels], 1e-12, None))))

    best = minimize_scalar(nll, bounds=(np.log(MIN_SPREAD), np.log(MAX_SPREAD)), method="bounded")
    return float(np.exp(best.x))
