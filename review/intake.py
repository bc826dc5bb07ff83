"""What goes into the review queue from a scoring request: every human-routed submission decision
and a sample of the auto ones (audits), with their items, written in one transaction with the
record of every auto decision and its webhook events (review/platform.py) and the request's
idempotency receipt.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select

from prescore.data.schema import CriterionKey
from prescore.eval.routing import Route
from prescore.review.database import Database
from prescore.review.platform import AutoDecision, record_auto_decisions
from prescore.review.tables import (
    AUDIT_SAMPLE,
    PENDING,
    ItemEntry,
    ScoreReceipt,
    SubmissionEntry,
    as_utc,
    straddles,
)
from prescore.serving.human_review import Receipt
from prescore.serving.schemas import (
    CriterionCard,
    EvidenceToScore,
    ModelCard,
    ScoredEvidence,
    SubmissionDecision,
)

PURGE_EVERY = 0.01  # the share of keyed requests that also delete every expired receipt


@dataclass(frozen=True)
class ItemToReview:
    """One scored criterion item of a submission bound for the queue, with its rubric."""

    item: EvidenceToScore
    scored: ScoredEvidence
    criterion: CriterionCard


@dataclass(frozen=True)
class ToReview:
    """One submission's decision bound for the queue, with what a reviewer needs beside it."""

    decision: SubmissionDecision
    items: list[ItemToReview]
    stakes: str
    target_error: float | None  # the decision's; None where the model cannot decide
    audit: bool = False
    required_met: int | None = None  # criteria met to earn it, by the award rule; None: unknown


def submissions_to_review(
    items: list[EvidenceToScore],
    scores: list[ScoredEvidence],
    decisions: list[SubmissionDecision],
    card: ModelCard,
    audit_rate: float,
    draw: Callable[[], float] = random.random,
) -> list[ToReview]:
    """Every human-routed decision, and auto decisions at the audit rate, with their items."""
    criteria = card.criteria_by_key()
    members: dict[tuple[str, str], list[ItemToReview]] = {}
    for item, scored in zip(items, scores, strict=True):
        criterion, _ = criteria[CriterionKey(item.credential_id, item.criterion_id)]
        members.setdefault((item.submission_id, item.credential_id), []).append(
            ItemToReview(item, scored, criterion)
        )
    credentials = {credential.credential_id: credential for credential in card.credentials}
    batch = []
    for decision in decisions:
        audit = decision.route is Route.auto and draw() < audit_rate
        if decision.route is Route.human or audit:
            credential = credentials[decision.credential_id]
            batch.append(
                ToReview(
                    decision,
                    members[(decision.submission_id, decision.credential_id)],
                    credential.stakes,
                    credential.decision.target_error if credential.decision else None,
                    audit,
                    (
                        credential.decision.award.required(len(credential.decision.criteria))
                        if credential.decision
                        else None
                    ),
                )
            )
    return batch


def worth_a_look(confidence: float, items: list[dict[str, Any]], audit: bool) -> float:
    """Higher first: unsure decisions, an item that straddles its met level, audit samples."""
    value = 1.0 - confidence
    if any(straddles(i["levels"], i["met_index"], i["prediction_set"]) for i in items):
        value += 0.5  # a human decides whether that criterion is met
    return value + (0.25 if audit else 0.0)


def item_row(member: ItemToReview, position: int) -> dict[str, Any]:
    """An ItemEntry's columns, less the submission it belongs to."""
    item, scored, criterion = member.item, member.scored, member.criterion
    return {
        "position": position,
        "criterion_id": item.criterion_id,
        "criterion_title": criterion.title,
        "levels": criterion.levels,
        "level_descriptions": criterion.level_descriptions or [""] * len(criterion.levels),
        "met_index": criterion.met_index,
        "evidence_type": item.evidence_type,
        "text": item.text,
        "suggested_level": scored.level,
        "confidence": scored.confidence,
        "probabilities": [p.probability for p in scored.probabilities],
        "prediction_set": scored.prediction_set,
        "reasons": [r.value for r in scored.reasons],
    }


