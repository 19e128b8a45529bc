"""CRM schema cache: the fields each connected org described, for mapping validation.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

Table: ``crm_schema``, one row per connection and CRM object (unique together): the
vendor-neutral field rows the org's describe / properties API gave (NULL when the org has no
such object) and when they were read. Column types are plain SQLAlchemy types, as in 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)


def upgrade() -> None:
    """Create the CRM schema cache."""
    op.create_table(
        "crm_schema",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("object", sa.String(), nullable=False),
        sa.Column("fields", JSON_DOCUMENT, nullable=True),
        sa.Column("read_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_schema")),
        sa.UniqueConstraint("connection", "object", name=op.f("uq_crm_schema_connection_object")),
    )


def downgrade() -> None:
    """Drop the CRM schema cache."""
    op.drop_table("crm_schema")
