"""Choose the confidence above which a prediction may go without a human look, with a guarantee.

"Auto-score when confidence >= t" is a binary decision whose precision is the share of auto
items the model got right. MAPIE's BinaryClassificationController (Learn-then-Test, Angelopoulos
et al. 2021) picks t so that this precision is at least 1 - target with probability
`confidence_level` over the draw of the calibration data, and among the thresholds that
qualify, the one that auto-scores the most (highest recall of correct items).

Thresholds are tested in a fixed sequence, from the most confident down, stopping at the first
that fails: error falls as confidence rises, so this pays no multiple-testing price, where
Bonferroni-Holm over a hundred thresholds found none on real data. The sequence starts where at
least `min_auto_items` calibration items lie above the threshold (a test on a handful of items
cannot pass, and in a fixed sequence a first failure ends the search), and no earlier than the
fewest items on which even a flawless record could prove the target: (1 - target)^n <= delta.
Below that a first test is lost before it is run (a 3% target needs 99 items at delta 0.05),
which would end the sequence on a threshold that could never have passed. The grid depends on
the confidences and the target alone, never on whether the model was right, so each test
stays valid.

MAPIE is used rather than our own binomial tests because the family-wise error control is the
subtle part, and it is maintained and tested there (scikit-learn-contrib).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from mapie.risk_control import BinaryClassificationController, FWERFixedSequenceTesting

# Most confident first. Steps of 0.01, and finer above 0.9 (1 - 10^-3 ... 1 - 10^-1 on a log
# scale): a target of a few percent is proven only among near-certain decisions, which a step
# of 0.01 lumps together. The fixed sequence pays nothing for the extra thresholds. On the
# ASAP-SAS leaderboard this took tfidf-length's auto decisions from 18.5% to 30.0% at the same
# guarantee (eval/RESULTS.md).
THRESHOLD_GRID = np.unique(
    np.round(np.concatenate([1 - np.logspace(-3, -1, 20), np.linspace(0.9, 0.0, 91)]), 4)
)[::-1]
MIN_AUTO_ITEMS = 30


@dataclass(frozen=True)
class RiskControlledThreshold:
    """`threshold` is None when no threshold meets the target: then nothing goes auto."""

    threshold: float | None
    target_error: float
    confidence_level: float
    calibration_items: int
    calibration_coverage: float  # share of calibration items at or above the threshold
    calibration_error: float  # disagreement among those items


def fit_threshold(
    confidence: np.ndarray,
    correct: np.ndarray,
    target_error: float,
    confidence_level: float = 0.9,
    min_auto_items: int = MIN_AUTO_ITEMS,
) -> RiskControlledThreshold:
    """The lowest confidence threshold whose auto-scored error is provably <= target_error."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=int)
    threshold: float | None = None
    fewest = max(min_auto_items, fewest_provable(target_error, 1 - confidence_level))
    grid = [t for t in THRESHOLD_GRID if np.sum(confidence >= t) >= fewest]
    if grid and 0 < target_error < 1:
        controller = BinaryClassificationController(
            predict_function=lambda c: np.column_stack([1 - np.ravel(c), np.ravel(c)]),
            risk="precision",
            target_level=1 - target_error,
            confidence_level=confidence_level,
            best_predict_param_choice="recall",
            list_predict_params=np.asarray(grid),
            fwer_method=FWERFixedSequenceTesting(n_starts=1),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no valid threshold" is an answer, handled below
            controller.calibrate(confidence.reshape(-1, 1), correct)
        best = controller.best_predict_param
        threshold = None if best is None else float(np.ravel([best])[0])
    selected = confidence >= threshold if threshold is not None else np.zeros(len(confidence), bool)
    return RiskControlledThreshold(
        threshold=threshold,
        target_error=target_error,
        confidence_level=confidence_level,
        calibration_items=len(confidence),
        calibration_coverage=float(selected.mean()) if len(confidence) else 0.0,
        calibration_error=float(1 - correct[selected].mean()) if selected.any() else 0.0,
    )


def fewest_provable(target_error: float, delta: float) -> int:
    """The fewest auto items on which a record without a single error proves an error rate at
    or below the target: the smallest n with (1 - target)^n <= delta."""
    if not 0 < target_error < 1:
        return 1
    return math.ceil(math.log(delta) / math.log(1 - target_error))
