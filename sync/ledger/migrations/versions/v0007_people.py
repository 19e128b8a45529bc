"""Person fields: what closedloop last settled on each CRM person.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

Column ``person.fields_digest``: a digest of the source person (and the mapping's person-field
rules) whose ``people.fields`` rules were last applied to this CRM person. Every refresh of the
row from the CRM (a lookup, a pull) clears it, so a person is read and settled again when either
side changed, and not on every touch.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``person.fields_digest``."""
    with op.batch_alter_table("person") as batch:
        batch.add_column(sa.Column("fields_digest", sa.String(), nullable=True))


def downgrade() -> None:
    """Drop ``person.fields_digest``."""
    with op.batch_alter_table("person") as batch:
        batch.drop_column("fields_digest")
