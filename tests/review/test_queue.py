"""The review queue of submissions: ordering, assignment, one decision per submission with its
levels and feedback, audits, nothing lost on restart."""

from __future__ import annotations

import logging
import random
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from prescore.data.schema import AwardRule, Stakes
from prescore.eval.routing import DecisionPolicy, Reason, Route
from prescore.review.database import MissingDriver
from prescore.review.intake import ItemToReview, ToReview, submissions_to_review
from prescore.review.queue import Filters, ReviewQueue
from prescore.review.reviewers import assigned, authenticate, set_reviewer
from prescore.review.tables import SubmissionEntry, as_utc
from prescore.review.verdicts import AlreadyDecided, NotAssigned, Verdict
from prescore.serving.schemas import (
    CredentialCard,
    CriterionCard,
    EvidenceToScore,
    LevelProbability,
    ModelCard,
    ScoredEvidence,
)
from tests.postgres import PostgresServer
from tests.review.card_decisions import decide_submissions

LEVELS = ["Not yet", "Developing", "Proficient"]
PLANNING = CriterionCard(
    criterion_id="planning",
    title="Plans pauses after questions",
    levels=LEVELS,
    level_descriptions=["none", "some", "every question"],
    met_index=2,
    qualified=True,
    qualification_failures=[],
    auto_threshold=0.9,
    target_error=0.1,
)
REFLECTION = CriterionCard(
    criterion_id="reflection",
    title="Reflects on the effect",
    levels=["0", "1", "2", "3"],
    level_descriptions=["", "", "", ""],
    met_index=2,
    qualified=True,
    qualification_failures=[],
    auto_threshold=0.9,
    target_error=0.1,
)
LEVEL_OF = {"planning": "Developing", "reflection": "2"}


def scored_item(
    n: int,
    criterion: CriterionCard,
    credential: str = "wait-time",
    confidence: float = 0.5,
    prediction_set: tuple[str, ...] = (),
    consent: bool = True,
    deadline: datetime | None = None,
    text: str | None = None,
    model_version: str = "3",
    model_name: str = "prescore-test",
) -> tuple[EvidenceToScore, ScoredEvidence]:
    item = EvidenceToScore(
        submission_id=f"s{n}",
        credential_id=credential,
        criterion_id=criterion.criterion_id,
        evidence_type="reflection",
        text=text or f"Evidence {n}: I waited after each question.",
        educator_id=f"e{n}",
        consent_to_train=consent,
        deadline=deadline,
    )
    level = LEVEL_OF[criterion.criterion_id]
    others = (1 - confidence) / (len(criterion.levels) - 1)
    scored = ScoredEvidence(
        submission_id=item.submission_id,
        credential_id=credential,
        criterion_id=criterion.criterion_id,
        level=level,
        level_value=float(criterion.levels.index(level)),
        expected_value=float(criterion.levels.index(level)),
        probabilities=[
            LevelProbability(
                label=label, value=float(i), probability=confidence if label == level else others
            )
            for i, label in enumerate(criterion.levels)
        ],
        confidence=confidence,
        prediction_set=list(prediction_set) or [level],
        route=Route.human,
        reasons=[Reason.low_confidence],
        model_name=model_name,
        model_version=model_version,
    )
    return item, scored


def card(
    stakes: str = "low", credentials: tuple[str, ...] = ("wait-time", "feedback")
) -> ModelCard:
    return ModelCard(
        model_name="prescore-test",
        model_version="3",
        credentials=[
            CredentialCard(
                credential_id=credential,
                stakes=stakes,
                criteria=[PLANNING, REFLECTION],
                decision=DecisionPolicy(
                    credential_id=credential,
                    stakes=Stakes(stakes),
                    award=AwardRule(),
                    criteria=["planning", "reflection"],
                    qualified=True,
                    threshold=0.5,
                    award_threshold=0.5,
                    target_error=0.1,
                    confidence_level=0.9,
                ),
            )
            for credential in credentials
        ],
    )


