"""Sync log and alert state: what was done to each record, and which alerts hold.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

Tables: ``sync_log``, one row per step a record went through (pulled, matched, mapped, created,
updated, skipped, refused, replayed): when, the pipeline, the touch key, e-mail and CRM id it
concerned, the payload sent (zlib-compressed JSON) and the vendor's answer (secrets masked);
indexed by touch key, e-mail, CRM id and time (retention prunes by time). ``alert_state``, one
row per alert condition (trigger and pipeline): whether it holds, since when, the figures last
announced, so a notice goes out when it starts and when it clears, never in between.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)
OPERATIONS = ("create", "update", "skip", "refuse", "replay", "pull", "match", "map")


def upgrade() -> None:
    """Create ``sync_log`` and ``alert_state``."""
    op.create_table(
        "sync_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("pipeline", sa.String(), nullable=False),
        sa.Column("touch_key", sa.String(), nullable=True),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("crm_id", sa.String(), nullable=True),
        sa.Column("operation", sa.String(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "operation IN (" + ", ".join(repr(o) for o in OPERATIONS) + ")",
            name=op.f("ck_sync_log_operation"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_log")),
    )
    for column in ("at", "touch_key", "email", "crm_id"):
        op.create_index(op.f(f"ix_sync_log_{column}"), "sync_log", [column])
    op.create_table(
        "alert_state",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("trigger", sa.String(), nullable=False),
        sa.Column("pipeline", sa.String(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("since", UTC_DATETIME, nullable=False),
        sa.Column("figures", JSON_DOCUMENT, nullable=False),
        sa.Column("notified_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_alert_state")),
    )


def downgrade() -> None:
    """Drop ``alert_state`` and ``sync_log``."""
    op.drop_table("alert_state")
    for column in ("crm_id", "email", "touch_key", "at"):
        op.drop_index(op.f(f"ix_sync_log_{column}"), table_name="sync_log")
    op.drop_table("sync_log")
