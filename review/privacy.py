"""An educator's right to be forgotten, and retention: evidence text leaves the queue while the
decisions the audit and drift figures rest on stay.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Delete, Select, delete, func, or_, select, update
from sqlalchemy.orm import Session

from prescore.review.database import Database
from prescore.review.platform import erase_decision_feedback
from prescore.review.tables import (
    DECIDED,
    ERASED,
    PENDING,
    WITHDRAWN,
    BlindItem,
    ItemEntry,
    Review,
    ScoreReceipt,
    SubmissionEntry,
    as_utc,
)


@dataclass(frozen=True)
class Forgettable:
    """An educator's submissions in the queue: pending ones are deleted, decided ones keep
    their decision and levels and lose the evidence text, the feedback and the educator id;
    `receipts` counts the idempotency receipts whose /score answer names any of them (they
    are deleted)."""

    pending: list[int]
    decided: list[int]
    receipts: int = 0


def educator_entries(queue: Database, educator_id: str) -> Forgettable:
    """The submissions of one educator still holding their evidence: what `forget` acts on."""
    query = select(SubmissionEntry).where(SubmissionEntry.educator_id == educator_id)
    with queue.sessions() as session:
        entries = session.scalars(query.order_by(SubmissionEntry.id)).all()
        receipts = _receipts_naming(session, entries)
    return Forgettable(
        pending=[e.id for e in entries if e.status == PENDING],
        decided=[e.id for e in entries if e.status != PENDING],
        receipts=len(receipts),
    )


RECEIPT_SEARCH_BATCH = 200  # submission ids per query for the receipts that name them


def _receipts_naming(session: Session, entries: Sequence[SubmissionEntry]) -> list[str]:
    """Keys of the idempotency receipts whose stored /score answer names one of these
    submissions (its submission_id with its credential, in `scores` or `submissions`). The
    database narrows them to the answers holding a submission id as JSON writes it; each
    such answer is then read to confirm, so a receipt that only mentions the id in passing
    (another credential's submission of the same id) stays."""
    named = {(e.submission_id, e.credential_id) for e in entries}
    ids = sorted({submission_id for submission_id, _ in named})
    keys: set[str] = set()
    for start in range(0, len(ids), RECEIPT_SEARCH_BATCH):
        written = [
            json.dumps(i, ensure_ascii=False) for i in ids[start : start + RECEIPT_SEARCH_BATCH]
        ]
        query = select(ScoreReceipt.key, ScoreReceipt.response).where(
            or_(*(ScoreReceipt.response.contains(w, autoescape=True) for w in written))
        )
        for key, response in session.execute(query):
            if named & _submissions_in(response):
                keys.add(key)
    return sorted(keys)


def _submissions_in(response: str) -> set[tuple[str, str]]:
    """The (submission_id, credential_id) pairs a stored /score answer names."""
    try:
        answer = json.loads(response)
    except ValueError:
        return set()
    if not isinstance(answer, dict):
        return set()
    rows = [*answer.get("scores", []), *answer.get("submissions", [])]
    return {
        (row["submission_id"], row["credential_id"])
        for row in rows
        if isinstance(row, dict) and "submission_id" in row and "credential_id" in row
    }


def forget_educator(queue: Database, educator_id: str) -> Forgettable:
    """Remove an educator's evidence, in one transaction. A pending submission is withdrawn:
    its text and educator id go, no reviewer sees it again, and what the model suggested
    stays (as for a decided one), so the platform's pull can say it was erased. A decided
    one keeps its decision, levels, reviewer and model version (the audit and drift figures
    rest on them, and they hold no text) and loses the evidence text, the reviewer's
    feedback (written about that text) and the educator id, so nothing in the queue leads
    back to the person. The idempotency receipts whose answer names any of these
    submissions go too: they hold no text, but their levels and decisions would otherwise
    outlive the forgetting by up to a day (a retry of such a request is then scored anew)."""
    with queue.writing() as session:
        entries = session.scalars(
            select(SubmissionEntry).where(SubmissionEntry.educator_id == educator_id)
        ).all()
        receipts = _receipts_naming(session, entries)  # before the pending ones go
        forgotten = Forgettable(
            pending=[e.id for e in entries if e.status == PENDING],
            decided=[e.id for e in entries if e.status != PENDING],
            receipts=len(receipts),
        )
        for start in range(0, len(receipts), RECEIPT_SEARCH_BATCH):
            chunk = receipts[start : start + RECEIPT_SEARCH_BATCH]
            session.execute(delete(ScoreReceipt).where(ScoreReceipt.key.in_(chunk)))
        for entry in entries:
            if entry.status == PENDING:
                entry.status = WITHDRAWN
            for item in entry.items:
                item.text = ERASED
            entry.feedback = None
            entry.educator_id = None
            entry.consent_to_train = False  # no longer a training or calibration item
        ids = [e.id for e in entries]
        # every reviewer's verdict keeps its levels (calibration figures rest on them) and
        # loses its feedback; a verdict on a submission that is gone goes with it
        session.execute(delete(Review).where(Review.entry_id.in_(forgotten.pending)))
        session.execute(update(Review).where(Review.entry_id.in_(ids)).values(feedback=""))
        session.execute(_unanswered_blind_items(ids))
        # what the platform pulls or is sent keeps the decision and levels, says it was erased
        erase_decision_feedback(session, ids)
    queue.purge_erased()
    return forgotten


def decided_with_text(queue: Database, decided_before: datetime) -> int:
    """How many items of submissions decided before then still hold evidence text."""
    query = select(func.count(ItemEntry.id)).where(*_expired(decided_before))
    with queue.sessions() as session:
        return session.scalar(query) or 0


def erase_decided_text(queue: Database, decided_before: datetime) -> int:
    """Retention: erase the evidence text of submissions decided before then, in one
    statement; the decision, levels and feedback stay. Returns the items erased."""
    with queue.writing() as session:
        expiring = session.scalars(
            select(ItemEntry.submission_entry_id).where(*_expired(decided_before))
        ).all()
        erased = session.execute(
            update(ItemEntry).where(*_expired(decided_before)).values(text=ERASED)
        )
        session.execute(_unanswered_blind_items(sorted(set(expiring))))
    queue.purge_erased()
    return int(erased.rowcount or 0)  # type: ignore[attr-defined]


def _unanswered_blind_items(entry_ids: list[int]) -> Delete:
    """Blind calibration items not yet answered on these submissions: once their text is gone
    a reviewer could not score them."""
    return delete(BlindItem).where(
        BlindItem.entry_id.in_(entry_ids), BlindItem.answered_at.is_(None)
    )


def erased_entries() -> Select[int]:
    """Submissions with an item whose text was forgotten or passed retention."""
    return select(ItemEntry.submission_entry_id).where(ItemEntry.text == ERASED)


def _expired(decided_before: datetime) -> list[ColumnElement[bool]]:
    """Items with text, of submissions decided before the moment (compared in UTC: SQLite
    keeps wall-clock time)."""
    decided = select(SubmissionEntry.id).where(
        SubmissionEntry.status == DECIDED,
        SubmissionEntry.decided_at < as_utc(decided_before),
    )
    return [ItemEntry.submission_entry_id.in_(decided), ItemEntry.text != ERASED]
