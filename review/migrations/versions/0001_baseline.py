"""The review database as it was before migrations (commit 0f752ba): ten tables.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-07

A frozen copy of the tables as that code declared them (review/tables.py changes; this
does not). A database written before migrations holds them already: review/schema.py creates
those it lacks and stamps it at this revision instead of running it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

BASELINE = sa.MetaData()

sa.Table(
    "audit_breakers",
    BASELINE,
    sa.Column("credential_id", sa.String(200), primary_key=True),
    sa.Column("model_version", sa.String(50), primary_key=True),
    sa.Column("tripped_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("audits", sa.Integer(), nullable=False),
    sa.Column("errors", sa.Integer(), nullable=False),
    sa.Column("target", sa.Float(), nullable=False),
    sa.Column("resumed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("resumed_by", sa.String(200), nullable=True),
)
sa.Table(
    "blind_items",
    BASELINE,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("reviewer", sa.String(200), nullable=False, index=True),
    sa.Column("entry_id", sa.Integer(), nullable=False),
    sa.Column("credential_id", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
)
sa.Table(
    "calibration_settings",
    BASELINE,
    sa.Column("credential_id", sa.String(200), primary_key=True),
    sa.Column("training_items", sa.Integer(), nullable=False),
    sa.Column("blind_rate", sa.Float(), nullable=False),
    sa.Column("min_qwk", sa.Float(), nullable=False),
    sa.Column("min_decision_agreement", sa.Float(), nullable=False),
)
sa.Table(
    "review_exports",
    BASELINE,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("path", sa.Text(), nullable=False),
    sa.Column("items", sa.Integer(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Table(
    "review_submissions",
    BASELINE,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("submission_id", sa.String(200), nullable=False),
    sa.Column("credential_id", sa.String(200), nullable=False, index=True),
    sa.Column("educator_id", sa.String(200), nullable=True),
    sa.Column("consent_to_train", sa.Boolean(), nullable=False),
    sa.Column("stakes", sa.String(8), nullable=False),
    sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("p_earned", sa.Float(), nullable=False),
    sa.Column("confidence", sa.Float(), nullable=False),
    sa.Column("route", sa.String(8), nullable=False),
    sa.Column("reasons", sa.JSON(), nullable=False),
    sa.Column("audit", sa.Boolean(), nullable=False),
    sa.Column("priority", sa.Float(), nullable=False, index=True),
    sa.Column("target_error", sa.Float(), nullable=True),
    sa.Column("required_met", sa.Integer(), nullable=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(50), nullable=False),
    sa.Column("decided_decision", sa.String(16), nullable=True),
    sa.Column("feedback", sa.Text(), nullable=True),
    sa.Column("decided_by", sa.String(200), nullable=True),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
)
sa.Table(
    "reviewer_roles",
    BASELINE,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("admin", sa.Boolean(), nullable=False),
)
sa.Table(
    "reviewer_session_tokens",
    BASELINE,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("token", sa.String(64), nullable=False),
)
sa.Table(
    "reviewers",
    BASELINE,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("password_hash", sa.String(400), nullable=False),
    sa.Column("credentials", sa.JSON(), nullable=False),
)
sa.Table(
    "reviews",
    BASELINE,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("entry_id", sa.Integer(), nullable=False, index=True),
    sa.Column("credential_id", sa.String(200), nullable=False, index=True),
    sa.Column("reviewer", sa.String(200), nullable=False, index=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("levels", sa.JSON(), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("feedback", sa.Text(), nullable=False),
    sa.Column("seconds", sa.Float(), nullable=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Table(
    "score_receipts",
    BASELINE,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("request_digest", sa.String(64), nullable=False),
    sa.Column("response", sa.Text(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Table(
    "review_items",
    BASELINE,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column(
        "submission_entry_id",
        sa.Integer(),
        sa.ForeignKey("review_submissions.id"),
        nullable=False,
        index=True,
    ),
    sa.Column("position", sa.Integer(), nullable=False),
    sa.Column("criterion_id", sa.String(200), nullable=False),
    sa.Column("criterion_title", sa.String(500), nullable=False),
    sa.Column("levels", sa.JSON(), nullable=False),
    sa.Column("level_descriptions", sa.JSON(), nullable=False),
    sa.Column("met_index", sa.Integer(), nullable=True),
    sa.Column("evidence_type", sa.String(100), nullable=False),
    sa.Column("text", sa.Text(), nullable=False),
    sa.Column("suggested_level", sa.String(200), nullable=False),
    sa.Column("confidence", sa.Float(), nullable=False),
    sa.Column("probabilities", sa.JSON(), nullable=False),
    sa.Column("prediction_set", sa.JSON(), nullable=False),
    sa.Column("reasons", sa.JSON(), nullable=False),
    sa.Column("decided_level", sa.String(200), nullable=True),
)


def upgrade() -> None:
    BASELINE.create_all(op.get_bind())


def downgrade() -> None:
    BASELINE.drop_all(op.get_bind())