def review(
    n: int,
    confidence: float = 0.5,
    credential: str = "wait-time",
    stakes: str = "low",
    deadline: datetime | None = None,
    prediction_set: tuple[str, ...] = (),
    consent: bool = True,
    audit: bool = False,
    reasons: tuple[Reason, ...] = (Reason.low_confidence,),
    shared_text: bool = True,
    model_version: str = "3",
    model_name: str = "prescore-test",
) -> ToReview:
    """A submission of two criteria; `prediction_set` is planning's (default: its level)."""
    essay = f"Essay {n}: I waited after each question."
    texts = (essay, essay) if shared_text else (f"Plan {n}: pauses.", f"Reflection {n}: it helped.")
    pairs = [
        scored_item(
            n,
            PLANNING,
            credential,
            0.6,
            prediction_set,
            consent,
            deadline,
            texts[0],
            model_version,
            model_name,
        ),
        scored_item(
            n, REFLECTION, credential, 0.7, (), consent, None, texts[1], model_version, model_name
        ),
    ]
    items, scores = [p[0] for p in pairs], [p[1] for p in pairs]
    (decision,) = decide_submissions(items, scores, card(stakes))
    decision = decision.model_copy(
        update={
            "confidence": confidence,
            "route": Route.auto if audit else Route.human,
            "reasons": [] if audit else list(reasons),
        }
    )
    (to_review,) = submissions_to_review(
        items, scores, [decision], card(stakes), audit_rate=1.0, draw=lambda: 0.0
    )
    assert to_review.audit is audit
    return to_review


VERDICT = Verdict({"planning": "Proficient", "reflection": "1"}, "not_yet", "Say why you paused.")
EVERY_CRITERION_MET = {"planning": "Proficient", "reflection": "3"}


@pytest.fixture
def queue(review_db: str) -> Iterator[ReviewQueue]:
    """A new queue, on SQLite and again on Postgres: every queue test runs on both."""
    queue = ReviewQueue(review_db)
    yield queue
    queue.engine.dispose()


def test_human_decisions_and_audited_auto_decisions_are_queued_with_their_items() -> None:
    items, scores = [], []
    for n in range(3):
        for criterion in (PLANNING, REFLECTION):
            item, scored = scored_item(n, criterion, credential="wait-time")
            items.append(item)
            scores.append(scored)
    decisions = decide_submissions(items, scores, card())
    routes = [Route.human, Route.auto, Route.auto]
    decisions = [d.model_copy(update={"route": r}) for d, r in zip(decisions, routes, strict=True)]
    draws = iter([0.9, 0.01])  # only auto decisions draw: the first is not audited, the second is
    batch = submissions_to_review(items, scores, decisions, card(), 0.05, lambda: next(draws))
    assert [(r.decision.submission_id, r.audit) for r in batch] == [("s0", False), ("s2", True)]
    assert [m.item.criterion_id for m in batch[0].items] == ["planning", "reflection"]
    assert all(m.item.submission_id == "s2" for m in batch[1].items)
    assert batch[0].target_error == 0.1 and batch[0].stakes == "low"
    none = submissions_to_review(items, scores, decisions, card(), 0.0)
    assert [r.decision.submission_id for r in none] == ["s0"]


def test_a_submission_row_keeps_the_decision_and_one_row_per_criterion(
    queue: ReviewQueue,
) -> None:
    deadline = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    (entry_id,) = queue.enqueue([review(0, stakes="high", deadline=deadline, audit=True)])
    entry = queue.get(entry_id, ["wait-time"])
    assert entry is not None
    assert (entry.submission_id, entry.credential_id, entry.educator_id) == (
        "s0",
        "wait-time",
        "e0",
    )
    assert entry.deadline is not None and as_utc(entry.deadline) == deadline  # SQLite drops zones
    assert (entry.stakes, entry.consent_to_train) == ("high", True)
    assert entry.decision in ("earned", "not_yet") and entry.route == "auto" and entry.audit
    assert entry.reasons == ["audit_sample"] and entry.target_error == 0.1
    assert (entry.model_name, entry.model_version, entry.status) == (
        "prescore-test",
        "3",
        "pending",
    )
    assert entry.version == 1  # where the optimistic version counter starts
    planning, reflection = entry.items
    assert (planning.criterion_id, planning.criterion_title) == ("planning", PLANNING.title)
    assert planning.levels == LEVELS and planning.level_descriptions == [
        "none",
        "some",
        "every question",
    ]
    assert (planning.met_index, planning.suggested_level, planning.confidence) == (
        2,
        "Developing",
        0.6,
    )
    assert planning.prediction_set == ["Developing"] and planning.reasons == ["low_confidence"]
    assert planning.probabilities == pytest.approx([0.2, 0.6, 0.2])
    assert reflection.text == planning.text and reflection.evidence_type == "reflection"


