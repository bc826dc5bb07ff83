"""The review queue: every human-routed submission decision (and a sample of auto ones, for
audit) waits here for a reviewer, in a real database through SQLAlchemy (SQLite file by
default, Postgres by URL).

A reviewer decides a submission, not a loose criterion item: one row per submission (the
suggested decision, why it came to a human, its priority) with one child row per criterion
item (the evidence, the rubric's levels, the suggested level). Every verdict a reviewer records
is also kept as a `Review` with the reviewer's kind: an expert's decides the submission; a
low-stakes one reviewed by peers is decided by two peers who agree, and goes to an expert
where they do not (see `decide`). High-stakes submissions are decided by experts only.
Writes commit before the API answers, so an acknowledged submission survives a crash. Every
verdict moves the entry's version on; two written at once on the same version, one fails
instead of deciding the submission twice (SQLAlchemy's optimistic version counter). The
verdict that settles an audit may stop its credential's auto route (`trip_on_audits`; the
rest of that breaker is serving/audit_breaker.py).
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    DateTime,
    Delete,
    Float,
    ForeignKey,
    Integer,
    Select,
    String,
    Text,
    and_,
    case,
    cast,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError

from prescore.data.review_export import RaterScore, ReviewedItem
from prescore.data.schema import CriterionKey, RaterKind
from prescore.eval.decisions import EARNED, NOT_YET
from prescore.eval.drift import SIGNIFICANT, AuditError, ReviewedDecision, ReviewedSubmission
from prescore.eval.routing import Reason, Route
from prescore.serving.schemas import (
    CriterionCard,
    EvidenceToScore,
    ModelCard,
    ScoredEvidence,
    SubmissionDecision,
    unstorable_character,
)
from prescore.serving.settings import ConfigurationError

PENDING, DECIDED = "pending", "decided"
AUDIT_SAMPLE = "audit_sample"  # the reason an auto decision is in the queue
DECISIONS = (EARNED, NOT_YET)
MAX_FEEDBACK_CHARS = 10_000
EXPERT, PEER = RaterKind.expert.value, RaterKind.peer.value
# why a reviewer recorded a verdict: live work, a training item (answer shown after), or an
# adjudicated submission mixed blind into their queue
LIVE, TRAINING, BLIND = "live", "training", "blind"
PEERS_NEEDED = 2  # agreeing peer reviews that decide a low-stakes submission


class Base(DeclarativeBase):
    pass


class SubmissionEntry(Base):
    """One submission waiting for (or given) a reviewer's decision."""

    __tablename__ = "review_submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    submission_id: Mapped[str] = mapped_column(String(200))
    credential_id: Mapped[str] = mapped_column(String(200), index=True)
    educator_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    consent_to_train: Mapped[bool] = mapped_column(Boolean, default=False)
    stakes: Mapped[str] = mapped_column(String(8))
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decision: Mapped[str] = mapped_column(String(16))  # the model's suggestion
    p_earned: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    route: Mapped[str] = mapped_column(String(8))
    reasons: Mapped[list[str]] = mapped_column(JSON)
    audit: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[float] = mapped_column(Float, index=True)
    target_error: Mapped[float | None] = mapped_column(Float, nullable=True)
    # how many criteria must be met to earn it (the award rule); a reviewer's decision must
    # agree with their own levels. None where the model had no decision policy
    required_met: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(50))
    decided_decision: Mapped[str | None] = mapped_column(String(16), nullable=True)
    feedback: Mapped[str | None] = mapped_column(Text, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    items: Mapped[list[ItemEntry]] = relationship(
        order_by="ItemEntry.position", lazy="selectin", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}


class ItemEntry(Base):
    """One criterion item of a queued submission: its evidence, rubric and suggested level."""

    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_entry_id: Mapped[int] = mapped_column(
        ForeignKey("review_submissions.id"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)  # the order the request sent them in
    criterion_id: Mapped[str] = mapped_column(String(200))
    criterion_title: Mapped[str] = mapped_column(String(500), default="")
    levels: Mapped[list[str]] = mapped_column(JSON)
    level_descriptions: Mapped[list[str]] = mapped_column(JSON)
    met_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    evidence_type: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    suggested_level: Mapped[str] = mapped_column(String(200))
    confidence: Mapped[float] = mapped_column(Float)
    probabilities: Mapped[list[float]] = mapped_column(JSON)
    prediction_set: Mapped[list[str]] = mapped_column(JSON)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    decided_level: Mapped[str | None] = mapped_column(String(200), nullable=True)

    def straddles(self) -> bool:
        """The levels the model cannot rule out lie on both sides of the met level."""
        return straddles(self.levels, self.met_index, self.prediction_set)


class Reviewer(Base):
    """A person who scores; sees only the credentials assigned to them."""

    __tablename__ = "reviewers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(400))
    credentials: Mapped[list[str]] = mapped_column(JSON)


class SessionToken(Base):
    """The token a reviewer's signed session cookie must carry; replaced on sign-out and on a
    password change, which ends every session signed with the old one (a signed cookie alone
    stays valid until it expires). Its own table, so databases from before gain it as is."""

    __tablename__ = "reviewer_session_tokens"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    token: Mapped[str] = mapped_column(String(64))


class ReviewerRole(Base):
    """A reviewer's kind (expert / peer) and whether they administer reviewers. Its own table,
    so a database from before kinds gains it as is; a reviewer without a row (created before
    kinds existed) is an expert, which is what every reviewer then was."""

    __tablename__ = "reviewer_roles"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    admin: Mapped[bool] = mapped_column(Boolean, default=False)


class Review(Base):
    """One verdict one reviewer recorded on one submission: live work, a training item or a
    blind calibration item (then `entry_id` is the adjudicated submission it was scored
    against). Kept whole, so a peer pair's two verdicts, an expert's after them, and every
    calibration answer stay apart with their reviewer's kind."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(Integer, index=True)
    credential_id: Mapped[str] = mapped_column(String(200), index=True)
    reviewer: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # the reviewer's kind when they recorded it
    purpose: Mapped[str] = mapped_column(String(16))  # live / training / blind
    levels: Mapped[dict[str, str]] = mapped_column(JSON)  # criterion id -> level label
    decision: Mapped[str] = mapped_column(String(16))
    feedback: Mapped[str] = mapped_column(Text, default="")
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)  # opened to recorded
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CalibrationSetting(Base):
    """How a credential's reviewers are trained and calibrated (serving/calibration.py)."""

    __tablename__ = "calibration_settings"

    credential_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    training_items: Mapped[int] = mapped_column(Integer)
    blind_rate: Mapped[float] = mapped_column(Float)
    min_qwk: Mapped[float] = mapped_column(Float)
    min_decision_agreement: Mapped[float] = mapped_column(Float)


class BlindItem(Base):
    """An adjudicated submission mixed into one reviewer's queue, waiting for their verdict."""

    __tablename__ = "blind_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(200), index=True)
    entry_id: Mapped[int] = mapped_column(Integer)
    credential_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ScoreReceipt(Base):
    """The answer given to a /score request sent with an Idempotency-Key: a retry of the same
    request gets it back and queues nothing twice. It holds the response (levels, decisions,
    routes), never the evidence text; the request is known by a digest, and the key by a digest
    of it with the caller's API key (`receipt_key`), so a client-chosen key is never stored.
    Receipts expire (`expired_before`): the table holds at most a day's keyed requests."""

    __tablename__ = "score_receipts"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_digest: Mapped[str] = mapped_column(String(64))
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ExportRecord(Base):
    """A file `prescore export-reviews` wrote: evidence left the queue there, so `prescore
    forget` knows where to look for an educator's evidence. Its own table, so databases from
    before gain it as is."""

    __tablename__ = "review_exports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    items: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditBreaker(Base):
    """A credential's auto route stopped by its audits, for the model version whose audited
    auto decisions reviewers overturned significantly above the target (see `trip_on_audits`).
    One row per credential and version, written at its first trip: a newly served version has
    none, so it starts clean. Stopped while tripped after the last resume; audits decided
    before `resumed_at` no longer count. Its own table, so databases from before gain it."""

    __tablename__ = "audit_breakers"

    credential_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(50), primary_key=True)
    tripped_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    audits: Mapped[int] = mapped_column(Integer)  # counted at the trip, since the last resume
    errors: Mapped[int] = mapped_column(Integer)
    target: Mapped[float] = mapped_column(Float)
    resumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resumed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)

    @property
    def tripped(self) -> bool:
        return self.resumed_at is None or as_utc(self.tripped_at) > as_utc(self.resumed_at)


