"""Model against reviewer, week by week, from the decisions in the review queue.

Audit samples (auto-routed items queued at random) estimate how the model does where it
decides alone; human-routed items are the uncertain ones, so their agreement runs lower by
design. Each is reported apart, and a week whose QWK drops below the qualification bar, on
enough items, raises the drift alarm. Audited auto decisions (whole submissions, earned or not
yet) give the decision error where the model decides alone, warned about above its target.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from prescore.data.schema import CriterionKey
from prescore.eval.agreement import exact_agreement, quadratic_weighted_kappa
from prescore.eval.decisions import EARNED
from prescore.eval.selective import SIGNIFICANCE, p_value_above


@dataclass(frozen=True)
class ReviewedDecision:
    """A reviewer's level beside the model's suggestion, as indices into the criterion's levels.

    Plain values rather than queue entries, so that measuring drift needs no database (and eval
    never imports serving); the review queue builds these from its decided entries.
    """

    credential_id: str
    criterion_id: str
    decided_at: datetime
    decided_index: int
    suggested_index: int
    levels: int  # how many levels the criterion has: QWK's scale
    audit: bool  # an auto-routed item queued at random, not an uncertain one


@dataclass(frozen=True)
class WeekAgreement:
    criterion: str  # credential/criterion
    week: str  # ISO year-week of the decisions
    sample: str  # "audit" or "human-routed"
    items: int
    qwk: float
    exact: float
    alarm: bool


def reviewer_agreement(
    decisions: Iterable[ReviewedDecision], min_qwk: float = 0.70, min_items: int = 20
) -> list[WeekAgreement]:
    """One row per criterion, ISO week and sample. Only the audit sample can alarm: a week of
    enough audited auto items below the bar. Human-routed items are the uncertain ones, low
    agreement is what sent them to a human, so they are reported and never alarm."""
    groups: dict[tuple[str, str, str], tuple[list[int], list[int], int]] = defaultdict(
        lambda: ([], [], 0)
    )
    for decision in decisions:
        year, week_number, _ = decision.decided_at.isocalendar()
        key = (
            str(CriterionKey(decision.credential_id, decision.criterion_id)),
            f"{year}-W{week_number:02d}",
            "audit" if decision.audit else "human-routed",
        )
        reviewer, model, _ = groups[key]
        reviewer.append(decision.decided_index)
        model.append(decision.suggested_index)
        groups[key] = (reviewer, model, decision.levels)
    rows = []
    for (criterion, week, sample), (reviewer, model, levels) in sorted(groups.items()):
        qwk = quadratic_weighted_kappa(reviewer, model, levels)
        audited = sample == "audit"
        alarm = audited and len(reviewer) >= min_items and not (qwk >= min_qwk)
        rows.append(
            WeekAgreement(
                criterion, week, sample, len(reviewer), qwk, exact_agreement(reviewer, model), alarm
            )
        )
    return rows


def markdown(rows: list[WeekAgreement], min_qwk: float, min_items: int) -> str:
    lines = [
        "## Model vs reviewer agreement over time",
        "",
        f"From reviewers' decisions in the queue. Drift alarm: a week with at least {min_items} "
        f"audited decisions and QWK below {min_qwk:.2f}. Audit samples are auto-routed items "
        "queued at random, the only measure of how the model does where it decides alone; "
        "human-routed items are the uncertain ones, so they agree less by design and never "
        "alarm.",
        "",
    ]
    if not rows:
        return "\n".join([*lines, "No reviewed items yet.", ""])
    lines += [
        "| criterion | week | sample | items | QWK | exact | alarm |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for row in rows:
        qwk = "" if math.isnan(row.qwk) else f"{row.qwk:.3f}"
        lines.append(
            f"| {row.criterion} | {row.week} | {row.sample} | {row.items} | {qwk} | "
            f"{row.exact:.3f} | {'**drift**' if row.alarm else ''} |"
        )
    return "\n".join([*lines, ""])


@dataclass(frozen=True)
class ReviewedSubmission:
    """A reviewer's decision on a submission beside the model's suggested decision."""

    credential_id: str
    model_version: str
    decided_at: datetime
    decided: str  # earned / not_yet, the reviewer's
    suggested: str  # the model's
    audit: bool  # an auto decision queued at random: the model would have decided alone
    target_error: float | None  # the decision's target error in the routing policy


@dataclass(frozen=True)
class AuditError:
    """How often the reviewers overturned a credential's audited auto decisions."""

    credential_id: str
    model_version: str
    audits: int
    errors: int
    false_awards: int  # the model said earned, the reviewer not yet
    target_error: float | None

    @property
    def error(self) -> float:
        return self.errors / self.audits

    @property
    def warning(self) -> bool:
        """The measured decision error on auto decisions is above the decision's target."""
        return self.target_error is not None and self.error > self.target_error

    @property
    def p_value(self) -> float:
        """How likely this many overturned audits, or more, were if the auto decisions erred
        exactly at the target rate (one-sided binomial): small means the excess is real, not
        the noise of a few audits."""
        if self.target_error is None:
            return float("nan")
        return p_value_above(self.errors, self.audits, self.target_error)

    def verdict(self) -> str:
        if not self.warning:
            return ""
        if self.p_value < SIGNIFICANT:
            return f"above target (binomial p = {self.p_value:.3f})"
        return f"above target, not yet significant (binomial p = {self.p_value:.2f})"


SIGNIFICANT = SIGNIFICANCE  # the same one-sided level as the confirmation on held-out data


def audit_decision_error(reviewed: Iterable[ReviewedSubmission]) -> list[AuditError]:
    """Per credential and model version: the decision error on audited auto decisions, the
    estimate of how often the model errs where it decides alone."""
    groups: dict[tuple[str, str], list[ReviewedSubmission]] = defaultdict(list)
    for submission in reviewed:
        if submission.audit:
            groups[(submission.credential_id, submission.model_version)].append(submission)
    rows = []
    for (credential_id, version), members in sorted(groups.items()):
        wrong = [s for s in members if s.decided != s.suggested]
        rows.append(
            AuditError(
                credential_id=credential_id,
                model_version=version,
                audits=len(members),
                errors=len(wrong),
                false_awards=sum(s.suggested == EARNED for s in wrong),
                target_error=members[-1].target_error,
            )
        )
    return rows


def audit_markdown(rows: list[AuditError]) -> str:
    lines = [
        "## Audited auto decisions",
        "",
        "Auto decisions queued at random (PRESCORE_AUDIT_RATE) and decided by a reviewer: how "
        "often the reviewer's decision differs from the model's, against the decision's target "
        "error. Above the target, the auto decisions of that credential err more than the "
        "routing policy promised.",
        "",
    ]
    if not rows:
        return "\n".join([*lines, "No audited decisions yet.", ""])
    lines += [
        "| credential | model version | audits | errors | false awards | error | target | |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        target = "" if row.target_error is None else f"{row.target_error:.3f}"
        lines.append(
            f"| {row.credential_id} | {row.model_version} | {row.audits} | {row.errors} | "
            f"{row.false_awards} | {row.error:.3f} | {target} | "
            f"{f'**{row.verdict()}**' if row.warning else ''} |"
        )
    return "\n".join([*lines, ""])
