"""The circuit breaker on live audits: a credential whose audited auto decisions reviewers
overturn significantly more often than its target stops deciding alone.

Audited auto decisions are the product's proof in production, so when they fail it, auto
stops (reason `audit_alarm`) until an operator resumes it or another model version serves.
The queue trips it in the transaction that saves an audit's verdict (`trip_on_audits` in
serving/queue.py, where its table lives); this module is the rest: what operators list and
resume (`prescore audits`), what the service reads through a short cache (a trip saved by
another worker or replica is seen within seconds, with no query per request), and how a
stopped credential's answers are routed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import anyio
from sqlalchemy import select

from prescore.eval.drift import AuditError
from prescore.eval.routing import Reason, Route
from prescore.serving.queue import AuditBreaker, ReviewQueue, as_utc
from prescore.serving.schemas import AuditAlarm, ModelCard, ScoredEvidence, SubmissionDecision

logger = logging.getLogger("prescore.serving")

REFRESH_SECONDS = 5.0  # how stale the service's view of the breakers may be


def resume_command(credential_id: str) -> str:
    return f"prescore audits resume {credential_id}"


@dataclass(frozen=True)
class BreakerState:
    """One credential and model version whose audits stopped its auto route at least once."""

    credential_id: str
    model_version: str
    tripped: bool  # auto is stopped now
    tripped_at: datetime
    audits: int
    errors: int
    target: float
    resumed_at: datetime | None
    resumed_by: str | None

    @property
    def p_value(self) -> float:
        audit = AuditError(
            self.credential_id, self.model_version, self.audits, self.errors, 0, self.target
        )
        return audit.p_value

    def alarm(self) -> AuditAlarm:
        return AuditAlarm(
            stopped_since=self.tripped_at,
            model_version=self.model_version,
            audits=self.audits,
            errors=self.errors,
            target_error=self.target,
            p_value=self.p_value,
            resume=resume_command(self.credential_id),
        )


def _state(row: AuditBreaker) -> BreakerState:
    return BreakerState(
        credential_id=row.credential_id,
        model_version=row.model_version,
        tripped=row.tripped,
        tripped_at=as_utc(row.tripped_at),
        audits=row.audits,
        errors=row.errors,
        target=row.target,
        resumed_at=None if row.resumed_at is None else as_utc(row.resumed_at),
        resumed_by=row.resumed_by,
    )


def breaker_states(queue: ReviewQueue) -> list[BreakerState]:
    """Every credential and version ever stopped, by credential then version."""
    query = select(AuditBreaker).order_by(AuditBreaker.credential_id, AuditBreaker.model_version)
    with queue.sessions() as session:
        return [_state(row) for row in session.scalars(query)]


class NotStopped(LookupError):
    """Resuming a credential whose auto route is running: nothing to resume."""


def resume(queue: ReviewQueue, credential_id: str, by: str) -> list[BreakerState]:
    """Restart the auto route of a credential, for every version its audits stopped. Audits
    decided before now no longer count toward stopping it again. NotStopped where none is."""
    now = datetime.now(UTC)
    with queue.writing() as session:
        rows = [
            row
            for row in session.scalars(
                select(AuditBreaker).where(AuditBreaker.credential_id == credential_id)
            )
            if row.tripped
        ]
        if not rows:
            raise NotStopped(
                f"the auto route of {credential_id!r} is not stopped; `prescore audits list` "
                "shows the credentials whose audits stopped it"
            )
        for row in rows:
            row.resumed_at = now
            row.resumed_by = by
        return [_state(row) for row in rows]


class AuditAlarms:
    """The service's view of the breakers: read from the queue at most every `refresh_seconds`
    (one small query; the table holds a row per credential and version ever stopped). Logs one
    WARNING when it first sees a credential stopped and one INFO when it is resumed; credential
    ids and counts only, never evidence."""

    def __init__(
        self,
        queue: ReviewQueue,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue = queue
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._next_read = float("-inf")
        self._stopped: dict[tuple[str, str], BreakerState] = {}

    def refresh(self) -> None:
        states = breaker_states(self.queue)
        stopped = {(s.credential_id, s.model_version): s for s in states if s.tripped}
        for key in sorted(stopped.keys() - self._stopped.keys()):
            s = stopped[key]
            logger.warning(
                "auto decisions of %s stopped (audit_alarm): reviewers overturned %d of %d "
                "audited auto decisions of version %s, above the target error %.3f "
                "(binomial p = %.3g); resume with `%s`",
                s.credential_id,
                s.errors,
                s.audits,
                s.model_version,
                s.target,
                s.p_value,
                resume_command(s.credential_id),
            )
        resumed_by = {(s.credential_id, s.model_version): s.resumed_by for s in states}
        for credential_id, version in sorted(self._stopped.keys() - stopped.keys()):
            logger.info(
                "auto decisions of %s (version %s) resumed by %s",
                credential_id,
                version,
                resumed_by.get((credential_id, version)) or "an operator",
            )
        self._stopped = stopped

    async def stopped(self, model_version: str) -> dict[str, BreakerState]:
        """Credential id -> its breaker, for the credentials stopped on this version."""
        if self.clock() >= self._next_read:
            self._next_read = self.clock() + self.refresh_seconds  # one reader at a time
            try:
                await anyio.to_thread.run_sync(self.refresh)
            except Exception:
                self._next_read = float("-inf")  # the next request reads again
                raise
        return {
            credential: state
            for (credential, version), state in self._stopped.items()
            if version == model_version
        }


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


def with_alarms(card: ModelCard, stopped: dict[str, BreakerState]) -> ModelCard:
    """The card with each stopped credential's alarm, for GET /credentials."""
    if not stopped:
        return card
    credentials = [
        c.model_copy(update={"audit_alarm": stopped[c.credential_id].alarm()})
        if c.credential_id in stopped
        else c
        for c in card.credentials
    ]
    return card.model_copy(update={"credentials": credentials})