PURGE_EVERY = 0.01  # the share of keyed requests that also delete every expired receipt


def receipt_key(api_key: str | None, idempotency_key: str) -> str:
    """The stored key: one caller's Idempotency-Key never answers another's request, and the
    key a client chose (which may name a person) is not kept."""
    scope = hashlib.sha256((api_key or "").encode("utf-8", "surrogatepass")).hexdigest()
    return hashlib.sha256(
        f"{scope}\0{idempotency_key}".encode("utf-8", "surrogatepass")
    ).hexdigest()


@dataclass(frozen=True)
class Receipt:
    key: str
    request_digest: str
    response: str  # the JSON the first answer carried


class MissingDriver(ConfigurationError):
    """The review queue's URL names a database whose Python driver is not installed."""


@dataclass(frozen=True)
class Forgettable:
    """An educator's submissions in the queue: pending ones are deleted, decided ones keep
    their decision and levels and lose the evidence text, the feedback and the educator id."""

    pending: list[int]
    decided: list[int]


class AlreadyDecided(RuntimeError):
    """Someone decided this submission first; reload it and look again."""


class NotAssigned(PermissionError):
    """The reviewer is not assigned the entry's credential, or may not decide it (a peer and
    high stakes, a reviewer still in training, one flagged for calibration)."""


