"""Known keys: records a sink holds for touch keys the ledger had not recorded.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07

Table ``known_key`` (one row per sink and touch key, found by a key audit of a sink whose creates
are not idempotent) and an index on ``delivery (sink, crm_id)`` for the audit's "does the ledger
know this record?" question.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``known_key`` and the delivery index."""
    op.create_table(
        "known_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sink", sa.String(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("crm_id", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("found_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_known_key")),
        sa.UniqueConstraint("sink", "key", name=op.f("uq_known_key_sink_key")),
    )
    op.create_index(op.f("ix_delivery_sink_crm_id"), "delivery", ["sink", "crm_id"], unique=False)


def downgrade() -> None:
    """Drop them."""
    op.drop_index(op.f("ix_delivery_sink_crm_id"), table_name="delivery")
    op.drop_table("known_key")
