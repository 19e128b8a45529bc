"""The ledger: what closedloop pulled, pushed and observed, in SQLite or PostgreSQL.

Public surface: the tables (``sync.ledger.models``), ``open_ledger`` (connect and migrate,
what every command calls), ``make_engine`` / ``ledger_session`` and the migration functions.
"""

from __future__ import annotations

from sync.ledger.engine import (
    DATABASE_URL_ENV,
    LedgerError,
    LedgerUnavailable,
    default_database_url,
    ledger_session,
    make_engine,
    mask_url,
    normalize_url,
)
from sync.ledger.migrate import current, downgrade, head, open_ledger, upgrade, upgrade_sql
from sync.ledger.models import (
    LEDGER_METADATA,
    AccountRow,
    CampaignCostRow,
    CampaignRow,
    ContactRoleRow,
    CostOrigin,
    CursorRow,
    DeadLetterRow,
    DeadLetterStage,
    DeadLetterStatus,
    DeliveryRow,
    DeliveryState,
    DispositionRow,
    LeaseRow,
    OpportunityRow,
    PersonRow,
    RunState,
    SyncRunRow,
    TouchRow,
)
from sync.ledger.types import utcnow

__all__ = [
    "DATABASE_URL_ENV",
    "LEDGER_METADATA",
    "AccountRow",
    "CampaignCostRow",
    "CampaignRow",
    "ContactRoleRow",
    "CostOrigin",
    "CursorRow",
    "DeadLetterRow",
    "DeadLetterStage",
    "DeadLetterStatus",
    "DeliveryRow",
    "DeliveryState",
    "DispositionRow",
    "LeaseRow",
    "LedgerError",
    "LedgerUnavailable",
    "OpportunityRow",
    "PersonRow",
    "RunState",
    "SyncRunRow",
    "TouchRow",
    "current",
    "default_database_url",
    "downgrade",
    "head",
    "ledger_session",
    "make_engine",
    "mask_url",
    "normalize_url",
    "open_ledger",
    "upgrade",
    "upgrade_sql",
    "utcnow",
]