def test_a_new_entry_fills_every_column_but_those_a_reviewer_fills_later() -> None:
    """The rows are written by Core inserts, not the ORM: a column added to the model and
    forgotten in the row builders would be stored empty (or fail every answer)."""
    from prescore.review.intake import submission_rows
    from prescore.review.tables import ItemEntry

    submission, items = submission_rows(review(0), datetime.now(UTC))
    reviewer_fills = {"decided_decision", "feedback", "decided_by", "decided_at"}
    assert set(submission) == {c.key for c in SubmissionEntry.__table__.columns} - {
        "id",
        *reviewer_fills,
    }
    for item in items:
        assert set(item) == {c.key for c in ItemEntry.__table__.columns} - {
            "id",
            "submission_entry_id",  # the entry's id, known once it is inserted
            "decided_level",
        }


def test_a_request_with_nothing_to_review_opens_no_transaction(queue: ReviewQueue) -> None:
    from sqlalchemy import event

    begun: list[object] = []
    event.listen(queue.engine, "begin", begun.append)
    assert queue.enqueue([]) == []
    assert begun == []
    queue.enqueue([review(0)])
    assert len(begun) == 1


def test_high_stakes_by_deadline_first_then_the_most_uncertain(queue: ReviewQueue) -> None:
    soon, later = datetime.now(UTC) + timedelta(days=1), datetime.now(UTC) + timedelta(days=9)
    ids = queue.enqueue(
        [
            review(0, confidence=0.9),
            review(1, confidence=0.4),
            review(2, stakes="high", deadline=later, confidence=0.2),
            review(3, stakes="high", deadline=soon, confidence=0.95),
            review(4, confidence=0.8, prediction_set=("Developing", "Proficient")),  # met cut
            review(5, confidence=0.9, audit=True),
        ]
    )
    order = [e.id for e in queue.pending(["wait-time"])]
    assert order == [ids[3], ids[2], ids[4], ids[1], ids[5], ids[0]]


def test_high_stakes_without_a_deadline_come_after_those_with_one(queue: ReviewQueue) -> None:
    soon, later = datetime.now(UTC) + timedelta(days=1), datetime.now(UTC) + timedelta(days=9)
    ids = queue.enqueue(
        [
            review(0, confidence=0.9),
            review(1, stakes="high", confidence=0.9),
            review(2, stakes="high", deadline=later, confidence=0.5),
            review(3, stakes="high", confidence=0.2),
            review(4, stakes="high", deadline=soon, confidence=0.9),
            review(5, deadline=soon, confidence=0.3),  # a low-stakes deadline does not count
            review(6, confidence=0.9),  # ties with 0: the older entry first
        ]
    )
    order = [e.id for e in queue.pending(["wait-time"])]
    assert order == [ids[4], ids[2], ids[3], ids[1], ids[5], ids[0], ids[6]]


def python_order(entry: SubmissionEntry) -> tuple[Any, ...]:
    """The order the queue kept in Python before the database sorted it."""
    high = entry.stakes == "high"
    deadline = entry.deadline.timestamp() if entry.deadline else float("inf")
    return (not high, deadline if high else 0.0, -entry.priority, entry.id)


def test_the_database_orders_as_the_python_sort_did(queue: ReviewQueue) -> None:
    draw = random.Random(12)
    start = datetime.now(UTC)
    queue.enqueue(
        [
            review(
                n,
                confidence=draw.choice([0.2, 0.5, 0.5, 0.9]),
                stakes=draw.choice(["low", "high"]),
                deadline=draw.choice([None, start + timedelta(hours=draw.randint(1, 5))]),
                audit=draw.random() < 0.3,
                prediction_set=draw.choice([(), ("Developing", "Proficient")]),
            )
            for n in range(60)
        ]
    )
    everything = queue.pending(["wait-time"], limit=1000)
    assert len(everything) == 60
    assert [e.id for e in everything] == [e.id for e in sorted(everything, key=python_order)]


