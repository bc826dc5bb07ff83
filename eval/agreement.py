"""Agreement between two raters' levels on one criterion: what automated scoring is judged by."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import cohen_kappa_score


def quadratic_weighted_kappa(a: Sequence[int], b: Sequence[int], num_levels: int) -> float:
    """QWK over the criterion's whole scale, so a level nobody used still counts in the weights."""
    if len(a) == 0:
        return float("nan")
    if len(set(a) | set(b)) == 1:
        return 1.0  # both raters gave one and the same level throughout: perfect agreement
    return float(cohen_kappa_score(a, b, labels=list(range(num_levels)), weights="quadratic"))


def exact_agreement(a: Sequence[int], b: Sequence[int]) -> float:
    return float(np.mean(np.asarray(a) == np.asarray(b))) if len(a) else float("nan")


def adjacent_agreement(a: Sequence[int], b: Sequence[int]) -> float:
    """Share of items whose levels differ by at most one step."""
    return float(np.mean(np.abs(np.asarray(a) - np.asarray(b)) <= 1)) if len(a) else float("nan")


def agreement(a: Sequence[int], b: Sequence[int], num_levels: int) -> dict[str, float]:
    return {
        "qwk": quadratic_weighted_kappa(a, b, num_levels),
        "exact": exact_agreement(a, b),
        "adjacent": adjacent_agreement(a, b),
    }


def confusion(a: Sequence[int], b: Sequence[int], num_levels: int) -> np.ndarray:
    """Counts with rows = human level, columns = machine level."""
    matrix = np.zeros((num_levels, num_levels), dtype=int)
    for human, machine in zip(a, b, strict=True):
        matrix[human, machine] += 1
    return matrix