@dataclass(frozen=True)
class Assessor:
    """Who is reviewing, and what they may score live now (serving/calibration.py works it
    out from their kind, training and calibration)."""

    name: str
    kind: str  # expert / peer
    credentials: list[str]  # where they may score live submissions
    high_stakes: list[str]  # of those, where they may decide high-stakes ones: experts only

    @classmethod
    def expert(cls, name: str, credentials: list[str]) -> Assessor:
        return cls(name, EXPERT, credentials, credentials)


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


@dataclass(frozen=True)
class Verdict:
    """What a reviewer records for one submission, in one form."""

    levels: dict[str, str]  # criterion id -> level label
    decision: str  # earned / not_yet
    feedback: str  # to the educator: what to strengthen before resubmitting


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


def straddles(levels: list[str], met_index: int | None, prediction_set: list[str]) -> bool:
    """The levels the model cannot rule out lie on both sides of the met level."""
    if met_index is None:
        return False
    return len({levels.index(level) >= met_index for level in prediction_set}) > 1


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


def private_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only (0600): it holds evidence text and
    password hashes. An existing file keeps the mode its owner gave it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def as_utc(moment: datetime) -> datetime:
    """A deadline in UTC (one sent without a zone is read as UTC): SQLite keeps wall-clock
    time and drops the offset, so only UTC deadlines compare alike on SQLite and Postgres."""
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Filters:
    credential_id: str | None = None
    reason: str | None = None


POSTGRES_DRIVER = "pip install 'prescore[postgres]'"
ERASED = ""  # the text of evidence forgotten or past retention; the API never accepts it


def engine_url(url: str) -> str:
    """`postgresql://` (and `postgres://`) mean psycopg 3, the driver `prescore[postgres]`
    installs; SQLAlchemy alone would look for psycopg2. Explicit `+driver` URLs stay."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url.removeprefix(scheme)
    return url


def shown_url(url: str) -> str:
    """The URL for messages, its password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL has no password we could find to hide
        return url.split("@")[-1]


