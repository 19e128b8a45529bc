"""Opt-outs: the email opt-outs closedloop has set (or found set) in each sink.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

Table ``opt_out``, one row per sink and e-mail address (unique together): the CRM person, the
unsubscribe touch that asked for it, whether closedloop wrote it (``changed``) or the CRM already
had it, and when. A replay of the touch finds the row and writes nothing again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``opt_out``."""
    op.create_table(
        "opt_out",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sink", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=True),
        sa.Column("touch_key", sa.Text(), nullable=True),
        sa.Column("changed", sa.Boolean(), nullable=False),
        sa.Column("subscription", sa.String(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("recorded_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opt_out")),
        sa.UniqueConstraint("sink", "email", name=op.f("uq_opt_out_sink_email")),
    )


def downgrade() -> None:
    """Drop ``opt_out``."""
    op.drop_table("opt_out")
