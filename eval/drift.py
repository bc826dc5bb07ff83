"""Model against reviewer, week by week, from the decisions in the review queue.

Audit samples (auto-routed items queued at random) estimate how the model does where it
decides alone; human-routed items are the uncertain ones, so their agreement runs lower by
design. Each is reported apart, and a week whose QWK drops below the qualification bar, on
enough items, raises the drift alarm.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from prescore.data.schema import CriterionKey
from prescore.eval.agreement import exact_agreement, quadratic_weighted_kappa


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
    """One row per criterion, ISO week and sample; a week with enough items below the bar alarms."""
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
        alarm = len(reviewer) >= min_items and not (qwk >= min_qwk)
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
        f"decisions and QWK below {min_qwk:.2f}. Audit samples are auto-routed items queued at "
        "random; human-routed items are the uncertain ones, so they agree less by design.",
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