def new_engine(url: str) -> Engine:
    """The queue's engine; a missing driver is a configuration error saying what to install,
    not an ImportError in a restart loop."""
    try:
        # hide_parameters: a failed write's error never carries the row, so evidence text
        # cannot reach a log; pool_pre_ping: a connection a restarted server closed is replaced
        return create_engine(engine_url(url), hide_parameters=True, pool_pre_ping=True)
    except ImportError as missing:
        backend = make_url(engine_url(url)).get_backend_name()
        install = POSTGRES_DRIVER if backend == "postgresql" else f"pip install {missing.name}"
        raise MissingDriver(
            f"the review queue at {shown_url(url)} needs the Python driver {missing.name!r}, "
            f"which is not installed: {install}"
        ) from None


class ReviewQueue:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            private_file(Path(url.removeprefix("sqlite:///")))
        self.engine: Engine = new_engine(url)
        event.listen(self.engine, "handle_error", _without_rows)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._writers: AbstractContextManager[Any] = (
            threading.RLock() if url.startswith("sqlite") else nullcontext()
        )

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction. On SQLite this process's writers take turns on a lock first:
        SQLite's own wait for a locked database sleeps in steps of up to 100 ms: eight
        concurrent answers' writes took up to 519 ms that way, and at most 79 ms taking turns
        (each one's fsync waits for the one before; alone a write takes 3-7 ms)."""
        with self._writers, self.sessions.begin() as session:
            yield session

    @classmethod
    def at(cls, path: Path) -> ReviewQueue:
        return cls(f"sqlite:///{path}")

    def enqueue(
        self,
        batch: list[ToReview],
        receipt: Receipt | None = None,
        expired_before: datetime | None = None,
    ) -> list[int]:
        """One transaction for a request's submissions, and its receipt where the request
        carried an Idempotency-Key: all are stored, or none and it raises.

        Core inserts, not the ORM's unit of work: this runs once per scored request, holding
        the GIL the model's threads need, and the unit of work took about twice the CPU for
        rows nothing reads back here (eval/RESULTS.md, 2026-12-07)."""
        now = datetime.now(UTC)
        rows = [submission_rows(review, now) for review in batch]
        if not rows and receipt is None:
            return []  # nothing to store: no transaction (an auto decision outside the audit)
        ids = []
        with self.writing() as session:
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

    def receipt(self, key: str, expired_before: datetime | None = None) -> Receipt | None:
        """The first answer to a request sent with this Idempotency-Key, if there was one
        after `expired_before`."""
        with self.sessions() as session:
            stored = session.get(ScoreReceipt, key)
        if stored is None or (
            expired_before is not None and as_utc(stored.created_at) < as_utc(expired_before)
        ):
            return None
        return Receipt(stored.key, stored.request_digest, stored.response)

    def count_receipts(self) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(ScoreReceipt)) or 0

    def pending(
        self,
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
        with self.sessions() as session:
            return list(session.scalars(query))

    def count_pending(
        self, credentials: list[str], filters: Filters = Filters(), assessor: Assessor | None = None
    ) -> int:
        """How many submissions `pending` pages through with these filters."""
        query = select(func.count(SubmissionEntry.id)).where(
            *pending_conditions(credentials, filters, assessor)
        )
        with self.sessions() as session:
            return session.scalar(query) or 0

    def get(self, entry_id: int, credentials: list[str]) -> SubmissionEntry | None:
        with self.sessions() as session:
            entry = session.get(SubmissionEntry, entry_id)
        if entry is not None and entry.credential_id not in credentials:
            raise NotAssigned(f"submission {entry_id} belongs to a credential not assigned to you")
        return entry

    def decide(
        self,
        entry_id: int,
        verdict: Verdict,
        reviewer: str,
        credentials: list[str],
        seen_version: int,
        assessor: Assessor | None = None,
        seconds: float | None = None,
    ) -> SubmissionEntry:
        """Record the reviewer's levels, decision and feedback at once, in one transaction.

        An expert's verdict decides the submission. A peer's is kept as a review: the second
        peer's decides it where both agree on every level and the decision, and otherwise the
        submission waits for an expert. A decided submission raises AlreadyDecided, an
        incomplete verdict ValueError, one the reviewer may not score NotAssigned. Without
        `assessor` the reviewer is an expert on `credentials`. `seen_version`, the version the
        form showed, is kept for callers: a peer's review in between moves the version on but
        leaves the submission to decide, so the decided status is what refuses a second
        decision (and the version counter, two at once)."""
        assessor = assessor or Assessor.expert(reviewer, credentials)
        try:
            with self.writing() as session:
                entry = session.get(SubmissionEntry, entry_id, with_for_update=True)
                if entry is None:
                    raise LookupError(f"no queued submission {entry_id}")
                if entry.credential_id not in credentials:
                    raise NotAssigned(f"submission {entry_id} is not in your credentials")
                if entry.status != PENDING:
                    raise AlreadyDecided(f"submission {entry_id} was decided by {entry.decided_by}")
                if entry.stakes == "high" and entry.credential_id not in assessor.high_stakes:
                    raise NotAssigned(
                        f"submission {entry_id} is high stakes: experts decide it, and only "
                        "those whose calibration meets the bar"
                    )
                peers = live_peer_reviews(session, entry_id)
                if assessor.kind == PEER:
                    if any(review.reviewer == assessor.name for review in peers):
                        raise AlreadyDecided(
                            f"you reviewed submission {entry_id} already; another peer reviews "
                            "it next"
                        )
                    if len(peers) >= PEERS_NEEDED:
                        raise AlreadyDecided(
                            f"submission {entry_id} waits for an expert: its peers disagreed"
                        )
                check_verdict(verdict, entry)
                session.add(review_of(entry, verdict, assessor, LIVE, seconds))
                if assessor.kind == EXPERT:
                    settle(entry, verdict, reviewer)
                elif peers and agree(peers[0], verdict):
                    feedback = both_feedbacks(peers[0].feedback, verdict.feedback)
                    settle(entry, Verdict(verdict.levels, verdict.decision, feedback), reviewer)
                else:  # a first peer review, or a second that disagrees: the version moves on
                    flag_modified(entry, "priority")
                if entry.audit and entry.status == DECIDED:
                    trip_on_audits(session, entry.credential_id, entry.model_version)
        except StaleDataError:
            raise AlreadyDecided(f"submission {entry_id} was decided while you looked") from None
        return entry

    def live_reviews(self, entry_id: int) -> list[Review]:
        """The live verdicts recorded on one submission, oldest first."""
        with self.sessions() as session:
            query = (
                select(Review)
                .where(Review.entry_id == entry_id, Review.purpose == LIVE)
                .order_by(Review.id)
            )
            return list(session.scalars(query))

    def decided(self) -> list[SubmissionEntry]:
        with self.sessions() as session:
            query = (
                select(SubmissionEntry)
                .where(SubmissionEntry.status == DECIDED)
                .order_by(SubmissionEntry.id)
            )
            return list(session.scalars(query))

    def reviewed_items(self) -> list[ReviewedItem]:
        """Each criterion item of a decided submission as the data stage's record, for
        `prescore export-reviews`: every live reviewer's level with their kind."""
        with self.sessions() as session:
            reviews = list(
                session.scalars(select(Review).where(Review.purpose == LIVE).order_by(Review.id))
            )
            kinds = {role.name: role.kind for role in session.scalars(select(ReviewerRole))}
        by_entry: dict[int, list[Review]] = {}
        for review in reviews:
            by_entry.setdefault(review.entry_id, []).append(review)
        return [
            reviewed_item(entry, item, by_entry.get(entry.id, []), kinds)
            for entry in self.decided()
            for item in entry.items
        ]

    def reviewed_decisions(self) -> list[ReviewedDecision]:
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
            for entry in self.decided()
            if entry.decided_at is not None
            for item in entry.items
            if item.decided_level is not None and item.suggested_level in item.levels
        ]

    def reviewed_submissions(self) -> list[ReviewedSubmission]:
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
            for entry in self.decided()
            if entry.decided_at is not None and entry.decided_decision is not None
        ]

    def educator_entries(self, educator_id: str) -> Forgettable:
        """The submissions of one educator still holding their evidence: what `forget` acts on."""
        query = select(SubmissionEntry.id, SubmissionEntry.status).where(
            SubmissionEntry.educator_id == educator_id
        )
        with self.sessions() as session:
            rows = session.execute(query.order_by(SubmissionEntry.id)).all()
        return Forgettable(
            pending=[row.id for row in rows if row.status == PENDING],
            decided=[row.id for row in rows if row.status != PENDING],
        )

    def forget_educator(self, educator_id: str) -> Forgettable:
        """Remove an educator's evidence, in one transaction. A pending submission goes whole:
        no decision was made that anyone must keep. A decided one keeps its decision, levels,
        reviewer and model version (the audit and drift figures rest on them, and they hold no
        text) and loses the evidence text, the reviewer's feedback (written about that text)
        and the educator id, so nothing in the queue leads back to the person."""
        with self.writing() as session:
            entries = session.scalars(
                select(SubmissionEntry).where(SubmissionEntry.educator_id == educator_id)
            ).all()
            forgotten = Forgettable(
                pending=[e.id for e in entries if e.status == PENDING],
                decided=[e.id for e in entries if e.status != PENDING],
            )
            for entry in entries:
                if entry.status == PENDING:
                    session.delete(entry)
                    continue
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
        self.purge_erased()
        return forgotten

    def decided_with_text(self, decided_before: datetime) -> int:
        """How many items of submissions decided before then still hold evidence text."""
        query = select(func.count(ItemEntry.id)).where(*_expired(decided_before))
        with self.sessions() as session:
            return session.scalar(query) or 0

    def erase_decided_text(self, decided_before: datetime) -> int:
        """Retention: erase the evidence text of submissions decided before then, in one
        statement; the decision, levels and feedback stay. Returns the items erased."""
        with self.writing() as session:
            expiring = session.scalars(
                select(ItemEntry.submission_entry_id).where(*_expired(decided_before))
            ).all()
            erased = session.execute(
                update(ItemEntry).where(*_expired(decided_before)).values(text=ERASED)
            )
            session.execute(_unanswered_blind_items(sorted(set(expiring))))
        self.purge_erased()
        return int(erased.rowcount or 0)  # type: ignore[attr-defined]

    def purge_erased(self, tries: int = 20) -> bool:
        """Make an erasure physical on SQLite: the write-ahead log still holds the pages as
        they were before it, until about 5,000 later writes overwrite them, so it is copied
        into the (secure-delete) database file and truncated to nothing. A reader in another
        process can hold the log open for a moment: tried again a few times. Returns whether
        the log is empty now. Postgres keeps dead rows until VACUUM (see the README)."""
        if self.engine.dialect.name != "sqlite":
            return True
        for attempt in range(tries):
            with self._writers, self.engine.connect() as connection:
                busy, _, _ = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
            if not busy:
                return True
            time.sleep(0.05 * (attempt + 1))
        return False

    def record_export(self, path: Path, items: int) -> None:
        """Remember a file `prescore export-reviews` wrote, for `prescore forget`."""
        with self.writing() as session:
            session.add(
                ExportRecord(path=str(path.resolve()), items=items, created_at=datetime.now(UTC))
            )

    def exports(self) -> list[Path]:
        """Every file an export wrote, once each, oldest first."""
        query = select(ExportRecord.path).order_by(ExportRecord.id)
        with self.sessions() as session:
            paths = session.scalars(query).all()
        return [Path(path) for path in dict.fromkeys(paths)]


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


