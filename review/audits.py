"""The circuit breaker on live audits: a credential whose audited auto decisions reviewers
overturn significantly more often than its target stops deciding alone.

Audited auto decisions are the product's proof in production, so when they fail it, auto
stops (reason `audit_alarm`) until an operator resumes it or another model version serves.
It trips in the transaction that saves an audit's verdict (`trip_on_audits`, called by
review/verdicts.py); operators list and resume it (`prescore audits`); the scoring API reads
it through a short cache (a trip saved by another worker or replica is seen within seconds,
with no query per request) and routes a stopped credential's answers to a human
(serving/human_review.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio
from sqlalchemy import case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from prescore.eval.drift import SIGNIFICANT, AuditError
from prescore.review.database import Database
from prescore.review.tables import DECIDED, AuditBreaker, SubmissionEntry, as_utc
from prescore.serving.schemas import AuditAlarm

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


def breaker_states(queue: Database) -> list[BreakerState]:
    """Every credential and version ever stopped, by credential then version."""
    query = select(AuditBreaker).order_by(AuditBreaker.credential_id, AuditBreaker.model_version)
    with queue.sessions() as session:
        return [_state(row) for row in session.scalars(query)]


class NotStopped(LookupError):
    """Resuming a credential whose auto route is running: nothing to resume."""


def resume(queue: Database, credential_id: str, by: str) -> list[BreakerState]:
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
        queue: Database,
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

    async def stopped(self, model_version: str) -> dict[str, AuditAlarm]:
        """Credential id -> its alarm, for the credentials stopped on this version."""
        if self.clock() >= self._next_read:
            self._next_read = self.clock() + self.refresh_seconds  # one reader at a time
            try:
                await anyio.to_thread.run_sync(self.refresh)
            except Exception:
                self._next_read = float("-inf")  # the next request reads again
                raise
        return {
            credential: state.alarm()
            for (credential, version), state in self._stopped.items()
            if version == model_version
        }


def trip_on_audits(session: Session, credential_id: str, model_version: str) -> bool:
    """Stop the credential's auto route for this version when its audited auto decisions since
    the last resume err above the target beyond chance: one-sided exact binomial p-value under
    SIGNIFICANT (eval/drift.py, the same test the drift report uses). Runs in the transaction
    that saves an audit's verdict, so it trips on the verdict that makes the evidence. Two
    verdicts saved at once on Postgres may each miss the other; the next one counts both.
    Returns whether it tripped now."""
    breaker = session.get(AuditBreaker, (credential_id, model_version))
    if breaker is not None and breaker.tripped:
        return False
    counted = [
        SubmissionEntry.credential_id == credential_id,
        SubmissionEntry.model_version == model_version,
        SubmissionEntry.audit.is_(True),
        SubmissionEntry.status == DECIDED,
    ]
    if breaker is not None and breaker.resumed_at is not None:
        counted.append(SubmissionEntry.decided_at > as_utc(breaker.resumed_at))
    overturned = case((SubmissionEntry.decided_decision != SubmissionEntry.decision, 1), else_=0)
    audits, errors = session.execute(
        select(func.count(SubmissionEntry.id), func.coalesce(func.sum(overturned), 0)).where(
            *counted
        )
    ).one()
    target = session.scalars(  # the newest audit's: the policy the version serves under
        select(SubmissionEntry.target_error).where(*counted).order_by(SubmissionEntry.id.desc())
    ).first()
    if not audits or target is None:
        return False
    measured = AuditError(credential_id, model_version, audits, errors, 0, target)
    if not (measured.warning and measured.p_value < SIGNIFICANT):
        return False
    now = datetime.now(UTC)
    counts = {"tripped_at": now, "audits": audits, "errors": errors, "target": target}
    if breaker is not None:  # tripped before and resumed: it trips again on newer audits
        for column, value in counts.items():
            setattr(breaker, column, value)
        return True
    row = {"credential_id": credential_id, "model_version": model_version, **counts}
    # a verdict saved at the same moment may trip it first: theirs stands, ours is not an error
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(AuditBreaker).values(row).on_conflict_do_nothing())
    return True
