"""The breaker on live audits: audited auto decisions overturned significantly above the target
stop the credential's auto route (reason audit_alarm) for that model version, until resumed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from prescore.cli import app
from prescore.eval.routing import Reason, Route
from prescore.review.audits import AuditAlarms, NotStopped, breaker_states, resume
from prescore.review.queue import ReviewQueue
from prescore.review.verdicts import Verdict
from prescore.serving.human_review import stop_auto, with_alarms
from prescore.serving.schemas import ScoredEvidence, SubmissionDecision
from tests.review.card_decisions import decide_submissions
from tests.review.test_queue import (
    EVERY_CRITERION_MET,
    PLANNING,
    REFLECTION,
    VERDICT,
    card,
    review,
    scored_item,
)

OVERTURNED = Verdict(EVERY_CRITERION_MET, "earned", "")  # the model suggested not yet
UPHELD = VERDICT
WIDE = {"COLUMNS": "250"}


@pytest.fixture
def queue(review_db: str) -> Iterator[ReviewQueue]:
    """A new queue, on SQLite and again on Postgres, as the queue's other tests."""
    queue = ReviewQueue(review_db)
    yield queue
    queue.engine.dispose()


def decide(queue: ReviewQueue, entry_id: int, verdict: Verdict) -> None:
    queue.decide(entry_id, verdict, "ana", ["wait-time"], 1)


def stopped(queue: ReviewQueue) -> list[tuple[str, str, int, int]]:
    return [
        (s.credential_id, s.model_version, s.audits, s.errors)
        for s in breaker_states(queue)
        if s.tripped
    ]


def test_audits_over_target_stop_auto_for_their_version_until_resumed(queue: ReviewQueue) -> None:
    ids = queue.enqueue([review(n, audit=True) for n in range(5)] + [review(9)])
    newer = queue.enqueue([review(20, audit=True, model_version="4")])
    assert queue.decided() == [] and review(0, audit=True).target_error == 0.1

    decide(queue, ids[0], OVERTURNED)  # 1 of 1 over a 10% target: p = 0.1, not yet evidence
    decide(queue, ids[5], OVERTURNED)  # a human-routed decision is no audit
    assert stopped(queue) == []
    decide(queue, ids[1], OVERTURNED)  # 2 of 2: p = 0.01
    assert stopped(queue) == [("wait-time", "3", 2, 2)]
    (state,) = breaker_states(queue)
    assert state.target == 0.1 and state.p_value == pytest.approx(0.01)

    alarms = AuditAlarms(queue, refresh_seconds=0)
    assert set(asyncio.run(alarms.stopped("3"))) == {"wait-time"}
    assert asyncio.run(alarms.stopped("4")) == {}  # a newly promoted version starts clean
    decide(queue, newer[0], UPHELD)
    assert stopped(queue) == [("wait-time", "3", 2, 2)]

    (resumed,) = resume(queue, "wait-time", "maya")
    assert not resumed.tripped and resumed.resumed_by == "maya"
    assert asyncio.run(alarms.stopped("3")) == {}
    with pytest.raises(NotStopped, match="not stopped"):
        resume(queue, "wait-time", "maya")

    decide(queue, ids[2], OVERTURNED)  # the two before the resume no longer count
    assert stopped(queue) == []
    decide(queue, ids[3], UPHELD)
    decide(queue, ids[4], OVERTURNED)  # 2 of 3 since the resume: p = 0.028
    assert stopped(queue) == [("wait-time", "3", 3, 2)]


def test_audits_at_the_target_do_not_stop_auto(queue: ReviewQueue) -> None:
    ids = queue.enqueue([review(n, audit=True) for n in range(10)])
    for n, entry_id in enumerate(ids):
        decide(queue, entry_id, OVERTURNED if n == 0 else UPHELD)  # 1 in 10: the target
    assert breaker_states(queue) == []


def test_peers_who_agree_on_an_audit_count_like_an_expert(queue: ReviewQueue) -> None:
    from prescore.review.verdicts import Assessor

    ids = queue.enqueue([review(n, audit=True) for n in range(2)])
    for entry_id in ids:
        for peer in ("sam", "kim"):
            who = Assessor(peer, "peer", ["wait-time"], [])
            queue.decide(entry_id, OVERTURNED, peer, ["wait-time"], 1, who)
    assert stopped(queue) == [("wait-time", "3", 2, 2)]


