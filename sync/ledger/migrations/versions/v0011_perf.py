"""Touches by source and id, people by CRM and email: the reads of every batch stay index ranges.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

Index ``ix_touch_source_id`` on ``touch (source, id)``: the touches pipeline reads the next batch
of a source's touches after its deliver cursor (``source = ? AND id > ? ORDER BY id LIMIT n``),
which without it scans every touch of the source (SQLite, through the ``(source, source_id)``
unique index and a sort) or more, so each batch cost grew with the ledger.

Index ``ix_person_crm_email`` on ``person (crm, email)``: a batch looks its people up by CRM and
email (``crm = ? AND email IN (...)``); SQLite, which keeps no statistics for a ledger, otherwise
reads every person of the CRM through the ``(crm, external_id)`` unique index for each lookup.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``ix_touch_source_id`` and ``ix_person_crm_email``."""
    op.create_index(op.f("ix_touch_source_id"), "touch", ["source", "id"], unique=False)
    op.create_index(op.f("ix_person_crm_email"), "person", ["crm", "email"], unique=False)


def downgrade() -> None:
    """Drop ``ix_person_crm_email`` and ``ix_touch_source_id``."""
    op.drop_index(op.f("ix_person_crm_email"), table_name="person")
    op.drop_index(op.f("ix_touch_source_id"), table_name="touch")
