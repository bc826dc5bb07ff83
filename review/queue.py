"""The review queue: every human-routed submission decision (and a sample of auto ones, for
audit) waits here for a reviewer, in a real database through SQLAlchemy (SQLite file by
default, Postgres by URL).

A reviewer decides a submission, not a loose criterion item: one row per submission (the
suggested decision, why it came to a human, its priority) with one child row per criterion
item (the evidence, the rubric's levels, the suggested level); review/tables.py holds them.
`ReviewQueue` is the one handle the rest of the code opens: its operations live in the module
of their job (intake, verdicts, export, privacy) and this one, which pages through a
reviewer's queue: high stakes first by deadline, then by how much a look is worth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, case, cast, func, select

from prescore.eval.routing import Reason
from prescore.review import export, intake, platform, privacy, verdicts
from prescore.review.database import Database
from prescore.review.tables import (
    AUDIT_SAMPLE,
    LIVE,
    PEER,
    PENDING,
    WITHDRAWN,
    Review,
    SubmissionEntry,
)
from prescore.review.verdicts import PEERS_NEEDED, Assessor, NotAssigned


@dataclass(frozen=True)
class Filters:
    credential_id: str | None = None
    reason: str | None = None


def _peer_reviews_of_entry() -> Any:
    return (
        select(func.count(Review.id))
        .where(Review.entry_id == SubmissionEntry.id, Review.purpose == LIVE, Review.kind == PEER)
        .scalar_subquery()
    )


def pending_conditions(
    credentials: list[str], filters: Filters, assessor: Assessor | None = None
) -> list[ColumnElement[bool]]:
    """The WHERE of a reviewer's queue; `pending` and `count_pending` share it so they agree."""
    conditions = [
        SubmissionEntry.status == PENDING,
        SubmissionEntry.credential_id.in_(credentials),
    ]
    if assessor is not None:
        conditions.append(
            (SubmissionEntry.stakes != "high")
            | SubmissionEntry.credential_id.in_(assessor.high_stakes)
        )
        if assessor.kind == PEER:
            mine = select(Review.id).where(
                Review.entry_id == SubmissionEntry.id,
                Review.purpose == LIVE,
                Review.reviewer == assessor.name,
            )
            conditions.append(~mine.exists())
            conditions.append(_peer_reviews_of_entry() < PEERS_NEEDED)
    if filters.credential_id:
        conditions.append(SubmissionEntry.credential_id == filters.credential_id)
    if filters.reason:
        # reasons is a JSON list of enum values; its text holds each one quoted. Matching that
        # works alike on SQLite and Postgres, where JSON functions differ.
        quoted = f'"{filters.reason}"'
        conditions.append(cast(SubmissionEntry.reasons, Text).contains(quoted, autoescape=True))
    return conditions


_high = SubmissionEntry.stakes == "high"
QUEUE_ORDER = (
    case((_high, 0), else_=1),  # high stakes first
    # among high stakes, by deadline, none last: an explicit key, since SQLite and Postgres put
    # NULLs at opposite ends
    case((and_(_high, SubmissionEntry.deadline.is_(None)), 1), else_=0),
    case((_high, SubmissionEntry.deadline), else_=None),
    # then what two disagreeing peers sent to an expert (only experts see those)
    case((_peer_reviews_of_entry() >= PEERS_NEEDED, 0), else_=1),
    SubmissionEntry.priority.desc(),
    SubmissionEntry.id,
)


REASONS = [reason.value for reason in Reason] + [AUDIT_SAMPLE]


def pending(
    queue: Database,
    credentials: list[str],
    filters: Filters = Filters(),
    limit: int = 100,
    offset: int = 0,
    assessor: Assessor | None = None,
) -> list[SubmissionEntry]:
    """A page of a reviewer's queue: high stakes first by deadline, then by how much a look
    is worth. The database orders and pages, so a long queue is never loaded whole.
    With `assessor`, only what they may score: no high stakes for peers, nothing a peer
    already reviewed, nothing two disagreeing peers sent to an expert."""
    query = (
        select(SubmissionEntry)
        .where(*pending_conditions(credentials, filters, assessor))
        .order_by(*QUEUE_ORDER)
        .limit(limit)
        .offset(offset)
    )
    with queue.sessions() as session:
        return list(session.scalars(query))


def count_pending(
    queue: Database,
    credentials: list[str],
    filters: Filters = Filters(),
    assessor: Assessor | None = None,
) -> int:
    """How many submissions `pending` pages through with these filters."""
    query = select(func.count(SubmissionEntry.id)).where(
        *pending_conditions(credentials, filters, assessor)
    )
    with queue.sessions() as session:
        return session.scalar(query) or 0


def get(queue: Database, entry_id: int, credentials: list[str]) -> SubmissionEntry | None:
    with queue.sessions() as session:
        entry = session.get(SubmissionEntry, entry_id)
    if entry is None or entry.status == WITHDRAWN:  # its educator was forgotten
        return None
    if entry.credential_id not in credentials:
        raise NotAssigned(f"submission {entry_id} belongs to a credential not assigned to you")
    return entry


class ReviewQueue(Database):
    """A review database with what is done to it; each operation is a function of its module."""

    enqueue = intake.enqueue
    receipt = intake.receipt
    count_receipts = intake.count_receipts
    pending = pending
    count_pending = count_pending
    get = get
    decide = verdicts.decide
    live_reviews = verdicts.live_reviews
    decision_history = platform.decision_history
    submission_outcome = platform.submission_outcome
    decided = export.decided
    reviewed_items = export.reviewed_items
    reviewed_decisions = export.reviewed_decisions
    reviewed_submissions = export.reviewed_submissions
    record_export = export.record_export
    exports = export.exports
    educator_entries = privacy.educator_entries
    forget_educator = privacy.forget_educator
    decided_with_text = privacy.decided_with_text
    erase_decided_text = privacy.erase_decided_text
