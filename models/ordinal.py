"""From a regression score to a level and to level probabilities that agree with it.

- Cut points: the AES literature regresses the score and then moves the boundaries between
  levels to where quadratic weighted kappa is highest on out-of-fold predictions (the
  "optimised rounder"); plain rounding loses about 0.02-0.05 QWK on ASAP.
- Probabilities: the score is mapped piecewise-linearly so that every cut point lands halfway
  between two level positions (cut k at k + 0.5), and the levels get a discrete Gaussian
  around that position, p_k proportional to exp(-(k - u)^2 / (2 spread^2)), its spread fitted
  by likelihood on the same out-of-fold scores. Its most probable level is the level nearest
  u, which is exactly the level the cut points give: the suggested level, routing's argmax and
  QWK all see one level, and the probabilities only add how sure it is.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

CUT_GRID = 41  # candidate positions per cut point and pass
CUT_PASSES = 3
MIN_GAP = 1e-3  # cut points stay strictly increasing, so every level keeps an interval
MIN_SPREAD = 0.2  # in level positions: never claim certainty from a tiny fit
MAX_SPREAD = 20.0


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


def level_position(scores: np.ndarray, cut_points: np.ndarray) -> np.ndarray:
    """The score mapped so that cut k sits at k + 0.5: piecewise linear between cut points,
    slope one (level units, as the regression's) beyond the first and last."""
    scores = np.asarray(scores, dtype=float)
    if len(cut_points) == 0:
        return np.zeros_like(scores)
    anchors = np.arange(len(cut_points)) + 0.5
    inside = np.interp(scores, cut_points, anchors)
    below = anchors[0] + (scores - cut_points[0])
    above = anchors[-1] + (scores - cut_points[-1])
    return np.where(scores < cut_points[0], below, np.where(scores > cut_points[-1], above, inside))


def level_probabilities(
    scores: np.ndarray, cut_points: np.ndarray, num_levels: int, spread: float
) -> np.ndarray:
    """(items, num_levels): a discrete Gaussian over level positions around each score's
    position; rows sum to one and their argmax is `levels_from_cut_points`."""
    # held inside the cut-point level's interval (whose lower end belongs to the level below),
    # so rounding in the mapping never moves a score that sits on a cut point across it
    level = levels_from_cut_points(scores, cut_points)
    low = np.where(level > 0, level - 0.5 + 1e-9, -np.inf)
    high = np.where(level < num_levels - 1, level + 0.5, np.inf)
    position = np.clip(level_position(scores, cut_points), low, high)
    levels = np.arange(num_levels)
    logits = -((levels[None, :] - position[:, None]) ** 2) / (2 * spread**2)
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits)
    return np.asarray(probabilities / probabilities.sum(axis=1, keepdims=True))


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
