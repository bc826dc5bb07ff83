"""Calibration fixes a miscalibrated model; the threshold keeps its promise over many seeds."""

from __future__ import annotations

import numpy as np

from prescore.eval.calibration import apply_temperature, expected_calibration_error, fit_temperature
from prescore.eval.risk_control import fit_threshold


def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z), reported as softmax(3z): too sure of itself."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 4)) * 1.5
    true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(4, p=p) for p in true])
    reported = np.exp(3 * logits) / np.exp(3 * logits).sum(axis=1, keepdims=True)
    return reported, labels


def test_temperature_scaling_improves_held_out_ece() -> None:
    fit_probabilities, fit_labels = overconfident(2000, seed=1)
    test_probabilities, test_labels = overconfident(2000, seed=2)
    temperature = fit_temperature(fit_probabilities, fit_labels)
    assert 2.4 < temperature < 3.6  # the true distortion is 3
    before = expected_calibration_error(test_probabilities, test_labels)
    after = expected_calibration_error(
        apply_temperature(test_probabilities, temperature), test_labels
    )
    assert before > 0.1 and after < before / 3


def test_temperature_keeps_padded_levels_at_zero() -> None:
    probabilities = np.array([[0.7, 0.3, 0.0], [0.2, 0.5, 0.3]])
    scaled = apply_temperature(probabilities, 2.0)
    assert scaled[0, 2] == 0 and np.allclose(scaled.sum(axis=1), 1)
    assert np.array_equal(scaled.argmax(axis=1), probabilities.argmax(axis=1))


def simulate(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated confidence: an item with confidence c is right with probability c."""
    confidence = rng.uniform(0.2, 1.0, n)
    return confidence, rng.uniform(size=n) < confidence


def true_error_above(threshold: float) -> float:
    # confidence ~ U(0.2, 1); error among c >= t is the mean of (1 - c) over [t, 1]
    return (1 - threshold) / 2


def test_error_among_auto_items_stays_under_target_with_the_stated_probability() -> None:
    target, level, seeds = 0.1, 0.9, 200
    kept = []
    for seed in range(seeds):
        result = fit_threshold(*simulate(3000, np.random.default_rng(seed)), target, level)
        kept.append(result.threshold is None or true_error_above(result.threshold) <= target)
    assert np.mean(kept) >= level  # the guarantee: at least 90% of calibration draws
    # and it is not vacuous: it does auto-score something in most draws (17 of these 20: the
    # grid's finer steps above 0.9 start the sequence on fewer items, and one unlucky error
    # among them ends it; the 0.01 grid found 18, and 7 against 9 of the small draws below)
    found = [
        fit_threshold(*simulate(3000, np.random.default_rng(s)), target, level) for s in range(20)
    ]
    assert sum(r.threshold is not None for r in found) >= 17
    assert all(r.calibration_coverage > 0.05 for r in found if r.threshold is not None)


def test_a_calibration_split_of_a_few_hundred_items_still_finds_a_threshold() -> None:
    # per-criterion calibration splits are this small on real data; Bonferroni-Holm over the
    # 100-threshold grid found a threshold in none of these 20 draws, fixed sequence in 7 on
    # the 0.01 grid and 9 on today's
    found = [fit_threshold(*simulate(300, np.random.default_rng(s)), 0.1, 0.9) for s in range(20)]
    assert sum(r.threshold is not None for r in found) >= 9
    assert all(true_error_above(r.threshold) <= 0.1 for r in found if r.threshold is not None)


def test_thresholds_start_where_enough_items_lie_above_them() -> None:
    confidence = np.concatenate([np.full(20, 0.99), np.full(400, 0.5)])
    correct = np.concatenate([np.ones(20, bool), np.random.default_rng(0).uniform(size=400) < 0.5])
    # 20 perfect items are too few to prove anything; the next step (0.5) is far over target
    assert fit_threshold(confidence, correct, 0.1, min_auto_items=30).threshold is None


def test_an_unreachable_target_auto_scores_nothing() -> None:
    confidence = np.full(300, 0.6)
    correct = np.random.default_rng(0).uniform(size=300) < 0.6
    result = fit_threshold(confidence, correct, target_error=0.05)
    assert result.threshold is None and result.calibration_coverage == 0.0


def test_conformal_sets_cover_the_true_level_at_the_stated_rate() -> None:
    from prescore.eval.calibration import conformal_set_threshold

    coverage = []
    for seed in range(30):
        fit_p, fit_y = overconfident(500, seed=100 + seed)
        test_p, test_y = overconfident(500, seed=200 + seed)
        q = conformal_set_threshold(fit_p, fit_y, 0.9)
        in_set = 1 - test_p[np.arange(len(test_y)), test_y] <= q
        coverage.append(in_set.mean())
    assert 0.88 <= np.mean(coverage) <= 0.95  # valid, and not trivially every level
