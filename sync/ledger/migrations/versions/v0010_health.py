"""Sync health page: the audit of its actions, run fingerprints, error groups.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

- Table ``ui_audit``: every action taken on the page (replay, discard, run now, sign-in): who,
  what, on what, when, with details.
- ``sync_run``: ``config_fingerprint`` and ``mapping_fingerprint``, the settings a run used.
- ``dead_letter``: ``template`` (the reason with ids and values masked) and ``group_key`` (the
  error group), filled when the page first reads a letter; index ``(status, group_key,
  created_at)`` so the page groups 100,000 open letters from the index alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)


def upgrade() -> None:
    """Create ``ui_audit``; add the fingerprint and group columns and the group index."""
    op.create_table(
        "ui_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("user", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("details", JSON_DOCUMENT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ui_audit")),
    )
    op.create_index(op.f("ix_ui_audit_at"), "ui_audit", ["at"])
    with op.batch_alter_table("sync_run") as batch:
        batch.add_column(sa.Column("config_fingerprint", sa.String(), nullable=True))
        batch.add_column(sa.Column("mapping_fingerprint", sa.String(), nullable=True))
    with op.batch_alter_table("dead_letter") as batch:
        batch.add_column(sa.Column("template", sa.Text(), nullable=True))
        batch.add_column(sa.Column("group_key", sa.String(), nullable=True))
    op.create_index(
        op.f("ix_dead_letter_status_group_key_created_at"),
        "dead_letter",
        ["status", "group_key", "created_at"],
    )


def downgrade() -> None:
    """Drop what ``upgrade`` added."""
    op.drop_index(op.f("ix_dead_letter_status_group_key_created_at"), table_name="dead_letter")
    with op.batch_alter_table("dead_letter") as batch:
        batch.drop_column("group_key")
        batch.drop_column("template")
    with op.batch_alter_table("sync_run") as batch:
        batch.drop_column("mapping_fingerprint")
        batch.drop_column("config_fingerprint")
    op.drop_index(op.f("ix_ui_audit_at"), table_name="ui_audit")
    op.drop_table("ui_audit")
