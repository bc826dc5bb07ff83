"""Decision records and the webhook outbox: the platform hears back (issue 35).

Revision ID: 0002_platform_hears_back
Revises: 0001_baseline
Create Date: 2026-12-07

Three new tables, nothing changed in the old ones: every decision the platform hears of
(`decision_records`, one row per decision, revisions added), the endpoints it hears them at,
and the outbox of deliveries written in each decision's transaction.
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


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    op.drop_table("decision_records")
