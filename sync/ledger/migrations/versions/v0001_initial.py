"""Initial ledger schema: touches, deliveries, the CRM graph, dispositions, operations.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Column types are written out as plain SQLAlchemy types (not the application's
``sync.ledger.types``) so this revision stays fixed whatever those types become:
UTC datetimes are ``timestamptz`` on PostgreSQL, JSON documents are JSONB on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)


def upgrade() -> None:
    """Create every ledger table."""
    op.create_table(
        "account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("domain", sa.String(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("merged_into", sa.String(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=True),
        sa.Column("updated_at", UTC_DATETIME, nullable=True),
        sa.Column("pulled_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account")),
        sa.UniqueConstraint("crm", "external_id", name=op.f("uq_account_crm_external_id")),
    )
    op.create_index(op.f("ix_account_domain"), "account", ["domain"], unique=False)
    op.create_table(
        "campaign",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=True),
        sa.Column("actual_cost", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("budgeted_cost", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("currency", sa.String(), nullable=True),
        sa.Column("start_date", UTC_DATETIME, nullable=True),
        sa.Column("end_date", UTC_DATETIME, nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=True),
        sa.Column("updated_at", UTC_DATETIME, nullable=True),
        sa.Column("pulled_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign")),
        sa.UniqueConstraint("crm", "external_id", name=op.f("uq_campaign_crm_external_id")),
    )
    op.create_table(
        "campaign_cost",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("campaign_external_id", sa.String(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("currency", sa.String(), nullable=True),
        sa.Column("origin", sa.String(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.CheckConstraint("origin IN ('crm', 'yaml')", name=op.f("ck_campaign_cost_origin")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_cost")),
        sa.UniqueConstraint(
            "crm",
            "campaign_external_id",
            "period_start",
            "origin",
            name=op.f("uq_campaign_cost_crm_campaign_external_id_period_start_origin"),
        ),
    )
    op.create_table(
        "contact_role",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.Column("opportunity_external_id", sa.String(), nullable=False),
        sa.Column("person_external_id", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=True),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=True),
        sa.Column("updated_at", UTC_DATETIME, nullable=True),
        sa.Column("pulled_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_role")),
        sa.UniqueConstraint("crm", "external_id", name=op.f("uq_contact_role_crm_external_id")),
    )
    op.create_index(
        op.f("ix_contact_role_opportunity_external_id"),
        "contact_role",
        ["opportunity_external_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_contact_role_person_external_id"),
        "contact_role",
        ["person_external_id"],
        unique=False,
    )
    op.create_table(
        "cursor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pipeline", sa.String(), nullable=False),
        sa.Column("stream", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=True),
        sa.Column("boundary_keys", JSON_DOCUMENT, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.Column("fencing_token", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cursor")),
        sa.UniqueConstraint("pipeline", "stream", name=op.f("uq_cursor_pipeline_stream")),
    )
    op.create_table(
        "dead_letter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pipeline", sa.String(), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("record_key", sa.String(), nullable=True),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", JSON_DOCUMENT, nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("resolved_at", UTC_DATETIME, nullable=True),
        sa.CheckConstraint(
            "stage IN ('pull', 'map', 'resolve', 'push')", name=op.f("ck_dead_letter_stage")
        ),
        sa.CheckConstraint(
            "status IN ('open', 'replayed', 'discarded')", name=op.f("ck_dead_letter_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letter")),
    )
    op.create_index(
        op.f("ix_dead_letter_pipeline_status"), "dead_letter", ["pipeline", "status"], unique=False
    )
    op.create_index(op.f("ix_dead_letter_record_key"), "dead_letter", ["record_key"], unique=False)
    op.create_table(
        "disposition",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("object_type", sa.String(), nullable=False),
        sa.Column("object_id", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("field", sa.String(), nullable=False),
        sa.Column("old_value", sa.String(), nullable=True),
        sa.Column("new_value", sa.String(), nullable=False),
        sa.Column("lifecycle_stage", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("changed_at", UTC_DATETIME, nullable=False),
        sa.Column("observed_at", UTC_DATETIME, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disposition")),
        sa.UniqueConstraint(
            "crm",
            "object_type",
            "object_id",
            "field",
            "changed_at",
            "new_value",
            name=op.f("uq_disposition_change"),
        ),
    )
    op.create_index(op.f("ix_disposition_changed_at"), "disposition", ["changed_at"], unique=False)
    op.create_index(op.f("ix_disposition_email"), "disposition", ["email"], unique=False)
    op.create_table(
        "lease",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("fencing_token", sa.Integer(), nullable=False),
        sa.Column("acquired_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_lease")),
    )
    op.create_table(
        "opportunity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("account_external_id", sa.String(), nullable=True),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("currency", sa.String(), nullable=True),
        sa.Column("is_closed", sa.Boolean(), nullable=False),
        sa.Column("is_won", sa.Boolean(), nullable=False),
        sa.Column("close_date", UTC_DATETIME, nullable=True),
        sa.Column("campaign_external_id", sa.String(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("merged_into", sa.String(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=True),
        sa.Column("updated_at", UTC_DATETIME, nullable=True),
        sa.Column("pulled_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opportunity")),
        sa.UniqueConstraint("crm", "external_id", name=op.f("uq_opportunity_crm_external_id")),
    )
    op.create_index(
        op.f("ix_opportunity_account_external_id"),
        "opportunity",
        ["account_external_id"],
        unique=False,
    )
    op.create_table(
        "person",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("first_name", sa.String(), nullable=True),
        sa.Column("last_name", sa.String(), nullable=True),
        sa.Column("company", sa.String(), nullable=True),
        sa.Column("account_external_id", sa.String(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=True),
        sa.Column("lifecycle_stage", sa.String(), nullable=True),
        sa.Column("lead_source", sa.String(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("converted", sa.Boolean(), nullable=False),
        sa.Column("converted_contact_external_id", sa.String(), nullable=True),
        sa.Column("converted_account_external_id", sa.String(), nullable=True),
        sa.Column("converted_opportunity_external_id", sa.String(), nullable=True),
        sa.Column("merged_into", sa.String(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("fields", JSON_DOCUMENT, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=True),
        sa.Column("updated_at", UTC_DATETIME, nullable=True),
        sa.Column("pulled_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person")),
        sa.UniqueConstraint("crm", "external_id", name=op.f("uq_person_crm_external_id")),
    )
    op.create_index(
        op.f("ix_person_account_external_id"), "person", ["account_external_id"], unique=False
    )
    op.create_index(op.f("ix_person_email"), "person", ["email"], unique=False)
    op.create_table(
        "sync_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pipeline", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("counts", JSON_DOCUMENT, nullable=False),
        sa.Column("api_calls", JSON_DOCUMENT, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('running', 'succeeded', 'failed', 'interrupted')",
            name=op.f("ck_sync_run_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_run")),
    )
    op.create_index(
        op.f("ix_sync_run_pipeline_started_at"),
        "sync_run",
        ["pipeline", "started_at"],
        unique=False,
    )
    op.create_table(
        "touch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("occurred_at", UTC_DATETIME, nullable=False),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("person_ref", sa.String(), nullable=True),
        sa.Column("campaign", sa.String(), nullable=True),
        sa.Column("channel", sa.String(), nullable=True),
        sa.Column("asset", sa.String(), nullable=True),
        sa.Column("attributes", JSON_DOCUMENT, nullable=False),
        sa.Column("raw", JSON_DOCUMENT, nullable=False),
        sa.Column("pulled_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_touch")),
        sa.UniqueConstraint("key", name=op.f("uq_touch_key")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_touch_source_source_id")),
    )
    op.create_index(op.f("ix_touch_email"), "touch", ["email"], unique=False)
    op.create_index(op.f("ix_touch_occurred_at"), "touch", ["occurred_at"], unique=False)
    op.create_table(
        "delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("touch_id", sa.Integer(), nullable=False),
        sa.Column("sink", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("crm_id", sa.String(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("intended_at", UTC_DATETIME, nullable=False),
        sa.Column("confirmed_at", UTC_DATETIME, nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "state IN ('intended', 'confirmed', 'failed', 'dead')", name=op.f("ck_delivery_state")
        ),
        sa.ForeignKeyConstraint(
            ["touch_id"], ["touch.id"], name=op.f("fk_delivery_touch_id_touch")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery")),
        sa.UniqueConstraint("touch_id", "sink", name=op.f("uq_delivery_touch_id_sink")),
    )
    op.create_index(op.f("ix_delivery_sink_state"), "delivery", ["sink", "state"], unique=False)


def downgrade() -> None:
    """Drop every ledger table (dependent tables first)."""
    op.drop_index(op.f("ix_delivery_sink_state"), table_name="delivery")
    op.drop_table("delivery")
    op.drop_index(op.f("ix_touch_occurred_at"), table_name="touch")
    op.drop_index(op.f("ix_touch_email"), table_name="touch")
    op.drop_table("touch")
    op.drop_index(op.f("ix_sync_run_pipeline_started_at"), table_name="sync_run")
    op.drop_table("sync_run")
    op.drop_index(op.f("ix_person_email"), table_name="person")
    op.drop_index(op.f("ix_person_account_external_id"), table_name="person")
    op.drop_table("person")
    op.drop_index(op.f("ix_opportunity_account_external_id"), table_name="opportunity")
    op.drop_table("opportunity")
    op.drop_table("lease")
    op.drop_index(op.f("ix_disposition_email"), table_name="disposition")
    op.drop_index(op.f("ix_disposition_changed_at"), table_name="disposition")
    op.drop_table("disposition")
    op.drop_index(op.f("ix_dead_letter_record_key"), table_name="dead_letter")
    op.drop_index(op.f("ix_dead_letter_pipeline_status"), table_name="dead_letter")
    op.drop_table("dead_letter")
    op.drop_table("cursor")
    op.drop_index(op.f("ix_contact_role_person_external_id"), table_name="contact_role")
    op.drop_index(op.f("ix_contact_role_opportunity_external_id"), table_name="contact_role")
    op.drop_table("contact_role")
    op.drop_table("campaign_cost")
    op.drop_table("campaign")
    op.drop_index(op.f("ix_account_domain"), table_name="account")
    op.drop_table("account")