def test_the_reason_filter_matches_whole_reasons(queue: ReviewQueue) -> None:
    short, long, audited, high = queue.enqueue(
        [
            review(0, reasons=(Reason.input_too_short,)),
            review(1, reasons=(Reason.input_too_long, Reason.low_confidence)),
            review(2, audit=True),
            review(3, reasons=(Reason.high_stakes,)),
        ]
    )

    def matching(reason: str) -> list[int]:
        return sorted(e.id for e in queue.pending(["wait-time"], Filters(reason=reason)))

    assert matching("input_too_short") == [short]
    assert matching("input_too_long") == [long]
    assert matching("low_confidence") == [long]
    assert matching("audit_sample") == [audited]
    assert matching("high_stakes") == [high]
    assert matching("input_too") == []  # a part of a reason is no reason
    assert matching("input%short") == matching("input_too_shor_") == []  # no wildcards
    assert queue.count_pending(["wait-time"], Filters(reason="low_confidence")) == 1
    assert queue.count_pending(["feedback"], Filters(reason="low_confidence")) == 0


def test_pages_of_the_queue_cover_it_once_in_order(queue: ReviewQueue) -> None:
    queue.enqueue(
        [review(n, confidence=n / 10, stakes="high" if n % 3 else "low") for n in range(7)]
    )
    queue.enqueue([review(7, credential="feedback")])
    whole = [e.id for e in queue.pending(["wait-time"])]
    pages = [[e.id for e in queue.pending(["wait-time"], limit=3, offset=k)] for k in (0, 3, 6, 9)]
    assert [len(page) for page in pages] == [3, 3, 1, 0]
    assert sum(pages, []) == whole
    assert queue.count_pending(["wait-time"]) == 7
    assert queue.count_pending(["wait-time", "feedback"]) == 8
    assert queue.count_pending(["wait-time", "feedback"], Filters("feedback")) == 1
    (first,) = queue.pending(["wait-time"], limit=1)
    queue.decide(first.id, VERDICT, "ana", ["wait-time"], first.version)
    assert queue.count_pending(["wait-time"]) == 6  # decided entries leave the count


def test_one_decision_records_every_level_the_decision_and_feedback(queue: ReviewQueue) -> None:
    (entry_id,) = queue.enqueue([review(0)])
    decided = queue.decide(entry_id, VERDICT, "ana", ["wait-time"], 1)
    assert (decided.status, decided.decided_decision, decided.decided_by) == (
        "decided",
        "not_yet",
        "ana",
    )
    stored = queue.get(entry_id, ["wait-time"])
    assert stored is not None and stored.feedback == "Say why you paused."
    assert [i.decided_level for i in stored.items] == ["Proficient", "1"]
    assert stored.decided_at is not None and stored.version == 2


@pytest.mark.parametrize(
    ("verdict", "problem"),
    [
        (Verdict({"planning": "Proficient"}, "earned", ""), "pick a level for reflection"),
        (Verdict({"planning": "Excellent", "reflection": "1"}, "earned", ""), "not a level"),
        (Verdict({**VERDICT.levels, "pacing": "1"}, "earned", ""), "no criteria"),
        (Verdict(VERDICT.levels, "maybe", "x"), "decision must be"),
        (Verdict(VERDICT.levels, "not_yet", "  "), "what to strengthen"),
        (Verdict(VERDICT.levels, "earned", ""), "the award rule needs 2"),
        (Verdict(EVERY_CRITERION_MET, "not_yet", "Why?"), "so the decision is earned"),
    ],
)
def test_an_incomplete_or_off_rubric_verdict_changes_nothing(
    queue: ReviewQueue, verdict: Verdict, problem: str
) -> None:
    (entry_id,) = queue.enqueue([review(0)])
    with pytest.raises(ValueError, match=problem):
        queue.decide(entry_id, verdict, "ana", ["wait-time"], 1)
    entry = queue.get(entry_id, ["wait-time"])
    assert entry is not None and entry.status == "pending" and entry.version == 1
    assert [i.decided_level for i in entry.items] == [None, None]


def test_earned_needs_no_feedback(queue: ReviewQueue) -> None:
    (entry_id,) = queue.enqueue([review(0)])
    queue.decide(entry_id, Verdict(EVERY_CRITERION_MET, "earned", ""), "ana", ["wait-time"], 1)
    assert queue.count_pending(["wait-time"]) == 0


