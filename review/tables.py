"""The review system's tables (SQLAlchemy ORM) and the few values their rows hold.

The schema changes by Alembic migrations (review/migrations/), never by editing a table here
alone: a change to a class below comes with a revision that makes it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from prescore.data.schema import RaterKind

PENDING, DECIDED = "pending", "decided"
# a pending submission whose educator was forgotten: its text and educator id erased, no
# reviewer sees it again, and the platform's pull says it was erased rather than 404
WITHDRAWN = "withdrawn"
AUDIT_SAMPLE = "audit_sample"  # the reason an auto decision is in the queue
EXPERT, PEER = RaterKind.expert.value, RaterKind.peer.value
# why a reviewer recorded a verdict: live work, a training item (answer shown after), or an
# adjudicated submission mixed blind into their queue
LIVE, TRAINING, BLIND = "live", "training", "blind"


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
    stays valid until it expires)."""

    __tablename__ = "reviewer_session_tokens"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    token: Mapped[str] = mapped_column(String(64))


class ReviewerRole(Base):
    """A reviewer's kind (expert / peer) and whether they administer reviewers. A reviewer
    without a row (created before kinds existed) is an expert, which is what every reviewer
    then was."""

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
    """How a credential's reviewers are trained and calibrated (review/assessors.py)."""

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
    forget` knows where to look for an educator's evidence."""

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
    before `resumed_at` no longer count."""

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


# who made a decision the platform hears of
BY_MODEL, BY_EXPERT, BY_PEERS = "model", "expert", "peers"
# the webhook events; a delivery's states
DECIDED_EVENT, REVISED_EVENT = "submission.decided", "submission.revised"
DUE, DELIVERED, DEAD = "due", "delivered", "dead"


class DecisionRecord(Base):
    """One decision on one submission, as the platform hears of it: the model's (auto, at
    scoring), a reviewer's, two agreeing peers', or an audit's revision. A revision adds a
    row, never changes one; the newest row is the decision in force. No evidence text: the
    feedback to the educator only, erased with the evidence when the educator is forgotten."""

    __tablename__ = "decision_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[str] = mapped_column(String(200))
    credential_id: Mapped[str] = mapped_column(String(200))
    entry_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    decided_by: Mapped[str] = mapped_column(String(8))  # model / expert / peers
    decision: Mapped[str] = mapped_column(String(16))
    route: Mapped[str] = mapped_column(String(8))  # the model's route at scoring
    # [{criterion_id, title, level}] in the request's order: the rubric's own level titles
    levels: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    feedback: Mapped[str | None] = mapped_column(Text, nullable=True)
    erased: Mapped[bool] = mapped_column(Boolean, default=False)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(50))
    suggestion: Mapped[str | None] = mapped_column(String(16), nullable=True)
    p_earned: Mapped[float | None] = mapped_column(Float, nullable=True)
    scored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    # the pull answer's lookup: the newest record of one submission
    __table_args__ = (Index("ix_decision_records_submission", "submission_id", "credential_id"),)


class WebhookEndpoint(Base):
    """Where the platform hears of decisions, with the secret that signs what is sent there
    (Standard Webhooks: `whsec_` and base64). Never logged, shown once when added."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(Base):
    """The outbox: one event for one endpoint, written in the transaction of its decision, so
    none is lost or invented by a crash between the two. The delivery worker claims a due row
    with a lease, sends it (the same `message_id` every try) and records the outcome."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64), index=True)  # the webhook-id header
    endpoint_id: Mapped[int] = mapped_column(Integer, index=True)
    event: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)  # the JSON body exactly as signed and sent
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(16), default=DUE)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


def as_utc(moment: datetime) -> datetime:
    """A deadline in UTC (one sent without a zone is read as UTC): SQLite keeps wall-clock
    time and drops the offset, so only UTC deadlines compare alike on SQLite and Postgres."""
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def straddles(levels: list[str], met_index: int | None, prediction_set: list[str]) -> bool:
    """The levels the model cannot rule out lie on both sides of the met level."""
    if met_index is None:
        return False
    return len({levels.index(level) >= met_index for level in prediction_set}) > 1


ERASED = ""  # the text of evidence forgotten or past retention; the API never accepts it
