"""Is selective automation proven on data nothing was fitted on? The error among auto decisions.

prescore decides alone only what it is sure of, so the figure that matters is the error among
the decisions it would make alone, not agreement over everything (Funayama et al. 2020 qualify
short-answer automation the same way). The threshold is certified by Learn-then-Test on the
certification rows; these tests confirm it on the test split: the errors among auto decisions
are not significantly above the target (one-sided exact binomial test), for everyone and for
every group with enough submissions to judge. Each group is tested at the same level with no
correction for their number: a false alarm costs some automation, a missed one costs a group
fair treatment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from prescore.eval.risk_control import MIN_AUTO_ITEMS, fewest_provable

SIGNIFICANCE = 0.05  # one-sided, per test

# how a qualification failure begins, so routing and reports can tell the kinds apart
TEST_ERROR = "test_error"
SUBGROUP_ERROR = "subgroup_error"
FALSE_AWARDS = "false_awards"
TOO_FEW_CERTIFICATION = "too_few_certification"


def p_value_above(errors: int, trials: int, target: float) -> float:
    """P(at least `errors` wrong in `trials`) if each errs at exactly `target`: small means the
    error rate is really above the target, not the noise of a few decisions."""
    if trials == 0 or errors == 0:
        return 1.0
    return float(binom.sf(errors - 1, trials, target))


@dataclass(frozen=True)
class ErrorTest:
    """Errors among one population's auto decisions against the target."""

    group: str  # "" for every submission, else "name=value"
    members: int  # test submissions (or items) of the group, auto or not
    auto: int
    errors: int
    target: float

    @property
    def rate(self) -> float:
        return self.errors / self.auto if self.auto else float("nan")

    @property
    def p_value(self) -> float:
        return p_value_above(self.errors, self.auto, self.target)

    @property
    def failed(self) -> bool:
        return self.p_value < SIGNIFICANCE

    def failure(self, kind: str = "") -> str:
        """The qualification failure in words, beginning with its kind."""
        kind = kind or (SUBGROUP_ERROR if self.group else TEST_ERROR)
        where = f" {self.group}:" if self.group else ""
        return (
            f"{kind}:{where} {self.errors} of {self.auto} auto decisions wrong ({self.rate:.1%}) "
            f"against a target of {self.target:.1%} (one-sided exact binomial p = "
            f"{self.p_value:.3f} < {SIGNIFICANCE})"
        )


def error_tests(
    auto: np.ndarray,
    wrong: np.ndarray,
    groups: Sequence[dict[str, str]],
    target: float,
    min_group_size: int,
) -> list[ErrorTest]:
    """The whole population's test first, then one per group value with at least
    `min_group_size` members; `auto` and `wrong` are per member (wrong counts only where auto)."""
    auto, wrong = np.asarray(auto, dtype=bool), np.asarray(wrong, dtype=bool)
    tests = [ErrorTest("", len(auto), int(auto.sum()), int((auto & wrong).sum()), target)]
    names = sorted({name for g in groups for name in g})
    for name in names:
        for value in sorted({g[name] for g in groups if name in g}):
            inside = np.array([g.get(name) == value for g in groups], dtype=bool)
            if inside.sum() < min_group_size:
                continue  # too few to judge: noise, not evidence
            tests.append(
                ErrorTest(
                    f"{name}={value}",
                    int(inside.sum()),
                    int((auto & inside).sum()),
                    int((auto & wrong & inside).sum()),
                    target,
                )
            )
    return tests


def too_few_to_certify(rows: int, target: float, confidence_level: float) -> str:
    """The failure where the certification rows could not prove the target even if the model
    were never wrong; empty where there are enough."""
    fewest = max(MIN_AUTO_ITEMS, fewest_provable(target, 1 - confidence_level))
    if rows >= fewest or not 0 < target < 1:  # a zero target no count of rows can prove
        return ""
    return (
        f"{TOO_FEW_CERTIFICATION}: {rows} certification rows, and proving an error of at most "
        f"{target:.1%} with probability {confidence_level:.0%} needs at least {fewest}"
    )


def failed_kinds(failures: Sequence[str]) -> set[str]:
    return {failure.split(":", 1)[0] for failure in failures}


MIN_HUMAN_PAIRS = 30  # fewer double-scored rows measure the humans' disagreement too loosely


@dataclass(frozen=True)
class Target:
    """The error allowed among auto decisions, and where it comes from, for the report."""

    error: float
    basis: str


def choose_target(
    configured: float | None, disagreement: float | None, pairs: int, fallback: float
) -> Target:
    """The configured target, else the humans' own disagreement where at least
    MIN_HUMAN_PAIRS rows were scored twice, else the fallback.

    A human rate of 0.0 is a measurement, not a missing value: humans who always agree leave
    the model no room for error, so nothing goes auto.
    """
    if configured is not None:
        return Target(configured, "configured")
    if disagreement is not None and pairs >= MIN_HUMAN_PAIRS:
        return Target(disagreement, f"human-human, {pairs} double-scored")
    return Target(fallback, f"fallback: {pairs} double-scored, {MIN_HUMAN_PAIRS} needed")
