"""Decision records and the webhook outbox: the platform hears back (issue 35).

Revision ID: 0002_platform_hears_back
Revises: 0001_baseline
Create Date: 2026-12-07

Three new tables, nothing changed in the old ones: every decision the platform hears of
(`decision_records`, one row per decision, revisions added), the endpoints it hears them at,
and the outbox of deliveries written in each decision's transaction. The decisions reviewers
made before it are recorded (no events: nobody had registered an endpoint), so the platform
can pull them too.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_platform_hears_back"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decision_records",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("submission_id", sa.String(200), nullable=False),
        sa.Column("credential_id", sa.String(200), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("decided_by", sa.String(8), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("route", sa.String(8), nullable=False),
        sa.Column("levels", sa.JSON(), nullable=False),
        sa.Column("feedback", sa.Text(), nullable=True),
        sa.Column("erased", sa.Boolean(), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(50), nullable=False),
        sa.Column("suggestion", sa.String(16), nullable=True),
        sa.Column("p_earned", sa.Float(), nullable=True),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_decision_records_entry_id", "decision_records", ["entry_id"])
    # the pull answer's lookup: the newest record of one submission
    op.create_index(
        "ix_decision_records_submission", "decision_records", ["submission_id", "credential_id"]
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_webhook_deliveries_message_id", "webhook_deliveries", ["message_id"])
    op.create_index("ix_webhook_deliveries_endpoint_id", "webhook_deliveries", ["endpoint_id"])
    op.create_index("ix_webhook_deliveries_next_try_at", "webhook_deliveries", ["next_try_at"])
    record_earlier_decisions()


def record_earlier_decisions() -> None:
    """A record for every submission decided before this revision, as the code now writes
    one at the verdict: two agreeing peers where the decider recorded it as a peer."""
    bind = op.get_bind()
    metadata = sa.MetaData()
    submissions = sa.Table("review_submissions", metadata, autoload_with=bind)
    items = sa.Table("review_items", metadata, autoload_with=bind)
    reviews = sa.Table("reviews", metadata, autoload_with=bind)
    records = sa.Table("decision_records", metadata, autoload_with=bind)
    decided = bind.execute(
        sa.select(submissions).where(submissions.c.status == "decided").order_by(submissions.c.id)
    ).all()
    rows = []
    for entry in decided:
        levels = bind.execute(
            sa.select(items.c.criterion_id, items.c.criterion_title, items.c.decided_level)
            .where(items.c.submission_entry_id == entry.id)
            .order_by(items.c.position)
        ).all()
        kind = bind.execute(
            sa.select(reviews.c.kind)
            .where(reviews.c.entry_id == entry.id, reviews.c.reviewer == entry.decided_by)
            .where(reviews.c.purpose == "live")
            .order_by(reviews.c.id.desc())
            .limit(1)
        ).scalar()
        erased = entry.educator_id is None and entry.feedback is None
        rows.append(
            {
                "submission_id": entry.submission_id,
                "credential_id": entry.credential_id,
                "entry_id": entry.id,
                "decided_by": "peers" if kind == "peer" else "expert",
                "decision": entry.decided_decision,
                "route": entry.route,
                "levels": [
                    {"criterion_id": c, "title": t or "", "level": level or ""}
                    for c, t, level in levels
                ],
                "feedback": entry.feedback,
                "erased": erased,
                "model_name": entry.model_name,
                "model_version": entry.model_version,
                "suggestion": entry.decision,
                "p_earned": entry.p_earned,
                "scored_at": entry.created_at,
                "decided_at": entry.decided_at or entry.created_at,
            }
        )
    if rows:
        bind.execute(sa.insert(records), rows)


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    op.drop_table("decision_records")
