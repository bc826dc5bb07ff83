"""Submissions on held-out data: group a split's items into submissions, certify each
credential's decision thresholds on calibration submissions no fit has seen, and confirm
them on the test split.

The same conditions that route a criterion item hold for a submission's decision, with the
error target measured on the decision (earned / not yet) against the humans' decisions, and a
separate, optional bound on false awards. Selective routing (the default) qualifies by the
error among the auto decisions (eval/selective.py); the Williamson gates are reported for
every credential and bind only where it is routed in full by the machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from prescore.data.schema import Credential, Routing
from prescore.eval.calibration import expected_calibration_error
from prescore.eval.decisions import (
    EARNED,
    Recalibration,
    cohen_kappa,
    combined_p_earned,
    decision_of,
    p_met,
)
from prescore.eval.risk_control import fit_threshold
from prescore.eval.routing import DecisionPolicy, Reason, Route
from prescore.eval.selective import (
    FALSE_AWARDS,
    ErrorTest,
    choose_target,
    error_tests,
    too_few_to_certify,
)


class DecisionGates(BaseModel):
    """The Williamson gates, applied to the decision: Cohen's kappa with the humans' decision
    of at least `min_kappa`, and no more than `max_degradation` below human-human kappa on
    the same decision where two raters exist; on at least `min_submissions` submissions.
    Reported for every credential; they bind only where the machine decides everything
    (`routing: full`)."""

    model_config = ConfigDict(extra="forbid")

    min_kappa: float = Field(0.70, ge=-1, le=1)
    max_degradation: float = Field(0.10, ge=0)
    min_submissions: int = Field(50, ge=1)


@dataclass
class Submission:
    """One submission of a split: its rows, what the model and the humans say of it."""

    credential_id: str
    submission_id: str
    rows: list[int]
    complete: bool
    p_combined: float
    human_earned: bool | None  # from the final levels; None where an item is unscored
    rater_earned: tuple[bool, bool] | None  # rater 1, rater 2, where both scored every item
    groups: dict[str, str] = field(default_factory=dict)


def group_submissions(
    split: pd.DataFrame, probabilities: np.ndarray, credentials: dict[str, Credential]
) -> list[Submission]:
    """Items sharing submission_id and credential_id form a submission (an item without a
    submission_id stands alone); `probabilities` are the calibrated level probabilities."""
    if not len(split):
        return []
    names = split["submission_id"].where(split["submission_id"].notna(), split["id"])
    group_columns = [c for c in split.columns if c.startswith("group_")]
    members: dict[tuple[str, str], list[int]] = {}
    for position, key in enumerate(zip(split["credential_id"], names, strict=True)):
        members.setdefault((str(key[0]), str(key[1])), []).append(position)
    out = []
    for (credential_id, submission_id), positions in members.items():
        credential = credentials[credential_id]
        met_each, human, first, second = [], [], [], []
        for position in positions:
            row = split.iloc[position]
            criterion = credential.criterion(row["criterion_id"])
            assert criterion is not None  # validated on load
            met = criterion.met_index
            met_each.append(float(p_met(probabilities[position, : len(criterion.levels)], met)[0]))
            human.append(None if row["label"] < 0 else bool(row["label"] >= met))
            scores = row["scores"]
            pair = len(scores) > 1
            first.append(bool(scores[0]["level"] >= met) if pair else None)
            second.append(bool(scores[1]["level"] >= met) if pair else None)
        present = split.iloc[positions]["criterion_id"].tolist()
        complete = sorted(present) == sorted(c.id for c in credential.criteria)
        award, count = credential.award, len(credential.criteria)
        paired = all(f is not None for f in first) and all(s is not None for s in second)
        out.append(
            Submission(
                credential_id=credential_id,
                submission_id=submission_id,
                rows=positions,
                complete=complete,
                p_combined=combined_p_earned(met_each, award, count),
                human_earned=(
                    None
                    if any(h is None for h in human)
                    else award.earned([bool(h) for h in human], count)
                ),
                rater_earned=(
                    (
                        award.earned([bool(f) for f in first], count),
                        award.earned([bool(s) for s in second], count),
                    )
                    if paired
                    else None
                ),
                groups={
                    c.removeprefix("group_"): str(split.iloc[positions[0]][c])
                    for c in group_columns
                    if pd.notna(split.iloc[positions[0]][c])
                },
            )
        )
    return out


def human_decision_disagreement(submissions: list[Submission]) -> tuple[float | None, int]:
    """(share of double-scored submissions on which rater 1 and rater 2 decide differently,
    how many were double-scored)."""
    pairs = [s.rater_earned for s in submissions if s.rater_earned is not None and s.complete]
    return (None if not pairs else float(np.mean([a != b for a, b in pairs]))), len(pairs)


@dataclass
class DecisionTriage:
    """One credential's decisions on the test split, routed as the live policy would."""

    credential_id: str
    submissions: int
    complete: int
    qualified: bool
    failures: list[str]
    kappa: float
    human_kappa: float
    auto: int
    auto_share: float  # of complete submissions
    auto_error: float  # share of auto decisions the humans decided otherwise
    false_awards: int  # auto "earned" where the humans said not yet
    false_not_yet: int  # auto "not yet" where the humans said earned
    target_error: float
    max_false_award: float | None
    threshold: float | None
    award_threshold: float | None
    ece: float  # of P(earned) on the test submissions
    reliability: list[tuple[float, float, int]]  # (mean P(earned), share earned, count) per bin
    # the confirmation on the test split: everyone first, then each group large enough to judge,
    # counted on the decisions the threshold would send auto were the credential qualified
    error_tests: list[ErrorTest] = field(default_factory=list)
    williamson_failures: list[str] = field(default_factory=list)  # binding only for routing: full
    certification_submissions: int = 0
    target_basis: str = ""
    routing: str = "selective"

    @property
    def guarantee_held(self) -> bool:
        return self.auto == 0 or self.auto_error <= self.target_error


