"""Agreement between two raters' levels on one criterion: what automated scoring is judged by."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import cohen_kappa_score


def quadratic_weighted_kappa(a: Sequence[int], b: Sequence[int], num_levels: int) -> float:
    """QWK over the criterion's whole scale, so a level nobody used still counts in the weights."""
    if len(a) == 0 or len(set(a) | set(b)) == 1:
        return float("nan")  # one level throughout: agreement beyond chance is undefined
    return float(cohen_kappa_score(a, b, labels=list(range(num_levels)), weights="quadratic"))


def exact_agreement(a: Sequence[int], b: Sequence[int]) -> float:
    return float(np.mean(np.asarray(a) == np.asarray(b))) if len(a) else float("nan")


def adjacent_agreement(a: Sequence[int], b: Sequence[int]) -> float:
    """Share of items whose levels differ by at most one step."""
    return float(np.mean(np.abs(np.asarray(a) - np.asarray(b)) <= 1)) if len(a) else float("nan")


def confusion(a: Sequence[int], b: Sequence[int], num_levels: int) -> np.ndarray:
    """Counts with rows = human level, columns = machine level."""
    matrix = np.zeros((num_levels, num_levels), dtype=int)
    for human, machine in zip(a, b, strict=True):
        matrix[human, machine] += 1
    return matrix


def pearson(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def standardised_mean_difference(machine: Sequence[float], human: Sequence[float]) -> float:
    """(mean machine - mean human) / pooled SD, as in Williamson, Xi & Breyer (2012)."""
    if len(machine) == 0:
        return float("nan")
    pooled = (
        np.sqrt((np.var(machine, ddof=1) + np.var(human, ddof=1)) / 2) if len(machine) > 1 else 0.0
    )
    difference = float(np.mean(machine) - np.mean(human))
    if pooled == 0:
        return 0.0 if difference == 0 else float("inf") * np.sign(difference)
    return difference / float(pooled)
