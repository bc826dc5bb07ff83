"""The review queue: every human-routed prediction (and a sample of auto ones, for audit)
waits here for a reviewer, in a real database through SQLAlchemy (SQLite file by default,
Postgres by URL).

Writes commit before the API answers, so an acknowledged item survives a crash. A decision
carries the entry's version number; a second decision on the same version fails instead of
scoring the item twice (SQLAlchemy's optimistic version counter).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    and_,
    case,
    cast,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from prescore.data.review_export import ReviewedItem
from prescore.eval.drift import ReviewedDecision
from prescore.eval.routing import Reason
from prescore.serving.schemas import CriterionCard, EvidenceToScore, ScoredEvidence

PENDING, DECIDED = "pending", "decided"


class Base(DeclarativeBase):
    pass


class QueueEntry(Base):
    __tablename__ = "review_queue"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    submission_id: Mapped[str] = mapped_column(String(200))
    educator_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    consent_to_train: Mapped[bool] = mapped_column(Boolean, default=False)
    credential_id: Mapped[str] = mapped_column(String(200), index=True)
    criterion_id: Mapped[str] = mapped_column(String(200))
    criterion_title: Mapped[str] = mapped_column(String(500), default="")
    evidence_type: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    stakes: Mapped[str] = mapped_column(String(8))
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    levels: Mapped[list[str]] = mapped_column(JSON)
    level_descriptions: Mapped[list[str]] = mapped_column(JSON)
    suggested_level: Mapped[str] = mapped_column(String(200))
    confidence: Mapped[float] = mapped_column(Float)
    probabilities: Mapped[list[float]] = mapped_column(JSON)
    prediction_set: Mapped[list[str]] = mapped_column(JSON)
    route: Mapped[str] = mapped_column(String(8))
    reasons: Mapped[list[str]] = mapped_column(JSON)
    audit: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[float] = mapped_column(Float, index=True)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(50))
    decided_level: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __mapper_args__ = {"version_id_col": version}


class Reviewer(Base):
    """A person who scores; sees only the credentials assigned to them."""

    __tablename__ = "reviewers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(400))
    credentials: Mapped[list[str]] = mapped_column(JSON)


class AlreadyDecided(RuntimeError):
    """Someone recorded a level for this entry first; reload it and look again."""


class NotAssigned(PermissionError):
    """The reviewer is not assigned the entry's credential."""


@dataclass(frozen=True)
class ToReview:
    """One scored item bound for the queue, with what a reviewer needs to see beside it."""

    item: EvidenceToScore
    scored: ScoredEvidence
    criterion: CriterionCard
    stakes: str
    audit: bool = False


def worth_a_look(scored: ScoredEvidence, criterion: CriterionCard, audit: bool) -> float:
    """Higher first: unsure predictions, predictions that straddle the met cut, audit samples."""
    value = 1.0 - scored.confidence
    if criterion.met_index is not None:
        labels = criterion.levels
        sides = {labels.index(level) >= criterion.met_index for level in scored.prediction_set}
        if len(sides) > 1:
            value += 0.5  # a human decides whether the credential is met
    return value + (0.25 if audit else 0.0)


def queue_entry(review: ToReview, now: datetime) -> QueueEntry:
    item, scored, criterion, audit = review.item, review.scored, review.criterion, review.audit
    return QueueEntry(
        created_at=now,
        submission_id=item.submission_id,
        educator_id=item.educator_id,
        consent_to_train=item.consent_to_train,
        credential_id=item.credential_id,
        criterion_id=item.criterion_id,
        criterion_title=criterion.title,
        evidence_type=item.evidence_type,
        text=item.text,
        stakes=review.stakes,
        deadline=item.deadline,
        levels=criterion.levels,
        level_descriptions=criterion.level_descriptions or [""] * len(criterion.levels),
        suggested_level=scored.level,
        confidence=scored.confidence,
        probabilities=[p.probability for p in scored.probabilities],
        prediction_set=scored.prediction_set,
        route=scored.route.value,
        reasons=[r.value for r in scored.reasons] + (["audit_sample"] if audit else []),
        audit=audit,
        priority=worth_a_look(scored, criterion, audit),
        model_name=scored.model_name,
        model_version=scored.model_version,
    )


@dataclass(frozen=True)
class Filters:
    credential_id: str | None = None
    reason: str | None = None


