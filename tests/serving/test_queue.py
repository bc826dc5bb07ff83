"""The review queue: ordering, assignment, one decision per item, nothing lost on restart."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from prescore.eval.routing import Reason, Route
from prescore.serving.queue import (
    AlreadyDecided,
    Filters,
    NotAssigned,
    QueueEntry,
    ReviewQueue,
    ToReview,
)
from prescore.serving.reviewers import assigned, authenticate, set_reviewer
from prescore.serving.schemas import (
    CriterionCard,
    EvidenceToScore,
    LevelProbability,
    ScoredEvidence,
)

LEVELS = ["Not yet", "Developing", "Proficient"]
CRITERION = CriterionCard(
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


def review(
    n: int,
    confidence: float = 0.5,
    credential: str = "wait-time",
    stakes: str = "low",
    deadline: datetime | None = None,
    prediction_set: tuple[str, ...] = ("Developing",),
    consent: bool = True,
    audit: bool = False,
    reasons: tuple[Reason, ...] = (Reason.low_confidence,),
) -> ToReview:
    item = EvidenceToScore(
        submission_id=f"s{n}",
        credential_id=credential,
        criterion_id="planning",
        evidence_type="reflection",
        text=f"Evidence {n}: I waited after each question.",
        educator_id=f"e{n}",
        consent_to_train=consent,
        deadline=deadline,
    )
    rest = (1 - confidence) / 2
    scored = ScoredEvidence(
        submission_id=item.submission_id,
        credential_id=credential,
        criterion_id="planning",
        level="Developing",
        level_value=2.0,
        probabilities=[
            LevelProbability(label=label, value=i + 1.0, probability=p)
            for i, (label, p) in enumerate(zip(LEVELS, [rest, confidence, rest], strict=True))
        ],
        confidence=confidence,
        prediction_set=list(prediction_set),
        route=Route.human,
        reasons=list(reasons),
        model_name="prescore-test",
        model_version="3",
    )
    return ToReview(item, scored, CRITERION, stakes, audit)


@pytest.fixture
def queue(tmp_path: Path) -> ReviewQueue:
    return ReviewQueue.at(tmp_path / "review.db")


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


def python_order(entry: QueueEntry) -> tuple[Any, ...]:
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
            )
            for n in range(60)
        ]
    )
    everything = queue.pending(["wait-time"], limit=1000)
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
    assert matching("low_confidence") == [long, audited]
    assert matching("audit_sample") == [audited]
    assert matching("high_stakes") == [high]
    assert matching("input_too") == []  # a part of a reason is no reason
    assert matching("input%short") == matching("input_too_shor_") == []  # no wildcards
    assert queue.count_pending(["wait-time"], Filters(reason="low_confidence")) == 2
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
    queue.decide(first.id, "Proficient", "ana", ["wait-time"], first.version)
    assert queue.count_pending(["wait-time"]) == 6  # decided entries leave the count


def test_decided_entries_become_records_for_export_and_drift(queue: ReviewQueue) -> None:
    ids = queue.enqueue([review(0, audit=True), review(1, consent=False), review(2)])
    queue.decide(ids[0], "Proficient", "ana", ["wait-time"], 1)
    queue.decide(ids[1], "Not yet", "ben", ["wait-time"], 1)
    first, second = queue.reviewed_items()  # the pending entry is not reviewed yet
    assert (first.entry_id, first.decided_level, first.decided_by) == (ids[0], "Proficient", "ana")
    assert (first.educator_id, first.consent_to_train, second.consent_to_train) == (
        "e0",
        True,
        False,
    )
    assert (first.suggested_level, first.model_version) == ("Developing", "3")
    assert first.text.startswith("Evidence 0") and first.decided_at is not None
    audit, human = queue.reviewed_decisions()
    assert (audit.decided_index, audit.suggested_index, audit.levels, audit.audit) == (
        2,
        1,
        3,
        True,
    )
    assert (human.decided_index, human.audit) == (0, False)
    assert (human.credential_id, human.criterion_id) == ("wait-time", "planning")


def test_a_reviewer_sees_and_decides_only_assigned_credentials(queue: ReviewQueue) -> None:
    first, other = queue.enqueue([review(0), review(1, credential="feedback")])
    assert [e.id for e in queue.pending(["wait-time"])] == [first]
    assert [e.id for e in queue.pending(["wait-time", "feedback"], Filters("feedback"))] == [other]
    assert queue.pending(["wait-time"], Filters(reason="high_stakes")) == []
    with pytest.raises(NotAssigned):
        queue.get(other, ["wait-time"])
    with pytest.raises(NotAssigned):
        queue.decide(other, "Developing", "ana", ["wait-time"], seen_version=1)


def test_two_reviewers_deciding_one_item_at_once_score_it_once(queue: ReviewQueue) -> None:
    (entry_id,) = queue.enqueue([review(0)])
    version = queue.get(entry_id, ["wait-time"]).version  # type: ignore[union-attr]
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def decide(name: str, level: str) -> None:
        start.wait()
        try:
            queue.decide(entry_id, level, name, ["wait-time"], version)
            outcomes.append(f"{name} decided")
        except AlreadyDecided:
            outcomes.append(f"{name} refused")

    threads = [
        threading.Thread(target=decide, args=("ana", "Proficient")),
        threading.Thread(target=decide, args=("ben", "Not yet")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o.split()[1] for o in outcomes) == ["decided", "refused"]
    (decided,) = queue.decided()
    winner = next(o.split()[0] for o in outcomes if o.endswith("decided"))
    assert decided.decided_by == winner
    with pytest.raises(AlreadyDecided):  # and later, with the old version, too
        queue.decide(entry_id, "Developing", "cy", ["wait-time"], version)


def test_a_level_off_the_rubric_is_refused(queue: ReviewQueue) -> None:
    (entry_id,) = queue.enqueue([review(0)])
    with pytest.raises(ValueError, match="not a level"):
        queue.decide(entry_id, "Excellent", "ana", ["wait-time"], 1)


def test_a_restart_loses_nothing_acknowledged(tmp_path: Path) -> None:
    queue = ReviewQueue.at(tmp_path / "review.db")
    ids = queue.enqueue([review(0), review(1)])
    queue.decide(ids[0], "Proficient", "ana", ["wait-time"], 1)
    queue.engine.dispose()
    reopened = ReviewQueue.at(tmp_path / "review.db")
    assert [e.id for e in reopened.pending(["wait-time"])] == [ids[1]]
    (decided,) = reopened.decided()
    assert (decided.id, decided.decided_level, decided.decided_by) == (ids[0], "Proficient", "ana")


def test_reviewer_accounts(queue: ReviewQueue) -> None:
    set_reviewer(queue, "ana", "correct horse", ["wait-time"])
    assert authenticate(queue, "ana", "correct horse") is not None
    assert authenticate(queue, "ana", "wrong horse!") is None
    assert authenticate(queue, "nobody", "correct horse") is None
    assert assigned(queue, "ana") == ["wait-time"]
    with pytest.raises(ValueError, match="8 characters"):
        set_reviewer(queue, "ben", "short", ["wait-time"])