def scored_request() -> tuple[list[ScoredEvidence], list[SubmissionDecision]]:
    items, scores = [], []
    for n, credential in enumerate(("wait-time", "feedback")):
        for criterion in (PLANNING, REFLECTION):
            item, scored = scored_item(n, criterion, credential)
            items.append(item)
            scores.append(scored.model_copy(update={"route": Route.auto, "reasons": []}))
    decisions = [
        d.model_copy(update={"route": Route.auto, "reasons": []})
        for d in decide_submissions(items, scores, card())
    ]
    return scores, decisions


def test_a_stopped_credential_routes_its_decisions_and_items_to_a_human(
    queue: ReviewQueue,
) -> None:
    scores, decisions = scored_request()
    ids = queue.enqueue([review(n, audit=True) for n in range(2)])
    for entry_id in ids:
        decide(queue, entry_id, OVERTURNED)
    alarms = asyncio.run(AuditAlarms(queue).stopped("3"))

    routed, decided = stop_auto(scores, decisions, alarms)
    assert [(s.credential_id, s.route, s.reasons) for s in routed] == [
        ("wait-time", Route.human, [Reason.audit_alarm]),
        ("wait-time", Route.human, [Reason.audit_alarm]),
        ("feedback", Route.auto, []),
        ("feedback", Route.auto, []),
    ]
    assert [(d.credential_id, d.route, d.reasons) for d in decided] == [
        ("wait-time", Route.human, [Reason.audit_alarm]),
        ("feedback", Route.auto, []),
    ]
    assert routed[0].level == scores[0].level  # the suggestion stays
    assert stop_auto(scores, decisions, {}) == (scores, decisions)

    shown = {c.credential_id: c.audit_alarm for c in with_alarms(card(), alarms).credentials}
    assert shown["feedback"] is None
    alarm = shown["wait-time"]
    assert alarm is not None
    assert (alarm.audits, alarm.errors, alarm.target_error, alarm.model_version) == (2, 2, 0.1, "3")
    assert alarm.resume == "prescore audits resume wait-time"


def test_the_service_logs_a_stop_once_and_its_resume_once(
    queue: ReviewQueue, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    alarms = AuditAlarms(queue, refresh_seconds=5, clock=lambda: now[0])
    ids = queue.enqueue([review(n, audit=True) for n in range(2)])
    for entry_id in ids:
        decide(queue, entry_id, OVERTURNED)
    with caplog.at_level(logging.INFO, logger="prescore.serving"):
        assert asyncio.run(alarms.stopped("3"))
        now[0] = 6.0
        assert asyncio.run(alarms.stopped("3"))  # read again, still stopped: no second line
        resume(queue, "wait-time", "maya")
        now[0] = 8.0
        assert asyncio.run(alarms.stopped("3"))  # not reread within 5 s
        now[0] = 12.0
        assert asyncio.run(alarms.stopped("3")) == {}
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in lines] == ["WARNING", "INFO"]
    assert "wait-time stopped (audit_alarm)" in lines[0][1]
    assert "prescore audits resume wait-time" in lines[0][1]
    assert "resumed by maya" in lines[1][1]
    assert not any("Essay" in message for _, message in lines)  # never evidence


def test_prescore_audits_lists_and_resumes(queue: ReviewQueue, review_db: str) -> None:
    runner = CliRunner()
    db = ["--review-db", review_db]
    empty = runner.invoke(app, ["audits", "list", *db], env=WIDE)
    assert empty.exit_code == 0 and "No credential" in empty.output
    for entry_id in queue.enqueue([review(n, audit=True) for n in range(2)]):
        decide(queue, entry_id, OVERTURNED)

    listed = runner.invoke(app, ["audits", "list", *db], env=WIDE)
    assert listed.exit_code == 0 and "stopped" in listed.output and "wait-time" in listed.output
    resumed = runner.invoke(app, ["audits", "resume", "wait-time", "--by", "maya", *db], env=WIDE)
    assert resumed.exit_code == 0 and "Resumed auto decisions of wait-time" in resumed.output
    again = runner.invoke(app, ["audits", "resume", "wait-time", *db], env=WIDE)
    assert again.exit_code == 1 and "is not stopped" in again.output
    listed = runner.invoke(app, ["audits", "list", *db], env=WIDE)
    assert "running" in listed.output and "by maya" in listed.output
