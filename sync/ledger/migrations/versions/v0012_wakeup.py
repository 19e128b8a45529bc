"""Wake-ups: a counter per touch source, raised when new touches of that source are stored.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

Table ``wakeup``, one row per source name: ``generation`` grows by one each time a webhook
request or a file import stores touches of the source, ``woken_at`` says when. ``closedloop
serve`` watches the counters and runs the pipelines that read a source at once (``sync.wakeups``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``wakeup``."""
    op.create_table(
        "wakeup",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("woken_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_wakeup")),
    )


def downgrade() -> None:
    """Drop ``wakeup``."""
    op.drop_table("wakeup")