@dataclass(frozen=True)
class DecisionSettings:
    fallback_target_error: float  # where too few calibration submissions have two raters
    max_false_award: float | None
    confidence_level: float
    gates: DecisionGates
    min_group_size: int = 50


def side_thresholds(
    confidence: np.ndarray,
    correct: np.ndarray,
    awarded: np.ndarray,
    target: float,
    max_false_award: float,
    confidence_level: float,
) -> tuple[float | None, float | None]:
    """(not-yet threshold, award threshold) under a separate bound on false awards.

    Each side is its own family: the auto "not yet" decisions err at most `target`, the auto
    awards at most min(target, max_false_award), each with probability 1 - delta / 2, so both
    hold together with probability 1 - delta and the auto decisions' error, a mix of the two,
    stays at or below the target. (One threshold for both, raised for awards alone, would
    drop awards from the set the first test was run on, and its guarantee with them.)
    """
    split_level = 1 - (1 - confidence_level) / 2
    not_yet = fit_threshold(confidence[~awarded], correct[~awarded], target, split_level)
    award_target = min(target, max_false_award)
    award = fit_threshold(confidence[awarded], correct[awarded], award_target, split_level)
    return not_yet.threshold, award.threshold


def certify_thresholds(
    p_earned: np.ndarray, earned: np.ndarray, target: float, settings: DecisionSettings
) -> tuple[float | None, float | None]:
    """(threshold, award threshold) certified by Learn-then-Test on the certification
    submissions' P(earned), fixed before those submissions were seen."""
    if not len(earned):
        return None, None
    decided = [decision_of(float(p)) for p in p_earned]
    awarded = np.array([d == EARNED for d, _ in decided], dtype=bool)
    correct = awarded == np.asarray(earned, dtype=bool)
    confidence = np.array([c for _, c in decided])
    if settings.max_false_award is None:
        threshold = fit_threshold(confidence, correct, target, settings.confidence_level).threshold
        return threshold, threshold
    return side_thresholds(
        confidence, correct, awarded, target, settings.max_false_award, settings.confidence_level
    )


