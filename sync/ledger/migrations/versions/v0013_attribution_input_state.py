"""Attribution runs remember the state of their inputs, so an unchanged re-run is checked first.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

Column ``attribution_run.input_state``: a digest of what the run read, taken cheaply (the touch
table's size and newest id, the CRM's people, addresses, matches, campaigns, deals and contact
roles, the parameters, models and ``as_of``; see ``sync.attribution.ledger.input_state``). When
the latest run's state matches, ``attribution run`` reuses it without loading a touch. Runs
stored before have none and are checked by their full fingerprint, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``attribution_run.input_state``."""
    with op.batch_alter_table("attribution_run") as batch:
        batch.add_column(sa.Column("input_state", sa.String(), nullable=True))


def downgrade() -> None:
    """Drop ``attribution_run.input_state``."""
    with op.batch_alter_table("attribution_run") as batch:
        batch.drop_column("input_state")
