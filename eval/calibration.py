"""Calibrated confidence: temperature scaling per criterion, fitted on the calibration split.

A confidence of 0.8 should be right 80% of the time; the routing threshold is only as good as
that. Temperature scaling (Guo et al. 2017) keeps the ranking of levels and fixes over- or
under-confidence with one number per criterion; the fit minimises negative log-likelihood.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

EPSILON = 1e-12


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """p ** (1/T), renormalised over each row's own levels (zeros stay zero)."""
    logs = np.log(np.clip(probabilities, EPSILON, None)) / temperature
    logs[probabilities <= 0] = -np.inf
    logs -= logs.max(axis=1, keepdims=True)
    scaled = np.exp(logs)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises negative log-likelihood of the true levels."""
    if len(labels) < 2:
        return 1.0

    def nll(log_t: float) -> float:
        scaled = apply_temperature(probabilities, float(np.exp(log_t)))
        return float(
            -np.mean(np.log(np.clip(scaled[np.arange(len(labels)), labels], EPSILON, None)))
        )

    best = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(best.x))


def reliability_bins(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = 10
) -> list[tuple[float, float, float]]:
    """(mean confidence, share correct, share of items) for each non-empty equal-width bin."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    which = np.clip(np.digitize(confidence, np.linspace(0, 1, bins + 1)[1:-1]), 0, bins - 1)
    return [
        (float(confidence[m].mean()), float(correct[m].mean()), float(m.mean()))
        for m in (which == b for b in range(bins))
        if m.any()
    ]


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = 10
) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    if len(labels) == 0:
        return float("nan")
    return sum(
        w * abs(acc - conf) for conf, acc, w in reliability_bins(probabilities, labels, bins)
    )


def reliability_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], bins: int = 10) -> Any:
    """Accuracy against confidence per bin, one line per named set of probabilities."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    for name, (probabilities, labels) in curves.items():
        points = reliability_bins(probabilities, labels, bins) if len(labels) else []
        ece = expected_calibration_error(probabilities, labels, bins)
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        axis.plot(xs, ys, marker="o", label=f"{name} (ECE {ece:.3f})")
    axis.set_xlabel("confidence")
    axis.set_ylabel("share correct")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def conformal_set_threshold(
    probabilities: np.ndarray, labels: np.ndarray, coverage: float
) -> float:
    """Split-conformal (LAC) score threshold: sets {k : 1 - p_k <= q} hold the true level with
    probability >= coverage on exchangeable new items (Sadinle et al. 2019)."""
    n = len(labels)
    if n == 0:
        return 1.0
    scores = 1 - probabilities[np.arange(n), labels]
    rank = int(np.ceil((n + 1) * coverage))
    return 1.0 if rank > n else float(np.sort(scores)[rank - 1])
