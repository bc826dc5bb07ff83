"""Model-vs-reviewer agreement week by week, from plain reviewed decisions (no queue needed)."""

from __future__ import annotations

from datetime import UTC, datetime

from prescore.eval.drift import ReviewedDecision, markdown, reviewer_agreement

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
    assert all(r.alarm for r in rows)  # 4 items each, far below 0.70
    assert [r.exact for r in rows] == [0.25, 0.25]
    assert rows[0].week == datetime.now(UTC).strftime("%G-W%V")
    assert "**drift**" in markdown(rows, 0.7, 3)
    assert not any(r.alarm for r in reviewer_agreement(decisions, min_qwk=0.7, min_items=5))