def fit_decision_policy(
    credential: Credential,
    recalibration: Recalibration,
    certification: list[tuple[Submission, float]],
    calibration: list[Submission],
    settings: DecisionSettings,
) -> DecisionPolicy:
    """The decision policy before its confirmation on the test split: the served
    recalibration, the target (from the humans on every calibration submission) and the
    thresholds certified on `certification` (complete, scored submissions with their P(earned),
    from a score fixed before they were seen)."""
    disagreement, pairs = human_decision_disagreement(calibration)
    target = choose_target(None, disagreement, pairs, settings.fallback_target_error)
    p = np.array([p for _, p in certification])
    earned = np.array([bool(s.human_earned) for s, _ in certification], dtype=bool)
    failures = []
    if credential.routing is Routing.full:
        threshold: float | None = 0.0
        award_threshold: float | None = 0.0
    else:
        threshold, award_threshold = certify_thresholds(p, earned, target.error, settings)
        too_few = too_few_to_certify(len(certification), target.error, settings.confidence_level)
        failures += [too_few] if too_few else []
    return DecisionPolicy(
        credential_id=credential.id,
        title=credential.title,
        stakes=credential.stakes,
        award=credential.award,
        criteria=[c.id for c in credential.criteria],
        slope=recalibration.slope,
        intercept=recalibration.intercept,
        qualified=not failures,
        qualification_failures=failures,
        threshold=threshold,
        award_threshold=award_threshold,
        target_error=target.error,
        target_basis=target.basis,
        max_false_award=settings.max_false_award,
        confidence_level=settings.confidence_level,
        routing=credential.routing,
        certification_submissions=len(certification),
    )


def qualify_decisions(
    test: list[Submission], recalibration: Recalibration, gates: DecisionGates
) -> tuple[list[str], float, float]:
    """(failed Williamson gates, model kappa, human-human kappa) of the decision over every
    complete test submission; a kappa that is undefined (NaN) fails its gate."""
    scored = [s for s in test if s.complete and s.human_earned is not None]
    p = recalibration.apply(np.array([s.p_combined for s in scored]))
    model = [bool(x >= 0.5) for x in p]
    kappa = cohen_kappa(model, [bool(s.human_earned) for s in scored])
    paired = [(m, s.rater_earned) for m, s in zip(model, scored, strict=True) if s.rater_earned]
    human_kappa = float("nan")
    failures = []
    if len(scored) < gates.min_submissions:
        failures.append(f"only {len(scored)} held-out submissions (need {gates.min_submissions})")
    if not kappa >= gates.min_kappa:
        failures.append(f"decision kappa {kappa:.3f} < {gates.min_kappa:.2f}")
    if paired:
        first = [r[0] for _, r in paired]
        human_kappa = cohen_kappa(first, [r[1] for _, r in paired])
        machine_on_pairs = cohen_kappa(first, [m for m, _ in paired])
        degradation = machine_on_pairs - human_kappa
        if not degradation >= -gates.max_degradation:
            failures.append(
                f"decision kappa {degradation:+.3f} against human-human "
                f"({human_kappa:.3f}); allowed -{gates.max_degradation:.2f}"
            )
    return failures, kappa, human_kappa


def item_reasons(submission: Submission, input_problems: list[list[str]]) -> set[Reason]:
    """Input problems of any of the submission's items send the decision to a human;
    `input_problems` holds each row's of the split, found once."""
    reasons = {
        Reason(problem) for position in submission.rows for problem in input_problems[position]
    }
    return reasons | ({Reason.incomplete_submission} if not submission.complete else set())


@dataclass(frozen=True)
class RoutedTest:
    """A credential's complete, scored test submissions as a policy routes them."""

    complete: list[Submission]
    p_earned: np.ndarray
    auto: np.ndarray
    awarded: np.ndarray  # the model's decision is "earned"
    earned: np.ndarray  # the humans' decision is "earned"

    @property
    def wrong(self) -> np.ndarray:
        return self.awarded != self.earned


def route_test(
    policy: DecisionPolicy, test: list[Submission], input_problems: list[list[str]]
) -> RoutedTest:
    complete = [s for s in test if s.complete and s.human_earned is not None]
    p = Recalibration(policy.slope, policy.intercept).apply(
        np.array([s.p_combined for s in complete])
    )
    auto, awarded = [], []
    for submission, p_earned in zip(complete, p, strict=True):
        decision, confidence = decision_of(float(p_earned))
        reasons = item_reasons(submission, input_problems)
        auto.append(policy.route(decision, confidence, reasons).route is Route.auto)
        awarded.append(decision == EARNED)
    return RoutedTest(
        complete,
        p,
        np.array(auto, dtype=bool),
        np.array(awarded, dtype=bool),
        np.array([bool(s.human_earned) for s in complete], dtype=bool),
    )


def would_be_routed(
    policy: DecisionPolicy, test: list[Submission], input_problems: list[list[str]]
) -> RoutedTest:
    """What the thresholds would send auto, were the credential qualified: what the
    confirmation judges."""
    return route_test(policy.model_copy(update={"qualified": True}), test, input_problems)


