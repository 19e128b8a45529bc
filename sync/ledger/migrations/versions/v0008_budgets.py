"""Budgets: API calls per connection per vendor day.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

Table ``api_usage``, one row per connection and vendor day (unique together): the calls
closedloop made that day (every run adds its own), and the vendor's own figures of the day's
usage and allocation where it reports them. ``sync.budgets`` reads it for the daily caps, the
pipeline priorities and the forecast of ``check``, ``runs`` and /metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``api_usage``."""
    op.create_table(
        "api_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("day", sa.String(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("vendor_used", sa.Integer(), nullable=True),
        sa.Column("allocation", sa.Integer(), nullable=True),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_usage")),
        sa.UniqueConstraint("connection", "day", name=op.f("uq_api_usage_connection_day")),
    )


def downgrade() -> None:
    """Drop ``api_usage``."""
    op.drop_table("api_usage")