def check_verdict(verdict: Verdict, entry: SubmissionEntry) -> None:
    """A level on the rubric for every criterion, a decision, and feedback where not yet."""
    problems = []
    for item in entry.items:
        level = verdict.levels.get(item.criterion_id)
        if level is None:
            problems.append(f"pick a level for {item.criterion_id}")
        elif level not in item.levels:
            problems.append(f"{level!r} is not a level of {item.criterion_id}: {item.levels}")
    unknown = sorted(set(verdict.levels) - {item.criterion_id for item in entry.items})
    if unknown:
        problems.append(f"this submission has no criteria {unknown}")
    if verdict.decision not in DECISIONS:
        problems.append(f"the decision must be one of {list(DECISIONS)}")
    elif entry.required_met is not None and not problems:
        met = sum(
            item.met_index is not None
            and item.levels.index(verdict.levels[item.criterion_id]) >= item.met_index
            for item in entry.items
        )
        by_levels = EARNED if met >= entry.required_met else NOT_YET
        if verdict.decision != by_levels:
            problems.append(
                f"your levels meet {met} criteria and the award rule needs {entry.required_met}, "
                f"so the decision is {by_levels.replace('_', ' ')}: change a level or the decision"
            )
    if verdict.decision == NOT_YET and not verdict.feedback.strip():
        problems.append("write the educator what to strengthen before resubmitting")
    if len(verdict.feedback) > MAX_FEEDBACK_CHARS:
        problems.append(f"feedback may be at most {MAX_FEEDBACK_CHARS} characters")
    unstorable = unstorable_character(verdict.feedback)
    if unstorable:
        problems.append(f"feedback {unstorable}")
    if problems:
        raise ValueError("; ".join(problems))


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


