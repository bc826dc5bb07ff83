"""What the platform hears of its submissions: a record of every decision (the model's at
scoring, a reviewer's, an audit's revision), the pull answer built from them, and the webhook
events written to the outbox in the same transaction as the decision they announce.

Nothing here holds evidence text: a record keeps ids, the decision, the levels by their
rubric titles, the feedback to the educator and the versions.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.orm import Session

from prescore.data.schema import CriterionKey
from prescore.eval.routing import Route
from prescore.review.database import Database
from prescore.review.tables import (
    BY_MODEL,
    DECIDED,
    DECIDED_EVENT,
    DUE,
    ERASED,
    REVISED_EVENT,
    WITHDRAWN,
    DecisionRecord,
    SubmissionEntry,
    WebhookDelivery,
    WebhookEndpoint,
    as_utc,
)
from prescore.serving.schemas import (
    CriterionLevel,
    EvidenceToScore,
    ModelCard,
    ScoredEvidence,
    SubmissionDecision,
    SubmissionOutcome,
)


@dataclass(frozen=True)
class AutoDecision:
    """A record's columns for one auto decision made at scoring, less the queue entry an
    audit sample links it to (known once its entry is written)."""

    row: dict[str, Any]


def auto_decisions(
    items: list[EvidenceToScore],
    scores: list[ScoredEvidence],
    decisions: list[SubmissionDecision],
    card: ModelCard,
    now: datetime,
) -> list[AutoDecision]:
    """A record for every auto decision of a request: the model decided, and the platform
    hears of it now (a human-routed one is heard of when a reviewer decides)."""
    criteria = card.criteria_by_key()
    levels: dict[tuple[str, str], list[dict[str, str]]] = {}
    for item, scored in zip(items, scores, strict=True):
        criterion, _ = criteria[CriterionKey(item.credential_id, item.criterion_id)]
        levels.setdefault((item.submission_id, item.credential_id), []).append(
            {"criterion_id": item.criterion_id, "title": criterion.title, "level": scored.level}
        )
    return [
        AutoDecision(
            {
                "submission_id": d.submission_id,
                "credential_id": d.credential_id,
                "entry_id": None,
                "decided_by": BY_MODEL,
                "decision": d.decision,
                "route": d.route.value,
                "levels": levels[(d.submission_id, d.credential_id)],
                "feedback": None,
                "erased": False,
                "model_name": d.model_name,
                "model_version": d.model_version,
                "suggestion": d.decision,
                "p_earned": d.p_earned,
                "scored_at": now,
                "decided_at": now,
            }
        )
        for d in decisions
        if d.route is Route.auto
    ]


def outcome(record: DecisionRecord, earlier: int) -> SubmissionOutcome:
    return SubmissionOutcome(
        submission_id=record.submission_id,
        credential_id=record.credential_id,
        status=DECIDED,
        decision=record.decision,
        decided_by=record.decided_by,
        levels=[CriterionLevel(**level) for level in record.levels],
        feedback=None if record.erased else record.feedback,
        erased=record.erased,
        route=record.route,
        suggestion=record.suggestion,
        p_earned=record.p_earned,
        model_name=record.model_name,
        model_version=record.model_version,
        scored_at=as_utc(record.scored_at),  # SQLite returns them without the zone
        decided_at=as_utc(record.decided_at),
        earlier_decisions=earlier,
    )


def pending_outcome(entry: SubmissionEntry) -> SubmissionOutcome:
    """A queued submission no decision record speaks of yet: waiting for a reviewer, or
    withdrawn, its educator forgotten before anyone decided."""
    return SubmissionOutcome(
        submission_id=entry.submission_id,
        credential_id=entry.credential_id,
        status="withdrawn" if entry.status == WITHDRAWN else "pending",
        erased=any(item.text == ERASED for item in entry.items),
        route=entry.route,
        suggestion=entry.decision,
        p_earned=entry.p_earned,
        model_name=entry.model_name,
        model_version=entry.model_version,
        scored_at=as_utc(entry.created_at),
    )


def submission_outcome(
    queue: Database, submission_id: str, credential_id: str
) -> SubmissionOutcome | None:
    """The newest decision on a submission and how many came before it; a queued one not
    decided yet is pending; None where no scored submission has these ids."""
    mine = (
        DecisionRecord.submission_id == submission_id,
        DecisionRecord.credential_id == credential_id,
    )
    with queue.sessions() as session:
        latest = session.scalars(
            select(DecisionRecord).where(*mine).order_by(DecisionRecord.id.desc()).limit(1)
        ).first()
        if latest is not None:
            count = session.scalar(select(func.count(DecisionRecord.id)).where(*mine)) or 1
            return outcome(latest, count - 1)
        entry = session.scalars(
            select(SubmissionEntry)
            .where(
                SubmissionEntry.submission_id == submission_id,
                SubmissionEntry.credential_id == credential_id,
            )
            .order_by(SubmissionEntry.id.desc())
            .limit(1)
        ).first()
    return None if entry is None else pending_outcome(entry)


def decision_history(
    queue: Database, submission_id: str, credential_id: str
) -> list[DecisionRecord]:
    """Every decision on a submission, oldest first: what the review page shows of it."""
    with queue.sessions() as session:
        query = (
            select(DecisionRecord)
            .where(
                DecisionRecord.submission_id == submission_id,
                DecisionRecord.credential_id == credential_id,
            )
            .order_by(DecisionRecord.id)
        )
        return list(session.scalars(query))


def event_body(event: str, answer: SubmissionOutcome, now: datetime) -> str:
    """The JSON a webhook carries (Standard Webhooks' type, timestamp, data): the pull answer."""
    return json.dumps(
        {
            "type": event,
            "timestamp": now.isoformat(),
            "data": answer.model_dump(mode="json"),
        },
        ensure_ascii=False,
    )


def new_message_id() -> str:
    """The webhook-id: the same on every try, so the platform drops a repeat."""
    return f"msg_{secrets.token_hex(16)}"


def outbox_rows(
    endpoints: list[int], event: str, answer: SubmissionOutcome, now: datetime
) -> list[dict[str, Any]]:
    """One delivery per endpoint of one event, due now."""
    body, message_id = event_body(event, answer, now), new_message_id()
    return [
        {
            "message_id": message_id,
            "endpoint_id": endpoint,
            "event": event,
            "payload": body,
            "created_at": now,
            "state": DUE,
            "tries": 0,
            "next_try_at": now,
        }
        for endpoint in endpoints
    ]


def record_auto_decisions(
    connection: Connection, records: list[AutoDecision], entries: dict[tuple[str, str], int]
) -> None:
    """The records of a request's auto decisions and their `submission.decided` events, in
    the caller's transaction (the one that queues the request's submissions). `entries`:
    the queue entry of each audit sample, by (submission, credential)."""
    if not records:
        return
    endpoints = list(connection.scalars(select(WebhookEndpoint.id)))
    rows = [
        {**r.row, "entry_id": entries.get((r.row["submission_id"], r.row["credential_id"]))}
        for r in records
    ]
    connection.execute(insert(DecisionRecord), rows)
    if endpoints:
        events = []
        for row in rows:
            answer = outcome(DecisionRecord(**row), 0)
            events += outbox_rows(endpoints, DECIDED_EVENT, answer, row["decided_at"])
        connection.execute(insert(WebhookDelivery), events)


def record_verdict(session: Session, entry: SubmissionEntry, decided_by: str) -> None:
    """A reviewer's decision (an expert's, or two agreeing peers') as a record, in the
    verdict's transaction: `submission.decided` where it is the first decision on the
    submission, `submission.revised` where it changes an earlier one (an audit that
    overturns the model). An audit that agrees adds a record and sends nothing."""
    earlier = list(
        session.scalars(
            select(DecisionRecord)
            .where(
                DecisionRecord.submission_id == entry.submission_id,
                DecisionRecord.credential_id == entry.credential_id,
            )
            .order_by(DecisionRecord.id)
        )
    )
    assert entry.decided_decision is not None and entry.decided_at is not None
    record = DecisionRecord(
        submission_id=entry.submission_id,
        credential_id=entry.credential_id,
        entry_id=entry.id,
        decided_by=decided_by,
        decision=entry.decided_decision,
        route=entry.route,
        levels=[
            {
                "criterion_id": item.criterion_id,
                "title": item.criterion_title,
                "level": item.decided_level or "",
            }
            for item in entry.items
        ],
        feedback=entry.feedback or None,
        erased=False,
        model_name=entry.model_name,
        model_version=entry.model_version,
        suggestion=entry.decision,
        p_earned=entry.p_earned,
        scored_at=entry.created_at,
        decided_at=entry.decided_at,
    )
    session.add(record)
    before = earlier[-1] if earlier else None
    if before is None:
        event = DECIDED_EVENT
    elif (before.decision, levels_of(before.levels)) != (record.decision, levels_of(record.levels)):
        event = REVISED_EVENT
    else:
        return
    endpoints = list(session.scalars(select(WebhookEndpoint.id)))
    if endpoints:
        now = datetime.now(UTC)
        answer = outcome(record, len(earlier))
        session.execute(insert(WebhookDelivery), outbox_rows(endpoints, event, answer, now))


def levels_of(levels: list[dict[str, str]]) -> dict[str, str]:
    return {level["criterion_id"]: level["level"] for level in levels}


def erase_decision_feedback(session: Session, entry_ids: list[int]) -> None:
    """A forgotten educator's decisions keep their decision and levels and lose the feedback,
    in the records and in every outbox payload (one still due is sent without it)."""
    records = list(
        session.scalars(select(DecisionRecord).where(DecisionRecord.entry_id.in_(entry_ids)))
    )
    for record in records:
        record.feedback, record.erased = None, True
    submissions = {(r.submission_id, r.credential_id) for r in records}
    for submission_id, _ in submissions:
        sent = session.scalars(
            select(WebhookDelivery).where(
                WebhookDelivery.payload.contains(
                    json.dumps(submission_id, ensure_ascii=False), autoescape=True
                )
            )
        )
        for delivery in sent:
            body = json.loads(delivery.payload)
            data = body["data"]
            if (data["submission_id"], data["credential_id"]) in submissions:
                data.update(feedback=None, erased=True)
                delivery.payload = json.dumps(body, ensure_ascii=False)