def decision_error_tests(routed: RoutedTest, target: float, min_group: int) -> list[ErrorTest]:
    """The error among auto decisions against the target, for everyone and each group."""
    groups = [s.groups for s in routed.complete]
    return error_tests(routed.auto, routed.wrong, groups, target, min_group)


def award_error_test(routed: RoutedTest, max_false_award: float) -> ErrorTest:
    """False awards among the auto awards against their own bound."""
    auto_awards, false_awards = routed.auto & routed.awarded, routed.awarded & ~routed.earned
    (everyone,) = error_tests(auto_awards, false_awards, [], max_false_award, 1)
    return everyone


def confirm_on_test(
    policy: DecisionPolicy,
    test: list[Submission],
    input_problems: list[list[str]],
    settings: DecisionSettings,
    criterion_failures: list[str] | None = None,
) -> DecisionPolicy:
    """The policy with its qualification judged on the test split, which no fit has seen.

    Selective routing: the decisions the threshold sends auto err no more than the target beyond
    chance, for everyone and for each group of at least `min_group_size` submissions, and the
    auto awards keep the false-award bound. Full routing (the machine decides everything): the
    Williamson gates on the decision, and `criterion_failures` (a criterion flagged for a group).
    """
    failures = list(policy.qualification_failures)
    if policy.routing is Routing.full:
        recalibration = Recalibration(policy.slope, policy.intercept)
        williamson, _, _ = qualify_decisions(test, recalibration, settings.gates)
        failures += williamson + (criterion_failures or [])
    else:
        routed = would_be_routed(policy, test, input_problems)
        tests = decision_error_tests(routed, policy.target_error, settings.min_group_size)
        failures += [t.failure() for t in tests if t.failed]
        if policy.max_false_award is not None:
            awards = award_error_test(routed, policy.max_false_award)
            failures += [awards.failure(FALSE_AWARDS)] if awards.failed else []
    return policy.model_copy(update={"qualified": not failures, "qualification_failures": failures})


def decision_triage(
    policy: DecisionPolicy,
    test: list[Submission],
    input_problems: list[list[str]],
    settings: DecisionSettings,
) -> DecisionTriage:
    """What the live policy does with the test split's submissions of one credential."""
    recalibration = Recalibration(policy.slope, policy.intercept)
    williamson, kappa, human_kappa = qualify_decisions(test, recalibration, settings.gates)
    live = route_test(policy, test, input_problems)
    auto, awarded, earned = live.auto, live.awarded, live.earned
    truth = earned.astype(int)
    would_be = would_be_routed(policy, test, input_problems)
    return DecisionTriage(
        credential_id=policy.credential_id,
        submissions=len(test),
        complete=len(live.complete),
        qualified=policy.qualified,
        failures=list(policy.qualification_failures),
        kappa=kappa,
        human_kappa=human_kappa,
        auto=int(auto.sum()),
        auto_share=float(auto.mean()) if len(live.complete) else 0.0,
        auto_error=float((auto & live.wrong).sum() / auto.sum()) if auto.any() else float("nan"),
        false_awards=int((auto & awarded & ~earned).sum()),
        false_not_yet=int((auto & ~awarded & earned).sum()),
        target_error=policy.target_error,
        max_false_award=policy.max_false_award,
        threshold=policy.threshold,
        award_threshold=policy.award_threshold,
        ece=binary_ece(live.p_earned, truth),
        reliability=decision_reliability(live.p_earned, truth),
        error_tests=decision_error_tests(would_be, policy.target_error, settings.min_group_size),
        williamson_failures=williamson,
        certification_submissions=policy.certification_submissions,
        target_basis=policy.target_basis,
        routing=policy.routing,
    )


def decision_reliability(
    p: np.ndarray, truth: np.ndarray, bins: int = 10
) -> list[tuple[float, float, int]]:
    out = []
    edges = np.linspace(0, 1, bins + 1)
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (p >= low) & ((p < high) if high < 1 else (p <= high))
        if inside.any():
            out.append((float(p[inside].mean()), float(truth[inside].mean()), int(inside.sum())))
    return out


def binary_ece(p: np.ndarray, truth: np.ndarray) -> float:
    """Expected calibration error of the decision's confidence (the probability of the
    suggested decision, earned or not yet), in the top-label sense of eval/calibration.py."""
    if not len(p):
        return float("nan")
    return expected_calibration_error(np.column_stack([1 - p, p]), truth)
