"""What the scoring API needs from the review system, and what it does with the answers.

The review system (review/) is a product of its own: its tables, pages and commands. The API
needs four things of it, named by `HumanReview`; review/mount.py provides them and mounts
the reviewers' pages beside the API. A Protocol, not an import of the queue: the API's code
and tests read the contract here, and a fake of four methods stands in for a database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from prescore.eval.routing import Reason, Route
from prescore.serving.schemas import (
    AuditAlarm,
    EvidenceToScore,
    ModelCard,
    ScoredEvidence,
    SubmissionDecision,
    SubmissionOutcome,
)


@dataclass(frozen=True)
class Receipt:
    """The answer given to a /score request sent with an Idempotency-Key."""

    key: str  # `receipt_key` of the caller's API key and their Idempotency-Key
    request_digest: str
    response: str  # the JSON the first answer carried


def receipt_key(api_key: str | None, idempotency_key: str) -> str:
    """The stored key: one caller's Idempotency-Key never answers another's request, and the
    key a client chose (which may name a person) is not kept."""
    scope = hashlib.sha256((api_key or "").encode("utf-8", "surrogatepass")).hexdigest()
    return hashlib.sha256(
        f"{scope}\0{idempotency_key}".encode("utf-8", "surrogatepass")
    ).hexdigest()


class HumanReview(Protocol):
    def take(
        self,
        items: list[EvidenceToScore],
        scores: list[ScoredEvidence],
        submissions: list[SubmissionDecision],
        card: ModelCard,
        receipt: Receipt | None,
        expired_before: datetime,
    ) -> None:
        """Queue a scored request's human-routed decisions and a sample of its auto ones (the
        audit), record every auto decision for the platform (with its webhook events), with
        its receipt where it has one, in one transaction: all are stored, or
        none and it raises (SQLAlchemyError; IntegrityError where the receipt's key was
        stored meanwhile). Receipts older than `expired_before` may be deleted."""
        ...

    def receipt(self, key: str, expired_before: datetime) -> Receipt | None:
        """The first answer to a request with this key, if given after `expired_before`."""
        ...

    def submission(self, submission_id: str, credential_id: str) -> SubmissionOutcome | None:
        """What became of a scored submission: its newest decision and how many came before
        it, or pending while a reviewer has not decided; None where none was scored."""
        ...

    async def stopped(self, model_version: str) -> dict[str, AuditAlarm]:
        """Credential id -> its alarm, for each credential whose audits stopped the auto route
        of this model version: a few seconds stale at most, no query per request."""
        ...


Answer = TypeVar("Answer", ScoredEvidence, SubmissionDecision)


def _to_human(answer: Answer) -> Answer:
    return answer.model_copy(
        update={"route": Route.human, "reasons": [*answer.reasons, Reason.audit_alarm]}
    )


def stop_auto(
    scores: list[ScoredEvidence], submissions: list[SubmissionDecision], stopped: Collection[str]
) -> tuple[list[ScoredEvidence], list[SubmissionDecision]]:
    """Every item and decision of a stopped credential goes to a human, reason audit_alarm;
    the suggestion stays, as for any other reason."""
    if not stopped:
        return scores, submissions
    return (
        [_to_human(s) if s.credential_id in stopped else s for s in scores],
        [_to_human(d) if d.credential_id in stopped else d for d in submissions],
    )


def with_alarms(card: ModelCard, stopped: dict[str, AuditAlarm]) -> ModelCard:
    """The card with each stopped credential's alarm, for GET /credentials."""
    if not stopped:
        return card
    credentials = [
        c.model_copy(update={"audit_alarm": stopped[c.credential_id]})
        if c.credential_id in stopped
        else c
        for c in card.credentials
    ]
    return card.model_copy(update={"credentials": credentials})
