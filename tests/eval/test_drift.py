"""Model-vs-reviewer agreement week by week, from plain reviewed decisions (no queue needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from prescore.eval.drift import (
    ReviewedDecision,
    ReviewedSubmission,
    audit_decision_error,
    audit_markdown,
    markdown,
    reviewer_agreement,
)

LEVELS = ["Not yet", "Developing", "Proficient"]


def decision(level: str, audit: bool) -> ReviewedDecision:
    return ReviewedDecision(
        credential_id="wait-time",
        criterion_id="planning",
        decided_at=datetime.now(UTC),
        decided_index=LEVELS.index(level),
        suggested_index=LEVELS.index("Developing"),
        levels=len(LEVELS),
        audit=audit,
    )


def test_weekly_agreement_with_reviewers_raises_the_drift_alarm() -> None:
    decisions = []
    for n in range(8):
        agrees = n < 2  # the model suggested Developing; reviewers mostly said otherwise
        level = "Developing" if agrees else ("Proficient" if n % 3 else "Not yet")
        decisions.append(decision(level, audit=n % 2 == 0))
    rows = reviewer_agreement(decisions, min_qwk=0.7, min_items=3)
    assert {r.sample for r in rows} == {"audit", "human-routed"}
    assert sum(r.items for r in rows) == 8
    # 4 items each, far below 0.70; only the audit sample judges the model where it decides
    # alone: human-routed items are the uncertain ones and never alarm
    assert {r.sample: r.alarm for r in rows} == {"audit": True, "human-routed": False}
    assert [r.exact for r in rows] == [0.25, 0.25]
    assert rows[0].week == datetime.now(UTC).strftime("%G-W%V")
    assert "**drift**" in markdown(rows, 0.7, 3)
    assert not any(r.alarm for r in reviewer_agreement(decisions, min_qwk=0.7, min_items=5))


def submission(
    decided: str, suggested: str, audit: bool = True, credential: str = "wait-time"
) -> ReviewedSubmission:
    return ReviewedSubmission(
        credential_id=credential,
        model_version="4",
        decided_at=datetime.now(UTC),
        decided=decided,
        suggested=suggested,
        audit=audit,
        target_error=0.1,
    )


def test_audited_auto_decisions_measure_the_decision_error_and_warn_above_target() -> None:
    reviewed = [
        submission("earned", "earned"),
        submission("not_yet", "earned"),  # a false award
        submission("earned", "not_yet"),
        *[submission("earned", "earned") for _ in range(5)],
        submission("not_yet", "earned", audit=False),  # human-routed: not an audit
        *[submission("earned", "earned", credential="feedback") for _ in range(10)],
        submission("not_yet", "earned", credential="feedback"),
    ]
    wait_time, feedback = audit_decision_error(reviewed)[::-1]
    assert (wait_time.audits, wait_time.errors, wait_time.false_awards) == (8, 2, 1)
    assert wait_time.error == 0.25 and wait_time.warning  # above its 0.10 target
    assert (feedback.audits, feedback.errors) == (11, 1) and not feedback.warning  # 0.09
    text = audit_markdown([feedback, wait_time])
    assert text.count("**above target") == 1 and "| wait-time | 4 | 8 | 2 | 1 | 0.250 |" in text
    assert wait_time.p_value == pytest.approx(1 - 0.9**8 - 8 * 0.1 * 0.9**7)  # P(2+ of 8)
    assert "not yet significant (binomial p = 0.19)" in text
    assert "No audited decisions yet." in audit_markdown([])