def test_decided_submissions_become_records_for_export_and_drift(queue: ReviewQueue) -> None:
    ids = queue.enqueue([review(0, audit=True), review(1, consent=False), review(2)])
    queue.decide(ids[0], VERDICT, "ana", ["wait-time"], 1)
    queue.decide(ids[1], Verdict(EVERY_CRITERION_MET, "earned", ""), "ben", ["wait-time"], 1)
    records = queue.reviewed_items()  # the pending submission is not reviewed yet
    assert [(r.submission_id, r.criterion_id) for r in records] == [
        ("s0", "planning"),
        ("s0", "reflection"),
        ("s1", "planning"),
        ("s1", "reflection"),
    ]
    first = records[0]
    assert (first.decided_level, first.decided_by, first.decision) == (
        "Proficient",
        "ana",
        "not_yet",
    )
    assert (first.educator_id, first.consent_to_train, records[2].consent_to_train) == (
        "e0",
        True,
        False,
    )
    assert (first.suggested_level, first.model_version, first.model_name) == (
        "Developing",
        "3",
        "prescore-test",
    )
    assert first.feedback == "Say why you paused." and records[2].feedback == ""
    assert first.text.startswith("Essay 0") and first.decided_at is not None
    assert len({r.entry_id for r in records}) == 4  # one record id per criterion item
    levels = queue.reviewed_decisions()
    assert [(d.decided_index, d.suggested_index, d.levels, d.audit) for d in levels] == [
        (2, 1, 3, True),
        (1, 2, 4, True),
        (2, 1, 3, False),
        (3, 2, 4, False),  # ben met every criterion
    ]
    audit, human = queue.reviewed_submissions()
    assert (audit.decided, audit.audit, audit.target_error) == ("not_yet", True, 0.1)
    assert audit.suggested == queue.decided()[0].decision
    assert (human.decided, human.audit) == ("earned", False)


def test_a_submission_with_one_item_without_consent_is_not_for_training(
    queue: ReviewQueue,
) -> None:
    to_review = review(0)
    first, second = to_review.items
    withheld = second.item.model_copy(update={"consent_to_train": False})
    mixed = ToReview(
        to_review.decision,
        [first, type(second)(withheld, second.scored, second.criterion)],
        to_review.stakes,
        to_review.target_error,
    )
    (entry_id,) = queue.enqueue([mixed])
    entry = queue.get(entry_id, ["wait-time"])
    assert entry is not None and entry.consent_to_train is False


def test_a_reviewer_sees_and_decides_only_assigned_credentials(queue: ReviewQueue) -> None:
    first, other = queue.enqueue([review(0), review(1, credential="feedback")])
    assert [e.id for e in queue.pending(["wait-time"])] == [first]
    assert [e.id for e in queue.pending(["wait-time", "feedback"], Filters("feedback"))] == [other]
    assert queue.pending(["wait-time"], Filters(reason="high_stakes")) == []
    with pytest.raises(NotAssigned):
        queue.get(other, ["wait-time"])
    with pytest.raises(NotAssigned):
        queue.decide(other, VERDICT, "ana", ["wait-time"], seen_version=1)