def submission_rows(review: ToReview, now: datetime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A SubmissionEntry's columns (a new entry: pending, version 1), and its items'."""
    decision, audit = review.decision, review.audit
    items = [item_row(member, n) for n, member in enumerate(review.items)]
    deadlines = [as_utc(m.item.deadline) for m in review.items if m.item.deadline is not None]
    submission = {
        "version": 1,  # what the ORM's version counter starts a new row at
        "status": PENDING,
        "created_at": now,
        "submission_id": decision.submission_id,
        "credential_id": decision.credential_id,
        "educator_id": next((m.item.educator_id for m in review.items if m.item.educator_id), None),
        # a submission goes to training only if every item's owner consented
        "consent_to_train": all(m.item.consent_to_train for m in review.items),
        "stakes": review.stakes,
        "deadline": min(deadlines) if deadlines else None,
        "decision": decision.decision,
        "p_earned": decision.p_earned,
        "confidence": decision.confidence,
        "route": decision.route.value,
        "reasons": [r.value for r in decision.reasons] + ([AUDIT_SAMPLE] if audit else []),
        "audit": audit,
        "priority": worth_a_look(decision.confidence, items, audit),
        "target_error": review.target_error,
        "required_met": review.required_met,
        "model_name": decision.model_name,
        "model_version": decision.model_version,
    }
    return submission, items


def enqueue(
    queue: Database,
    batch: list[ToReview],
    receipt: Receipt | None = None,
    expired_before: datetime | None = None,
    auto: list[AutoDecision] | None = None,
) -> list[int]:
    """One transaction for a request's submissions, the records of its auto decisions with
    their webhook events (review/platform.py), and its receipt where the request carried an
    Idempotency-Key: all are stored, or none and it raises.

    Core inserts, not the ORM's unit of work: this runs once per scored request, holding
    the GIL the model's threads need, and the unit of work took about twice the CPU for
    rows nothing reads back here (eval/RESULTS.md, 2026-12-07)."""
    now = datetime.now(UTC)
    rows = [submission_rows(review, now) for review in batch]
    if not rows and receipt is None and not auto:
        return []  # nothing to store: no transaction
    ids, entries = [], {}
    with queue.writing() as session:
        connection = session.connection()
        for submission, items in rows:
            # the new id as the driver reports it (SQLite's lastrowid, Postgres' RETURNING):
            # INSERT ... RETURNING needs SQLite 3.35, older than some systems still ship
            key = connection.execute(insert(SubmissionEntry), submission).inserted_primary_key
            assert key is not None  # a single-row insert always has one
            entry_id = key[0]
            if items:  # an empty list would insert one row of defaults
                with_entry = [{**item, "submission_entry_id": entry_id} for item in items]
                connection.execute(insert(ItemEntry), with_entry)
            ids.append(entry_id)
            entries[(submission["submission_id"], submission["credential_id"])] = entry_id
        record_auto_decisions(connection, auto or [], entries)
        if receipt is not None:
            if expired_before is not None:  # this key's own expired receipt, if any,
                connection.execute(  # and now and then every expired one (bounded work)
                    delete(ScoreReceipt).where(
                        ScoreReceipt.created_at < expired_before,
                        *(
                            ()
                            if random.random() < PURGE_EVERY
                            else (ScoreReceipt.key == receipt.key,)
                        ),
                    )
                )
            connection.execute(
                insert(ScoreReceipt),
                {
                    "key": receipt.key,
                    "request_digest": receipt.request_digest,
                    "response": receipt.response,
                    "created_at": now,
                },
            )
    return ids


def receipt(queue: Database, key: str, expired_before: datetime | None = None) -> Receipt | None:
    """The first answer to a request sent with this Idempotency-Key, if there was one
    after `expired_before`."""
    with queue.sessions() as session:
        stored = session.get(ScoreReceipt, key)
    if stored is None or (
        expired_before is not None and as_utc(stored.created_at) < as_utc(expired_before)
    ):
        return None
    return Receipt(stored.key, stored.request_digest, stored.response)


def count_receipts(queue: Database) -> int:
    with queue.sessions() as session:
        return session.scalar(select(func.count()).select_from(ScoreReceipt)) or 0
