"""Submissions on held-out data: group a split's items into submissions, fit each
credential's decision policy on the calibration split, and measure it on the test split.

The same four conditions that route a criterion item hold for a submission's decision, with
qualification and the error target measured on the decision (earned / not yet) against the
humans' decisions, and a separate, optional bound on false awards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from prescore.data.schema import Credential
from prescore.eval.calibration import expected_calibration_error
from prescore.eval.decisions import (
    EARNED,
    Recalibration,
    cohen_kappa,
    combined_p_earned,
    decision_of,
    fit_recalibration,
    p_met,
)
from prescore.eval.risk_control import fit_threshold
from prescore.eval.routing import DecisionPolicy, Reason, Route


class DecisionGates(BaseModel):
    """The Williamson gates, applied to the decision: Cohen's kappa with the humans' decision
    of at least `min_kappa`, and no more than `max_degradation` below human-human kappa on
    the same decision where two raters exist; on at least `min_submissions` submissions."""

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


def human_decision_disagreement(submissions: list[Submission]) -> float | None:
    """Share of double-scored submissions on which rater 1 and rater 2 decide differently."""
    pairs = [s.rater_earned for s in submissions if s.rater_earned is not None and s.complete]
    return None if not pairs else float(np.mean([a != b for a, b in pairs]))


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
    subgroup_error: dict[str, tuple[int, int, float]] = field(default_factory=dict)

    @property
    def guarantee_held(self) -> bool:
        return self.auto == 0 or self.auto_error <= self.target_error


@dataclass(frozen=True)
class DecisionSettings:
    fallback_target_error: float  # where no calibration submission has two raters
    max_false_award: float | None
    confidence_level: float
    gates: DecisionGates


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


def fit_decision_policy(
    credential: Credential,
    calibration: list[Submission],
    test: list[Submission],
    settings: DecisionSettings,
    criterion_failures: list[str] | None = None,
) -> DecisionPolicy:
    """Recalibrate P(earned) and fit the thresholds on the calibration submissions; qualify
    the decision on the test submissions (and fail it for `criterion_failures`, e.g. a
    criterion flagged for a subgroup)."""
    scored = [s for s in calibration if s.complete and s.human_earned is not None]
    recalibration = fit_recalibration(
        np.array([s.p_combined for s in scored]), np.array([s.human_earned for s in scored])
    )
    p_earned = recalibration.apply(np.array([s.p_combined for s in scored]))
    decided = [decision_of(float(p)) for p in p_earned]
    correct = np.array(
        [(d == EARNED) == s.human_earned for (d, _), s in zip(decided, scored, strict=True)]
    )
    confidence = np.array([c for _, c in decided])
    human_rate = human_decision_disagreement(calibration)
    target = settings.fallback_target_error if human_rate is None else human_rate
    threshold: float | None = None
    award_threshold: float | None = None
    if scored and settings.max_false_award is None:
        threshold = fit_threshold(confidence, correct, target, settings.confidence_level).threshold
        award_threshold = threshold
    elif scored and settings.max_false_award is not None:
        awarded = np.array([d == EARNED for d, _ in decided], dtype=bool)
        threshold, award_threshold = side_thresholds(
            confidence, correct, awarded, target, settings.max_false_award,
            settings.confidence_level,
        )  # fmt: skip
    failures, _, _ = qualify_decisions(test, recalibration, settings.gates)
    failures += criterion_failures or []
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
        target_error=target,
        max_false_award=settings.max_false_award,
        confidence_level=settings.confidence_level,
    )


def qualify_decisions(
    test: list[Submission], recalibration: Recalibration, gates: DecisionGates
) -> tuple[list[str], float, float]:
    """(failed gates, model kappa, human-human kappa) of the decision on the test split."""
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
        if machine_on_pairs - human_kappa < -gates.max_degradation:
            failures.append(
                f"decision kappa {machine_on_pairs - human_kappa:+.3f} against human-human "
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


def decision_triage(
    policy: DecisionPolicy,
    test: list[Submission],
    input_problems: list[list[str]],
    gates: DecisionGates,
    min_group: int,
) -> DecisionTriage:
    """What the live policy does with the test split's submissions of one credential."""
    recalibration = Recalibration(policy.slope, policy.intercept)
    _, kappa, human_kappa = qualify_decisions(test, recalibration, gates)
    complete = [s for s in test if s.complete and s.human_earned is not None]
    p = recalibration.apply(np.array([s.p_combined for s in complete]))
    auto_rows: list[tuple[Submission, bool]] = []
    for submission, p_earned in zip(complete, p, strict=True):
        decision, confidence = decision_of(float(p_earned))
        reasons = item_reasons(submission, input_problems)
        if policy.route(decision, confidence, reasons).route is Route.auto:
            auto_rows.append((submission, decision == EARNED))
    wrong = [earned != s.human_earned for s, earned in auto_rows]
    false_awards = sum(earned and not s.human_earned for s, earned in auto_rows)
    false_not_yet = sum((not earned) and bool(s.human_earned) for s, earned in auto_rows)
    truth = np.array([bool(s.human_earned) for s in complete], dtype=int)
    return DecisionTriage(
        credential_id=policy.credential_id,
        submissions=len(test),
        complete=len(complete),
        qualified=policy.qualified,
        failures=list(policy.qualification_failures),
        kappa=kappa,
        human_kappa=human_kappa,
        auto=len(auto_rows),
        auto_share=len(auto_rows) / len(complete) if complete else 0.0,
        auto_error=float(np.mean(wrong)) if wrong else float("nan"),
        false_awards=int(false_awards),
        false_not_yet=int(false_not_yet),
        target_error=policy.target_error,
        max_false_award=policy.max_false_award,
        threshold=policy.threshold,
        award_threshold=policy.award_threshold,
        ece=binary_ece(p, truth),
        reliability=decision_reliability(p, truth),
        subgroup_error=subgroup_decision_error(complete, p, min_group),
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


def subgroup_decision_error(
    complete: list[Submission], p: np.ndarray, min_group: int
) -> dict[str, tuple[int, int, float]]:
    """'group=value' -> (submissions, decided wrongly, error rate), for groups of at least
    `min_group` submissions: smaller groups are noise, not evidence."""
    out: dict[str, tuple[int, int, float]] = {}
    names = sorted({name for s in complete for name in s.groups})
    for name in names:
        values = sorted({s.groups[name] for s in complete if name in s.groups})
        for value in values:
            members = [
                (s, bool(x >= 0.5))
                for s, x in zip(complete, p, strict=True)
                if s.groups.get(name) == value
            ]
            if len(members) < min_group:
                continue
            wrong = sum(earned != s.human_earned for s, earned in members)
            out[f"{name}={value}"] = (len(members), wrong, wrong / len(members))
    return out