def test_two_reviewers_deciding_one_submission_at_once_decide_it_once(
    queue: ReviewQueue,
) -> None:
    (entry_id,) = queue.enqueue([review(0)])
    version = queue.get(entry_id, ["wait-time"]).version  # type: ignore[union-attr]
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def decide(name: str, verdict: Verdict) -> None:
        start.wait()
        try:
            queue.decide(entry_id, verdict, name, ["wait-time"], version)
            outcomes.append(f"{name} decided")
        except AlreadyDecided:
            outcomes.append(f"{name} refused")

    earned = Verdict({"planning": "Proficient", "reflection": "3"}, "earned", "")
    threads = [
        threading.Thread(target=decide, args=("ana", earned)),
        threading.Thread(target=decide, args=("ben", VERDICT)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o.split()[1] for o in outcomes) == ["decided", "refused"]
    (decided,) = queue.decided()
    winner = next(o.split()[0] for o in outcomes if o.endswith("decided"))
    assert decided.decided_by == winner
    expected = earned if winner == "ana" else VERDICT
    assert [i.decided_level for i in decided.items] == list(expected.levels.values())
    with pytest.raises(AlreadyDecided):  # and later, with the old version, too
        queue.decide(entry_id, VERDICT, "cy", ["wait-time"], version)


def test_a_restart_loses_nothing_acknowledged(review_db: str) -> None:
    queue = ReviewQueue(review_db)
    ids = queue.enqueue([review(0), review(1)])
    queue.decide(ids[0], VERDICT, "ana", ["wait-time"], 1)
    queue.engine.dispose()
    reopened = ReviewQueue(review_db)
    assert [e.id for e in reopened.pending(["wait-time"])] == [ids[1]]
    (decided,) = reopened.decided()
    assert (decided.id, decided.decided_decision, decided.decided_by) == (ids[0], "not_yet", "ana")
    assert [i.decided_level for i in decided.items] == ["Proficient", "1"]


def test_a_failed_enqueue_stores_no_submission_of_the_request(
    queue: ReviewQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import IntegrityError

    from prescore.review import intake as queue_module

    queue.enqueue([review(0)])
    built = queue_module.submission_rows

    def second_breaks(
        to_review: ToReview, now: datetime
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        submission, items = built(to_review, now)
        if to_review.decision.submission_id == "s2":
            submission["stakes"] = None  # NOT NULL: the insert fails
        return submission, items

    monkeypatch.setattr(queue_module, "submission_rows", second_breaks)
    with pytest.raises(IntegrityError) as failed:
        queue.enqueue([review(1), review(2)])
    assert [e.submission_id for e in queue.pending(["wait-time"])] == ["s0"]
    # the database error never carries the rows, so the evidence cannot reach a log
    assert "Essay" not in str(failed.value) and "parameters hidden" in str(failed.value)


def test_a_receipt_whose_key_was_answered_stores_none_of_its_submissions(
    queue: ReviewQueue,
) -> None:
    from sqlalchemy.exc import IntegrityError

    from prescore.serving.human_review import Receipt

    queue.enqueue([review(0)], Receipt("key-1", "digest-0", '{"first": true}'))
    with pytest.raises(IntegrityError):  # the same key, meanwhile: the service answers the first
        queue.enqueue([review(1), review(2)], Receipt("key-1", "digest-1", "{}"))
    assert [e.submission_id for e in queue.pending(["wait-time"])] == ["s0"]
    stored = queue.receipt("key-1")
    assert stored is not None and stored.response == '{"first": true}'


def test_entries_are_written_where_sqlite_has_no_insert_returning(tmp_path: Path) -> None:
    """SQLite before 3.35 (still shipped by some systems) has no INSERT ... RETURNING."""
    queue = ReviewQueue.at(tmp_path / "queue.db")
    queue.engine.dialect.insert_returning = False  # as SQLAlchemy sets it for such a SQLite
    ids = queue.enqueue([review(0), review(1)])
    assert [e.id for e in queue.pending(["wait-time"])] == ids == sorted(ids)
    assert [len(e.items) for e in queue.pending(["wait-time"])] == [2, 2]


def test_a_submission_without_items_is_stored_without_items(queue: ReviewQueue) -> None:
    bare = review(0)
    (entry_id,) = queue.enqueue([ToReview(bare.decision, [], bare.stakes, bare.target_error)])
    entry = queue.get(entry_id, ["wait-time"])
    assert entry is not None and entry.items == []


def test_deadlines_with_an_offset_order_by_the_moment_they_fall_due(queue: ReviewQueue) -> None:
    from datetime import timezone

    plus_two = timezone(timedelta(hours=2))
    later = datetime(2026, 12, 1, 11, 0, tzinfo=UTC)
    earlier = datetime(2026, 12, 1, 12, 30, tzinfo=plus_two)  # 10:30 UTC
    queue.enqueue([review(0, stakes="high", deadline=later)])
    queue.enqueue([review(1, stakes="high", deadline=earlier)])
    first, second = queue.pending(["wait-time"])
    assert (first.submission_id, second.submission_id) == ("s1", "s0")
    assert first.deadline is not None and first.deadline.replace(tzinfo=UTC).hour == 10


def test_reviewer_accounts(queue: ReviewQueue) -> None:
    set_reviewer(queue, "ana", "correct horse", ["wait-time"])
    assert authenticate(queue, "ana", "correct horse") is not None
    assert authenticate(queue, "ana", "wrong horse!") is None
    assert authenticate(queue, "nobody", "correct horse") is None
    assert assigned(queue, "ana") == ["wait-time"]
    with pytest.raises(ValueError, match="8 characters"):
        set_reviewer(queue, "ben", "short", ["wait-time"])


def test_a_new_review_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    database = tmp_path / "fresh" / "review.db"
    ReviewQueue.at(database).enqueue([review(0)])  # evidence text and, later, password hashes
    assert oct(database.stat().st_mode & 0o777) == "0o600"


def test_a_reviewer_password_comes_from_a_prompt_or_stdin_never_an_option(review_db: str) -> None:
    from typer.testing import CliRunner

    from prescore.cli import app

    database = review_db
    base = ["reviewers", "add", "ana", "--kind", "expert", "--credentials", "wait-time"]
    base += ["--review-db", database]
    piped = CliRunner().invoke(app, [*base, "--password-stdin"], input="correct horse\n")
    assert piped.exit_code == 0, piped.output
    assert authenticate(ReviewQueue(database), "ana", "correct horse") is not None
    typed = CliRunner().invoke(app, base, input="battery staple\nbattery staple\n")
    assert typed.exit_code == 0, typed.output
    assert authenticate(ReviewQueue(database), "ana", "battery staple") is not None
    option = CliRunner().invoke(app, [*base, "--password", "on the command line"])
    assert option.exit_code == 2  # no such option: it would land in shell history and ps


def test_the_first_write_after_a_postgres_restart_succeeds(postgres: PostgresServer) -> None:
    queue = ReviewQueue(postgres.new_database("restart"))
    (first,) = queue.enqueue([review(0)])  # leaves a pooled connection the restart will close
    postgres.restart()
    (second,) = queue.enqueue([review(1)])  # the stale connection is noticed and replaced
    assert [e.id for e in queue.pending(["wait-time"])] == [first, second]
    queue.engine.dispose()


def test_a_write_postgres_refuses_carries_no_evidence_in_its_error(
    postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Postgres details a refused row ("Failing row contains (...)") whatever
    hide_parameters says; neither the error nor any log may hold the text."""
    from sqlalchemy.exc import IntegrityError

    url = postgres.new_database("refused")
    queue = ReviewQueue(url)
    postgres.execute(url, "ALTER TABLE review_items ADD CHECK (text NOT LIKE '%refuse me%')")
    secret = "Confidential reflection about student Amira: refuse me"
    to_review = review(0)
    items = [
        ItemToReview(m.item.model_copy(update={"text": secret}), m.scored, m.criterion)
        for m in to_review.items
    ]
    with caplog.at_level(logging.DEBUG), pytest.raises(IntegrityError) as failed:
        queue.enqueue([replace(to_review, items=items)])
    error = failed.value
    shown = "".join(traceback.format_exception(error)) + caplog.text
    assert "violates check constraint" in shown  # the cause is kept
    assert "Amira" not in shown and "Failing row" not in shown
    assert queue.pending(["wait-time"]) == []
    queue.engine.dispose()


def test_a_postgres_url_without_its_driver_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from prescore.cli import app

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if `prescore[postgres]` were absent
    url = "postgresql://queue:secret-password@db.example:5432/prescore"
    with pytest.raises(MissingDriver, match=r"pip install 'prescore\[postgres\]'"):
        ReviewQueue(url)
    exported = CliRunner().invoke(app, ["export-reviews", "--out", "x.jsonl", "--review-db", url])
    assert exported.exit_code == 1
    assert "pip install 'prescore[postgres]'" in exported.output
    assert "secret-password" not in exported.output and "db.example" in exported.output


def test_feedback_the_database_cannot_hold_is_refused(queue: ReviewQueue) -> None:
    (entry_id,) = queue.enqueue([review(0)])
    for feedback, problem in [("Pause\x00longer.", "NUL"), ("Pause \ud800 longer.", "surrogate")]:
        verdict = Verdict(VERDICT.levels, "not_yet", feedback)
        with pytest.raises(ValueError, match=problem):
            queue.decide(entry_id, verdict, "ana", ["wait-time"], 1)
    assert queue.count_pending(["wait-time"]) == 1


def test_without_postgres_the_queue_tests_fail_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests import postgres

    monkeypatch.setattr(postgres.shutil, "which", lambda _: None)
    monkeypatch.setattr(postgres, "SERVER_ROOT", tmp_path)  # nothing installed there
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install -y postgresql"):
        postgres.server_binaries()  # a failure, never a skip
    (tmp_path / "16" / "bin").mkdir(parents=True)
    (tmp_path / "16" / "bin" / "initdb").touch()
    (tmp_path / "9" / "bin").mkdir(parents=True)
    (tmp_path / "9" / "bin" / "initdb").touch()
    assert postgres.server_binaries() == tmp_path / "16" / "bin"  # the newest major version


def test_sqlite_writers_in_one_process_take_turns(tmp_path: Path) -> None:
    """SQLite's own wait for its write lock sleeps in steps of up to 100 ms; the queue's
    writers queue on a lock of their own instead, so a second write starts when the first
    ends, not at SQLite's next poll."""
    queue = ReviewQueue.at(tmp_path / "review.db")
    first_inside, release = threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> None:
        with queue.writing():
            first_inside.set()
            release.wait(5)
            order.append("first done")

    def second() -> None:
        with queue.writing():
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert first_inside.wait(5)
    threads[1].start()
    threads[1].join(0.2)
    assert order == []  # the second writer waits while the first holds the turn
    release.set()
    for thread in threads:
        thread.join(5)
    assert order == ["first done", "second in"]
    queue.engine.dispose()


def test_receipts_expire_and_are_keyed_by_caller(
    queue: ReviewQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receipt answers retries for a while, then goes; its key is a digest scoped to the
    caller's API key, never the key the client chose."""
    from sqlalchemy import update

    import prescore.review.intake as module
    from prescore.review.tables import ScoreReceipt
    from prescore.serving.human_review import Receipt, receipt_key

    key = receipt_key("api-key-1", "educator-ana-retry")
    assert key != receipt_key("api-key-2", "educator-ana-retry")  # another caller's
    assert key == receipt_key("api-key-1", "educator-ana-retry") and "ana" not in key
    cutoff = datetime.now(UTC) - timedelta(hours=24)
    monkeypatch.setattr(module.random, "random", lambda: 0.5)  # no full purge for now
    for stored_key in [key, *(receipt_key("api-key-1", f"k{n}") for n in range(5))]:
        queue.enqueue([], Receipt(stored_key, "digest-0", '{"first": true}'), cutoff)
    assert queue.receipt(key, cutoff) is not None
    with queue.writing() as session:  # a day and an hour on
        session.execute(
            update(ScoreReceipt).values(created_at=datetime.now(UTC) - timedelta(hours=25))
        )
    assert queue.receipt(key, cutoff) is None  # expired: the same key is free again
    queue.enqueue([], Receipt(key, "digest-1", "{}"), cutoff)
    stored = queue.receipt(key, cutoff)
    assert stored is not None and stored.request_digest == "digest-1"
    assert queue.count_receipts() == 6  # only its own expired receipt went
    monkeypatch.setattr(module.random, "random", lambda: 0.0)  # the 1-in-100 full purge
    queue.enqueue([], Receipt("fresh", "d", "{}"), cutoff)
    assert queue.count_receipts() == 2  # every expired one went: the table stays bounded


def test_receipts_stay_bounded_whatever_keys_clients_choose(
    queue: ReviewQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100,000 distinct client-chosen Idempotency-Keys, one a megabyte long, are stored as
    fixed-size digests, and once a day old the first full purge deletes every one of them in
    one statement: the table holds at most a day's keyed requests, on SQLite and Postgres."""
    from sqlalchemy import func, insert, select

    import prescore.review.intake as module
    from prescore.review.tables import ScoreReceipt
    from prescore.serving.human_review import Receipt, receipt_key

    chosen = [f"client-key-{n}" for n in range(99_999)] + ["k" * 1_000_000]
    day_old = datetime.now(UTC) - timedelta(hours=25)
    rows = [
        {"key": receipt_key("api-key-1", c), "request_digest": "d", "response": "{}",
         "created_at": day_old}
        for c in chosen
    ]  # fmt: skip
    with queue.writing() as session:  # as 100,000 keyed requests a day ago left them
        session.execute(insert(ScoreReceipt), rows)
    with queue.sessions() as session:
        assert session.scalar(select(func.max(func.length(ScoreReceipt.key)))) == 64
    assert queue.count_receipts() == 100_000
    cutoff = datetime.now(UTC) - timedelta(hours=24)
    monkeypatch.setattr(module.random, "random", lambda: 0.0)  # the 1-in-100 full purge
    queue.enqueue([], Receipt(receipt_key("api-key-1", "today"), "d", "{}"), cutoff)
    assert queue.count_receipts() == 1
