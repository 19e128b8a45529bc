"""Names the report shows: CRM users (reps) and marketing programs with their CRM campaign.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

Tables: ``crm_user``, one row per CRM and user/owner id (unique together): the name and email
the CRM gives its users (Salesforce User, HubSpot owners), so reports name reps without a
hand-made ``analytics.rep_names``; ``source_program``, one row per marketing source and program
id (unique together): the program's name and channel and, when the program is synced to a CRM
campaign (Marketo's Salesforce Campaign Sync), that campaign's id and name, so touches that name
a program by id reach the CRM campaign that carries the spend.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the user and program name tables."""
    op.create_table(
        "crm_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("pulled_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_user")),
        sa.UniqueConstraint("crm", "external_id", name=op.f("uq_crm_user_crm_external_id")),
    )
    op.create_table(
        "source_program",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=True),
        sa.Column("crm_campaign_id", sa.String(), nullable=True),
        sa.Column("crm_campaign_name", sa.String(), nullable=True),
        sa.Column("pulled_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_program")),
        sa.UniqueConstraint(
            "source", "external_id", name=op.f("uq_source_program_source_external_id")
        ),
    )


def downgrade() -> None:
    """Drop the user and program name tables."""
    op.drop_table("source_program")
    op.drop_table("crm_user")