class ReviewQueue:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def at(cls, path: Path) -> ReviewQueue:
        return cls(f"sqlite:///{path}")

    def enqueue(self, batch: list[ToReview]) -> list[int]:
        """One transaction for a request's items: all are stored, or none and it raises."""
        now = datetime.now(UTC)
        entries = [queue_entry(review, now) for review in batch]
        with self.sessions.begin() as session:
            session.add_all(entries)
        return [entry.id for entry in entries]

    def pending(
        self,
        credentials: list[str],
        filters: Filters = Filters(),
        limit: int = 100,
        offset: int = 0,
    ) -> list[QueueEntry]:
        """A page of a reviewer's queue: high stakes first by deadline, then by how much a look
        is worth. The database orders and pages, so a long queue is never loaded whole."""
        query = (
            select(QueueEntry)
            .where(*pending_conditions(credentials, filters))
            .order_by(*QUEUE_ORDER)
            .limit(limit)
            .offset(offset)
        )
        with self.sessions() as session:
            return list(session.scalars(query))

    def count_pending(self, credentials: list[str], filters: Filters = Filters()) -> int:
        """How many entries `pending` pages through with these filters."""
        query = select(func.count(QueueEntry.id)).where(*pending_conditions(credentials, filters))
        with self.sessions() as session:
            return session.scalar(query) or 0

    def get(self, entry_id: int, credentials: list[str]) -> QueueEntry | None:
        with self.sessions() as session:
            entry = session.get(QueueEntry, entry_id)
        if entry is not None and entry.credential_id not in credentials:
            raise NotAssigned(f"entry {entry_id} belongs to a credential not assigned to you")
        return entry

    def decide(
        self, entry_id: int, level: str, reviewer: str, credentials: list[str], seen_version: int
    ) -> QueueEntry:
        """Record the reviewer's level, once: a stale `seen_version` raises AlreadyDecided."""
        try:
            with self.sessions.begin() as session:
                entry = session.get(QueueEntry, entry_id, with_for_update=True)
                if entry is None:
                    raise LookupError(f"no queue entry {entry_id}")
                if entry.credential_id not in credentials:
                    raise NotAssigned(f"entry {entry_id} is not in your credentials")
                if entry.version != seen_version or entry.status != PENDING:
                    raise AlreadyDecided(f"entry {entry_id} was decided by {entry.decided_by}")
                if level not in entry.levels:
                    raise ValueError(f"{level!r} is not a level of this criterion: {entry.levels}")
                entry.status = DECIDED
                entry.decided_level = level
                entry.decided_by = reviewer
                entry.decided_at = datetime.now(UTC)
        except StaleDataError:
            raise AlreadyDecided(f"entry {entry_id} was decided while you looked") from None
        return entry

    def decided(self) -> list[QueueEntry]:
        with self.sessions() as session:
            query = select(QueueEntry).where(QueueEntry.status == DECIDED).order_by(QueueEntry.id)
            return list(session.scalars(query))

    def reviewed_items(self) -> list[ReviewedItem]:
        """Decided entries as the data stage's records, for `prescore export-reviews`."""
        return [reviewed_item(entry) for entry in self.decided()]

    def reviewed_decisions(self) -> list[ReviewedDecision]:
        """Decided entries as level indices, for the drift report (eval knows no queue)."""
        return [
            ReviewedDecision(
                credential_id=entry.credential_id,
                criterion_id=entry.criterion_id,
                decided_at=entry.decided_at,
                decided_index=entry.levels.index(entry.decided_level),
                suggested_index=entry.levels.index(entry.suggested_level),
                levels=len(entry.levels),
                audit=entry.audit,
            )
            for entry in self.decided()
            if entry.decided_at is not None and entry.decided_level is not None
        ]


def pending_conditions(credentials: list[str], filters: Filters) -> list[ColumnElement[bool]]:
    """The WHERE of a reviewer's queue; `pending` and `count_pending` share it so they agree."""
    conditions = [QueueEntry.status == PENDING, QueueEntry.credential_id.in_(credentials)]
    if filters.credential_id:
        conditions.append(QueueEntry.credential_id == filters.credential_id)
    if filters.reason:
        # reasons is a JSON list of enum values; its text holds each one quoted. Matching that
        # works alike on SQLite and Postgres, where JSON functions differ.
        quoted = f'"{filters.reason}"'
        conditions.append(cast(QueueEntry.reasons, Text).contains(quoted, autoescape=True))
    return conditions


_high = QueueEntry.stakes == "high"
QUEUE_ORDER = (
    case((_high, 0), else_=1),  # high stakes first
    # among high stakes, by deadline, none last: an explicit key, since SQLite and Postgres put
    # NULLs at opposite ends
    case((and_(_high, QueueEntry.deadline.is_(None)), 1), else_=0),
    case((_high, QueueEntry.deadline), else_=None),
    QueueEntry.priority.desc(),
    QueueEntry.id,
)


def reviewed_item(entry: QueueEntry) -> ReviewedItem:
    return ReviewedItem(
        entry_id=entry.id,
        submission_id=entry.submission_id,
        educator_id=entry.educator_id,
        credential_id=entry.credential_id,
        criterion_id=entry.criterion_id,
        evidence_type=entry.evidence_type,
        text=entry.text,
        consent_to_train=entry.consent_to_train,
        decided_level=entry.decided_level,
        decided_by=entry.decided_by,
        decided_at=entry.decided_at,
        model_version=entry.model_version,
        suggested_level=entry.suggested_level,
    )


def _sqlite_pragmas(connection: Any, _: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cursor.execute("PRAGMA synchronous=FULL")  # a committed entry survives a power cut
    cursor.close()


REASONS = [reason.value for reason in Reason] + ["audit_sample"]
