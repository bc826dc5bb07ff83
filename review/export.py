"""Decided submissions as the other stages read them: the data stage's reviewed items (`prescore
export-reviews`), and the decisions and levels the drift and audit reports compare. Every file
an export writes is recorded, so `prescore forget` knows where evidence left the queue.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from prescore.data.review_export import RaterScore, ReviewedItem
from prescore.eval.drift import ReviewedDecision, ReviewedSubmission
from prescore.review.database import Database
from prescore.review.tables import (
    DECIDED,
    EXPERT,
    LIVE,
    ExportRecord,
    ItemEntry,
    Review,
    ReviewerRole,
    SubmissionEntry,
)


def reviewed_item(
    entry: SubmissionEntry, item: ItemEntry, reviews: list[Review], kinds: dict[str, str]
) -> ReviewedItem:
    """A decided item with each live reviewer's level and kind; a submission decided before
    reviews were kept has its one decider, an expert unless their role says otherwise."""
    if reviews:
        scores = tuple(
            RaterScore(r.reviewer, r.kind, r.levels.get(item.criterion_id, "")) for r in reviews
        )
    else:
        decider = entry.decided_by or ""
        scores = (RaterScore(decider, kinds.get(decider, EXPERT), item.decided_level or ""),)
    return ReviewedItem(
        entry_id=item.id,
        submission_id=entry.submission_id,
        educator_id=entry.educator_id,
        credential_id=entry.credential_id,
        criterion_id=item.criterion_id,
        evidence_type=item.evidence_type,
        text=item.text,
        consent_to_train=entry.consent_to_train,
        decided_level=item.decided_level,
        decided_by=entry.decided_by,
        decided_at=entry.decided_at,
        model_version=entry.model_version,
        suggested_level=item.suggested_level,
        model_name=entry.model_name,
        decision=entry.decided_decision,
        feedback=entry.feedback,
        scores=scores,
    )


def decided(queue: Database) -> list[SubmissionEntry]:
    with queue.sessions() as session:
        query = (
            select(SubmissionEntry)
            .where(SubmissionEntry.status == DECIDED)
            .order_by(SubmissionEntry.id)
        )
        return list(session.scalars(query))


def reviewed_items(queue: Database) -> list[ReviewedItem]:
    """Each criterion item of a decided submission as the data stage's record, for
    `prescore export-reviews`: every live reviewer's level with their kind."""
    with queue.sessions() as session:
        reviews = list(
            session.scalars(select(Review).where(Review.purpose == LIVE).order_by(Review.id))
        )
        kinds = {role.name: role.kind for role in session.scalars(select(ReviewerRole))}
    by_entry: dict[int, list[Review]] = {}
    for review in reviews:
        by_entry.setdefault(review.entry_id, []).append(review)
    return [
        reviewed_item(entry, item, by_entry.get(entry.id, []), kinds)
        for entry in decided(queue)
        for item in entry.items
    ]


def reviewed_decisions(queue: Database) -> list[ReviewedDecision]:
    """Decided criterion levels as indices, for the drift report (eval knows no queue)."""
    return [
        ReviewedDecision(
            credential_id=entry.credential_id,
            criterion_id=item.criterion_id,
            decided_at=entry.decided_at,
            decided_index=item.levels.index(item.decided_level),
            suggested_index=item.levels.index(item.suggested_level),
            levels=len(item.levels),
            audit=entry.audit,
        )
        for entry in decided(queue)
        if entry.decided_at is not None
        for item in entry.items
        if item.decided_level is not None and item.suggested_level in item.levels
    ]


def reviewed_submissions(queue: Database) -> list[ReviewedSubmission]:
    """Decided submissions, the reviewer's decision beside the model's, for the audit
    error on auto decisions."""
    return [
        ReviewedSubmission(
            credential_id=entry.credential_id,
            model_version=entry.model_version,
            decided_at=entry.decided_at,
            decided=entry.decided_decision,
            suggested=entry.decision,
            audit=entry.audit,
            target_error=entry.target_error,
        )
        for entry in decided(queue)
        if entry.decided_at is not None and entry.decided_decision is not None
    ]


def record_export(queue: Database, path: Path, items: int) -> None:
    """Remember a file `prescore export-reviews` wrote, for `prescore forget`."""
    with queue.writing() as session:
        session.add(
            ExportRecord(path=str(path.resolve()), items=items, created_at=datetime.now(UTC))
        )


def exports(queue: Database) -> list[Path]:
    """Every file an export wrote, once each, oldest first."""
    query = select(ExportRecord.path).order_by(ExportRecord.id)
    with queue.sessions() as session:
        paths = session.scalars(query).all()
    return [Path(path) for path in dict.fromkeys(paths)]
