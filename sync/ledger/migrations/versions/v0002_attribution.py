"""Reconciliation and attribution: email history, lead-to-account matches, attribution runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Tables: ``person_email`` (every address a person has had), ``account_match`` (lead-to-account
links, the review queue and human decisions), ``attribution_run`` (versioned runs with an inputs
fingerprint), ``attribution_credit`` and ``attribution_outcome``. Column types are plain
SQLAlchemy types, as in revision 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)


def upgrade() -> None:
    """Create the reconciliation and attribution tables."""
    op.create_table(
        "person_email",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("person_external_id", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("first_seen_at", UTC_DATETIME, nullable=False),
        sa.Column("last_seen_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person_email")),
        sa.UniqueConstraint(
            "crm",
            "person_external_id",
            "email",
            name=op.f("uq_person_email_crm_person_external_id_email"),
        ),
    )
    op.create_index(op.f("ix_person_email_email"), "person_email", ["email"], unique=False)
    op.create_table(
        "account_match",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("person_external_id", sa.String(), nullable=False),
        sa.Column("account_external_id", sa.String(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("method", sa.String(), nullable=False),
        sa.Column("evidence", JSON_DOCUMENT, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("decided_at", UTC_DATETIME, nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.CheckConstraint(
            "status IN ('auto', 'pending', 'accepted', 'rejected')",
            name=op.f("ck_account_match_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_match")),
        sa.UniqueConstraint(
            "crm",
            "person_external_id",
            "account_external_id",
            name=op.f("uq_account_match_crm_person_external_id_account_external_id"),
        ),
    )
    op.create_index(
        op.f("ix_account_match_crm_status"), "account_match", ["crm", "status"], unique=False
    )
    op.create_index(
        op.f("ix_account_match_person_external_id"),
        "account_match",
        ["person_external_id"],
        unique=False,
    )
    op.create_table(
        "attribution_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("models", JSON_DOCUMENT, nullable=False),
        sa.Column("params", JSON_DOCUMENT, nullable=False),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("algorithm_version", sa.String(), nullable=False),
        sa.Column("as_of", UTC_DATETIME, nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.Column("counts", JSON_DOCUMENT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attribution_run")),
    )
    op.create_index(
        op.f("ix_attribution_run_crm_started_at"),
        "attribution_run",
        ["crm", "started_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_attribution_run_fingerprint"), "attribution_run", ["fingerprint"], unique=False
    )
    op.create_table(
        "attribution_credit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("opportunity_external_id", sa.String(), nullable=False),
        sa.Column("touch_key", sa.String(), nullable=False),
        sa.Column("person_external_id", sa.String(), nullable=False),
        sa.Column("campaign", sa.String(), nullable=True),
        sa.Column("channel", sa.String(), nullable=True),
        sa.Column("occurred_at", UTC_DATETIME, nullable=False),
        sa.Column("share_units", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("milestones", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["attribution_run.id"],
            name=op.f("fk_attribution_credit_run_id_attribution_run"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attribution_credit")),
    )
    op.create_index(
        op.f("ix_attribution_credit_run_id_model"),
        "attribution_credit",
        ["run_id", "model"],
        unique=False,
    )
    op.create_table(
        "attribution_outcome",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("opportunity_external_id", sa.String(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("is_closed", sa.Boolean(), nullable=False),
        sa.Column("is_won", sa.Boolean(), nullable=False),
        sa.Column("counted_touches", sa.Integer(), nullable=False),
        sa.Column("lead_person_external_id", sa.String(), nullable=True),
        sa.Column("sourced_campaign", sa.String(), nullable=True),
        sa.Column("sourced_by", sa.String(), nullable=True),
        sa.Column("influencing_campaigns", JSON_DOCUMENT, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["attribution_run.id"],
            name=op.f("fk_attribution_outcome_run_id_attribution_run"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attribution_outcome")),
        sa.UniqueConstraint(
            "run_id",
            "opportunity_external_id",
            name=op.f("uq_attribution_outcome_run_id_opportunity_external_id"),
        ),
    )


def downgrade() -> None:
    """Drop the reconciliation and attribution tables (dependent tables first)."""
    op.drop_table("attribution_outcome")
    op.drop_index(op.f("ix_attribution_credit_run_id_model"), table_name="attribution_credit")
    op.drop_table("attribution_credit")
    op.drop_index(op.f("ix_attribution_run_fingerprint"), table_name="attribution_run")
    op.drop_index(op.f("ix_attribution_run_crm_started_at"), table_name="attribution_run")
    op.drop_table("attribution_run")
    op.drop_index(op.f("ix_account_match_person_external_id"), table_name="account_match")
    op.drop_index(op.f("ix_account_match_crm_status"), table_name="account_match")
    op.drop_table("account_match")
    op.drop_index(op.f("ix_person_email_email"), table_name="person_email")
    op.drop_table("person_email")