def review_of(
    entry: SubmissionEntry,
    verdict: Verdict,
    assessor: Assessor,
    purpose: str,
    seconds: float | None,
) -> Review:
    return Review(
        entry_id=entry.id,
        credential_id=entry.credential_id,
        reviewer=assessor.name,
        kind=assessor.kind,
        purpose=purpose,
        levels=dict(verdict.levels),
        decision=verdict.decision,
        feedback=verdict.feedback.strip(),
        seconds=seconds,
        recorded_at=datetime.now(UTC),
    )


def settle(entry: SubmissionEntry, verdict: Verdict, reviewer: str) -> None:
    """The submission is decided: its levels, decision and feedback are final."""
    for item in entry.items:
        item.decided_level = verdict.levels[item.criterion_id]
    entry.status = DECIDED
    entry.decided_decision = verdict.decision
    entry.feedback = verdict.feedback.strip()
    entry.decided_by = reviewer
    entry.decided_at = datetime.now(UTC)


def agree(review: Review, verdict: Verdict) -> bool:
    """Two peers agree when they give the same decision and the same level on every criterion:
    only then is there one final level per criterion to train on without an expert."""
    return review.decision == verdict.decision and review.levels == verdict.levels


def both_feedbacks(first: str, second: str) -> str:
    """What two agreeing peers wrote the educator, each once."""
    texts = dict.fromkeys(text.strip() for text in (first, second) if text.strip())
    return "\n\n".join(texts)


def live_peer_reviews(session: Session, entry_id: int) -> list[Review]:
    query = (
        select(Review)
        .where(Review.entry_id == entry_id, Review.purpose == LIVE, Review.kind == PEER)
        .order_by(Review.id)
    )
    return list(session.scalars(query))


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


def _without_rows(context: ExceptionContext) -> None:
    """Postgres details a refused write with the row itself ("DETAIL: Failing row contains
    (...)", evidence text and all) whatever hide_parameters says: every database error keeps
    only its first line, the cause, so none can carry a row into a log or a traceback.
    Errors that are not the database's (a bug's TypeError) keep their message."""
    if not isinstance(context.sqlalchemy_exception, DBAPIError):
        return
    for error in (context.original_exception, context.sqlalchemy_exception):
        if error.args and isinstance(error.args[0], str):
            error.args = (error.args[0].split("\n", 1)[0], *error.args[1:])


def _sqlite_pragmas(connection: Any, _: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cursor.execute("PRAGMA synchronous=FULL")  # a committed entry survives a power cut
    # freed and overwritten content is zeroed, not left in free pages (erasure is physical);
    # some builds turn it on by default, this one must not depend on that
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


REASONS = [reason.value for reason in Reason] + [AUDIT_SAMPLE]
