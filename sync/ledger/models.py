"""The ledger's tables: what closedloop has pulled, pushed, observed and promised.

Every table is a SQLModel class named ``<Thing>Row`` (so it never shadows the connector record
types of ``connectors.base``) on one private metadata, ``LEDGER_METADATA``, whose naming
convention gives every constraint and index a stable name (SQLite migrations can only drop
what has a name).

- Touches: ``touch`` (one per source activity, unique on ``source + source_id`` and on the
  touch key) and ``delivery`` (one per touch and sink: intended -> confirmed / failed / dead);
  ``known_key`` (revision 0003): records a sink holds for touch keys the ledger had not recorded.
- The CRM graph: ``person``, ``account``, ``opportunity``, ``contact_role``, ``campaign``,
  ``campaign_cost``. Each is unique on ``(crm, external_id)`` where ``crm`` is the connection
  name, and rows point at each other by external id strings, not foreign keys, because CRM
  changes arrive in any order (a contact role before its opportunity, a merged account ...).
- History: ``disposition`` (append-only status and stage transitions; re-pulling the same
  change is a no-op thanks to its unique key).
- Operations: ``cursor`` (per pipeline and stream), ``sync_run``, ``dead_letter``, ``lease``;
  ``ui_audit`` (revision 0010): every action taken on the sync-health page.
- Reconciliation and attribution (revision 0002): ``person_email`` (every address a person has
  had), ``account_match`` (lead-to-account links and the review queue, with human decisions),
  ``attribution_run`` (versioned runs with an inputs fingerprint), ``attribution_credit`` and
  ``attribution_outcome`` (per opportunity: counted touches, sourcing campaign).
- Names for reports (revision 0005): ``crm_user`` (CRM users and owners: reps' names) and
  ``source_program`` (marketing programs and the CRM campaign each is synced to).
- CRM schema cache (revision 0004): ``crm_schema`` (per connection and CRM object, the fields
  the org described and when; mappings are validated against it, see ``sync.crm_schema``).
- Opt-outs (revision 0006): ``opt_out`` (per sink and address, the email opt-out closedloop set
  or found set, so an unsubscribe is applied exactly once).
- Sync log and alerts (revision 0009): ``sync_log`` (one row per step a record went through:
  pulled, matched, mapped, sent with its compressed payload and the vendor's answer, replayed;
  pruned after a retention, see ``sync.synclog``) and ``alert_state`` (per alert condition,
  whether it holds and since when, so each start and each clearing is announced once, see
  ``sync.alerts``).
- Wake-ups (revision 0012): ``wakeup`` (per touch source, a counter raised whenever a webhook or
  an import stores its touches; ``closedloop serve`` runs the source's pipelines at once).

Times are aware UTC datetimes (``UtcDateTime``), money is ``Numeric(18, 2)``, emails are
lower-cased on the way in (``EmailAddress``), and no text column stores a control character
(``guard_text_columns``, rules in ``sync.ledger.types``). SQLite keeps NUMERIC values as
doubles: amounts come back exact to the cent up to 9,999,999,999,999.99 (15 significant
digits), and SQL-side sums over very many rows may drift by cents; PostgreSQL is exact over the
whole range.
Columns that bulk inserts commonly omit carry a column default, so Core
``insert(...).values(...)`` works as well as the ORM.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    Index,
    LargeBinary,
    MetaData,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import registry
from sqlalchemy.sql.elements import conv
from sqlmodel import Field, SQLModel

from sync.ledger.types import (
    EmailAddress,
    JsonDocument,
    UtcDateTime,
    guard_text_columns,
    utcnow,
)

__all__ = [
    "LEDGER_METADATA",
    "AccountMatchRow",
    "AccountRow",
    "AlertStateRow",
    "ApiUsageRow",
    "AttributionCreditRow",
    "AttributionOutcomeRow",
    "AttributionRunRow",
    "CampaignCostRow",
    "CampaignRow",
    "ContactRoleRow",
    "CostOrigin",
    "CrmSchemaRow",
    "CrmUserRow",
    "CursorRow",
    "DeadLetterRow",
    "DeadLetterStage",
    "DeadLetterStatus",
    "DeliveryRow",
    "DeliveryState",
    "DispositionRow",
    "KnownKeyRow",
    "LeaseRow",
    "LedgerModel",
    "MatchStatus",
    "OpportunityRow",
    "OptOutRow",
    "PersonEmailRow",
    "PersonRow",
    "RunState",
    "SourceProgramRow",
    "SyncLogEntry",
    "SyncLogOperation",
    "SyncRunRow",
    "TouchRow",
    "UiAuditRow",
    "WakeupRow",
]

LEDGER_METADATA = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class LedgerModel(SQLModel, registry=registry(metadata=LEDGER_METADATA)):
    """Base of every ledger table (carries the ledger's own metadata, not SQLModel's global one)."""


class DeliveryState(enum.StrEnum):
    """Where a delivery of one touch to one sink stands."""

    INTENDED = "intended"  # recorded before the CRM call; outcome unknown until confirmed
    CONFIRMED = "confirmed"
    FAILED = "failed"  # will be retried
    DEAD = "dead"  # gave up; a dead letter says why


class RunState(enum.StrEnum):
    """The state of one pipeline run."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class DeadLetterStage(enum.StrEnum):
    """The pipeline stage that rejected a record."""

    PULL = "pull"
    MAP = "map"
    RESOLVE = "resolve"
    PUSH = "push"


class DeadLetterStatus(enum.StrEnum):
    """What became of a dead letter."""

    OPEN = "open"
    REPLAYED = "replayed"
    DISCARDED = "discarded"


class CostOrigin(enum.StrEnum):
    """Where a campaign cost came from: pulled from the CRM or declared in YAML."""

    CRM = "crm"
    YAML = "yaml"


def _in(column: str, values: type[enum.StrEnum]) -> str:
    """A CHECK expression limiting ``column`` to the members of a StrEnum."""
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


def _empty_dict() -> dict[str, Any]:
    return {}


def _empty_list() -> list[Any]:
    return []


# --- touches and deliveries -------------------------------------------------------------------


class TouchRow(LedgerModel, table=True):
    """One marketing activity by one person, as pulled (the raw payload is kept)."""

    __tablename__ = "touch"
    __table_args__ = (
        UniqueConstraint("source", "source_id"),
        Index(None, "source", "id"),  # a pipeline's new touches, read by id range (touches.py)
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)  # "<source>:<source_id>", the idempotency key of CRM writes
    source: str
    source_id: str
    kind: str
    occurred_at: datetime = Field(sa_type=UtcDateTime, index=True)
    email: str | None = Field(default=None, sa_type=EmailAddress, index=True)
    person_ref: str | None = None
    campaign: str | None = None
    channel: str | None = None
    asset: str | None = None
    attributes: dict[str, Any] = Field(
        default_factory=_empty_dict,
        sa_type=JsonDocument,
        sa_column_kwargs={"default": _empty_dict},
    )
    raw: dict[str, Any] = Field(
        default_factory=_empty_dict,
        sa_type=JsonDocument,
        sa_column_kwargs={"default": _empty_dict},
    )
    pulled_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )


class DeliveryRow(LedgerModel, table=True):
    """One touch written (or being written) to one sink; unique per touch and sink."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("touch_id", "sink"),
        Index(None, "sink", "state"),
        Index(None, "sink", "crm_id"),  # "does the ledger know this CRM record?" (key audit)
        CheckConstraint(_in("state", DeliveryState), name="state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    touch_id: int = Field(foreign_key="touch.id")
    sink: str  # the connection name of the CRM
    state: str = Field(
        default=DeliveryState.INTENDED.value,
        sa_column_kwargs={"default": DeliveryState.INTENDED.value},
    )
    crm_id: str | None = None
    attempts: int = Field(default=0, sa_column_kwargs={"default": 0})
    last_error: str | None = Field(default=None, sa_type=Text)
    intended_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )
    confirmed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    run_id: int | None = None


class KnownKeyRow(LedgerModel, table=True):
    """A record a sink holds for a touch key that no delivery of the ledger accounts for.

    Learned by a key audit (``sync.pipelines.keyaudit``) when the ledger was lost or restored,
    or another writer uses the same keys; its touch is then confirmed without a second write.
    """

    __tablename__ = "known_key"
    __table_args__ = (UniqueConstraint("sink", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    sink: str
    key: str = Field(sa_type=Text)
    crm_id: str
    target: str
    found_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )


# --- the CRM graph ----------------------------------------------------------------------------


class PersonRow(LedgerModel, table=True):
    """A Lead or Contact as one CRM knows it (also the cache of email -> person lookups)."""

    __tablename__ = "person"
    __table_args__ = (
        UniqueConstraint("crm", "external_id"),
        # "who is this email in this CRM?" (deliveries): without it SQLite reads every person of
        # the CRM through (crm, external_id) for each lookup.
        Index(None, "crm", "email"),
    )

    id: int | None = Field(default=None, primary_key=True)
    crm: str
    external_id: str
    kind: str  # PersonKind: "lead" or "contact"
    email: str | None = Field(default=None, sa_type=EmailAddress, index=True)
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    account_external_id: str | None = Field(default=None, index=True)
    owner_id: str | None = None
    status: str | None = None
    lifecycle_stage: str | None = None
    lead_source: str | None = None
    score: float | None = None
    converted: bool = Field(default=False, sa_column_kwargs={"default": False})
    converted_contact_external_id: str | None = None
    converted_account_external_id: str | None = None
    converted_opportunity_external_id: str | None = None
    merged_into: str | None = None  # external id of the surviving record after a CRM merge
    deleted: bool = Field(default=False, sa_column_kwargs={"default": False})
    fields: dict[str, Any] = Field(
        default_factory=_empty_dict,
        sa_type=JsonDocument,
        sa_column_kwargs={"default": _empty_dict},
    )
    created_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    updated_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    pulled_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )
    # The source person (and person-field rules) last settled on this record by the mapping's
    # ``people.fields`` rules; any refresh of the row from the CRM clears it (revision 0007).
    fields_digest: str | None = None


class AccountRow(LedgerModel, table=True):
    """A company in one CRM."""

    __tablename__ = "account"
    __table_args__ = (UniqueConstraint("crm", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    crm: str
    external_id: str
    name: str
    domain: str | None = Field(default=None, index=True)
    owner_id: str | None = None
    merged_into: str | None = None
    deleted: bool = Field(default=False, sa_column_kwargs={"default": False})
    created_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    updated_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    pulled_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )


class OpportunityRow(LedgerModel, table=True):
    """A deal: stage, amount and dates are what attribution and ROI read."""

    __tablename__ = "opportunity"
    __table_args__ = (UniqueConstraint("crm", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    crm: str
    external_id: str
    name: str
    account_external_id: str | None = Field(default=None, index=True)
    stage: str
    amount: Decimal | None = Field(default=None, max_digits=18, decimal_places=2)
    currency: str | None = None
    is_closed: bool = Field(default=False, sa_column_kwargs={"default": False})
    is_won: bool = Field(default=False, sa_column_kwargs={"default": False})
    close_date: datetime | None = Field(default=None, sa_type=UtcDateTime)
    campaign_external_id: str | None = None  # the primary campaign source
    owner_id: str | None = None
    merged_into: str | None = None
    deleted: bool = Field(default=False, sa_column_kwargs={"default": False})
    created_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    updated_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    pulled_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )


class ContactRoleRow(LedgerModel, table=True):
    """A person's role on an opportunity."""

    __tablename__ = "contact_role"
    __table_args__ = (UniqueConstraint("crm", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    crm: str
    external_id: str
    opportunity_external_id: str = Field(index=True)
    person_external_id: str = Field(index=True)
    role: str | None = None
    is_primary: bool = Field(default=False, sa_column_kwargs={"default": False})
    deleted: bool = Field(default=False, sa_column_kwargs={"default": False})
    created_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    updated_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    pulled_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )


class CampaignRow(LedgerModel, table=True):
    """A marketing campaign or program in one CRM, with the costs the CRM records."""

    __tablename__ = "campaign"
    __table_args__ = (UniqueConstraint("crm", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    crm: str
    external_id: str
    name: str
    channel: str | None = None
    status: str | None = None
    actual_cost: Decimal | None = Field(default=None, max_digits=18, decimal_places=2)
    budgeted_cost: Decimal | None = Field(default=None, max_digits=18, decimal_places=2)
    currency: str | None = None
    start_date: datetime | None = Field(default=None, sa_type=UtcDateTime)
    end_date: datetime | None = Field(default=None, sa_type=UtcDateTime)
    deleted: bool = Field(default=False, sa_column_kwargs={"default": False})
    created_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    updated_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    pulled_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )


class CampaignCostRow(LedgerModel, table=True):
    """Spend on a campaign over a period (calendar dates), from the CRM or from YAML."""

    __tablename__ = "campaign_cost"
    __table_args__ = (
        UniqueConstraint("crm", "campaign_external_id", "period_start", "origin"),
        CheckConstraint(_in("origin", CostOrigin), name="origin"),
    )

    id: int | None = Field(default=None, primary_key=True)
    crm: str
    campaign_external_id: str
    period_start: date = Field(sa_type=Date)
    period_end: date = Field(sa_type=Date)
    amount: Decimal = Field(max_digits=18, decimal_places=2)
    currency: str | None = None
    origin: str
    updated_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )


# --- history ----------------------------------------------------------------------------------


class DispositionRow(LedgerModel, table=True):
    """One observed status or stage transition; append-only (only an empty ``reason`` is filled
    in later, by a reason the rep wrote after the status: ``sync.pipelines.dispositions``).

    ``new_value`` is never NULL: a cleared field is stored as ``""``. SQL treats NULLs as
    distinct in unique constraints, so a NULL there would let a re-pull double the row.
    """

    __tablename__ = "disposition"
    __table_args__ = (
        UniqueConstraint(
            "crm",
            "object_type",
            "object_id",
            "field",
            "changed_at",
            "new_value",
            name=conv("uq_disposition_change"),
        ),
        Index(None, "changed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    crm: str
    object_type: str  # "lead", "contact", "opportunity", ...
    object_id: str
    email: str | None = Field(default=None, sa_type=EmailAddress, index=True)
    field: str
    old_value: str | None = None
    new_value: str = ""
    lifecycle_stage: str | None = None  # the shared lifecycle stage new_value translates to
    reason: str | None = None
    owner_id: str | None = None
    changed_at: datetime = Field(sa_type=UtcDateTime)
    observed_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )
    run_id: int | None = None


# --- operations -------------------------------------------------------------------------------


class CursorRow(LedgerModel, table=True):
    """How far one stream of one pipeline has been read; written with the records it covers."""

    __tablename__ = "cursor"
    __table_args__ = (UniqueConstraint("pipeline", "stream"),)

    id: int | None = Field(default=None, primary_key=True)
    pipeline: str
    stream: str
    value: str | None = None
    boundary_keys: list[str] = Field(
        default_factory=_empty_list,
        sa_type=JsonDocument,
        sa_column_kwargs={"default": _empty_list},
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )
    fencing_token: int | None = None  # the lease token of the writer; stale writers are refused


class SyncRunRow(LedgerModel, table=True):
    """One run of one pipeline: when, by whom, how it ended, what it counted and spent."""

    __tablename__ = "sync_run"
    __table_args__ = (
        Index(None, "pipeline", "started_at"),
        CheckConstraint(_in("state", RunState), name="state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    pipeline: str
    owner: str
    started_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    state: str = Field(
        default=RunState.RUNNING.value, sa_column_kwargs={"default": RunState.RUNNING.value}
    )
    counts: dict[str, Any] = Field(
        default_factory=_empty_dict,
        sa_type=JsonDocument,
        sa_column_kwargs={"default": _empty_dict},
    )
    api_calls: dict[str, Any] = Field(
        default_factory=_empty_dict,
        sa_type=JsonDocument,
        sa_column_kwargs={"default": _empty_dict},
    )
    error: str | None = Field(default=None, sa_type=Text)
    # sha256 prefixes of the effective config (secrets masked) and of the pipeline's mapping
    # file as the run started (revision 0010): which settings a run used (``sync.ui``).
    config_fingerprint: str | None = None
    mapping_fingerprint: str | None = None


class DeadLetterRow(LedgerModel, table=True):
    """A record a stage refused, kept with its reason until replayed or discarded."""

    __tablename__ = "dead_letter"
    __table_args__ = (
        Index(None, "pipeline", "status"),
        Index(None, "status", "group_key", "created_at"),  # the page's error groups (0010)
        CheckConstraint(_in("stage", DeadLetterStage), name="stage"),
        CheckConstraint(_in("status", DeadLetterStatus), name="status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    pipeline: str
    stage: str
    record_key: str | None = Field(default=None, index=True)
    code: str
    reason: str = Field(sa_type=Text)
    payload: Any = Field(default=None, sa_type=JsonDocument, nullable=True)
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )
    run_id: int | None = None
    status: str = Field(
        default=DeadLetterStatus.OPEN.value,
        sa_column_kwargs={"default": DeadLetterStatus.OPEN.value},
    )
    attempts: int = Field(default=0, sa_column_kwargs={"default": 0})
    resolved_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # The reason with ids, emails, numbers and quoted values masked, and the digest of
    # (pipeline, stage, code, template): like errors fall in one group on the page (revision
    # 0010). Filled when the page first reads the letter (``sync.ui.grouping``).
    template: str | None = Field(default=None, sa_type=Text)
    group_key: str | None = None


class LeaseRow(LedgerModel, table=True):
    """Who may run a named job until when; the fencing token grows with every new holder."""

    __tablename__ = "lease"

    name: str = Field(primary_key=True)
    owner: str
    fencing_token: int
    acquired_at: datetime = Field(sa_type=UtcDateTime)
    expires_at: datetime = Field(sa_type=UtcDateTime)


class UiAuditRow(LedgerModel, table=True):
    """One action taken on the sync-health page (revision 0010): who, what, when, details."""

    __tablename__ = "ui_audit"
    __table_args__ = (Index(None, "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )
    user: str
    action: str  # replay, discard, run, sign-in ...
    target: str  # a pipeline, an error group, dead letter ids
    details: dict[str, Any] = Field(
        default_factory=_empty_dict,
        sa_type=JsonDocument,
        sa_column_kwargs={"default": _empty_dict},
    )


# --- reconciliation and attribution (revision 0002) -------------------------------------------


class MatchStatus(enum.StrEnum):
    """Where a lead-to-account match stands: linked automatically, waiting, or decided."""

    AUTO = "auto"  # confident enough: linked without review
    PENDING = "pending"  # queued for `closedloop matches review`
    ACCEPTED = "accepted"  # a human linked it; reused on every later run
    REJECTED = "rejected"  # a human refused it; never proposed again


class PersonEmailRow(LedgerModel, table=True):
    """Every address a person has had (the person row only keeps the current one)."""

    __tablename__ = "person_email"
    __table_args__ = (UniqueConstraint("crm", "person_external_id", "email"),)

    id: int | None = Field(default=None, primary_key=True)
    crm: str
    person_external_id: str
    email: str = Field(sa_type=EmailAddress, index=True)
    first_seen_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )
    last_seen_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )


class AccountMatchRow(LedgerModel, table=True):
    """A proposed or decided link of an unconverted lead to an account, with its evidence."""

    __tablename__ = "account_match"
    __table_args__ = (
        UniqueConstraint("crm", "person_external_id", "account_external_id"),
        Index(None, "crm", "status"),
        CheckConstraint(_in("status", MatchStatus), name="status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    crm: str
    person_external_id: str = Field(index=True)
    account_external_id: str
    confidence: float
    method: str  # "domain", "name", "acronym" or "fuzzy"
    evidence: dict[str, Any] = Field(
        default_factory=_empty_dict,
        sa_type=JsonDocument,
        sa_column_kwargs={"default": _empty_dict},
    )
    status: str
    decided_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )


class AttributionRunRow(LedgerModel, table=True):
    """One stored attribution run: its models, parameters and the fingerprint of its inputs."""

    __tablename__ = "attribution_run"
    __table_args__ = (Index(None, "crm", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)  # the run's version number
    crm: str
    models: list[str] = Field(
        default_factory=_empty_list,
        sa_type=JsonDocument,
        sa_column_kwargs={"default": _empty_list},
    )
    params: dict[str, Any] = Field(
        default_factory=_empty_dict,
        sa_type=JsonDocument,
        sa_column_kwargs={"default": _empty_dict},
    )
    fingerprint: str = Field(index=True)  # sha256 of the sorted inputs, parameters and as_of
    # sha256 of the inputs' cheap state (sync.attribution.ledger.input_state): checked first
    input_state: str | None = None
    algorithm_version: str
    as_of: datetime = Field(sa_type=UtcDateTime)
    started_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    counts: dict[str, Any] = Field(
        default_factory=_empty_dict,
        sa_type=JsonDocument,
        sa_column_kwargs={"default": _empty_dict},
    )


class AttributionCreditRow(LedgerModel, table=True):
    """The share of one opportunity one model of one run gives one touch."""

    __tablename__ = "attribution_credit"
    __table_args__ = (Index(None, "run_id", "model"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="attribution_run.id")
    model: str
    opportunity_external_id: str
    touch_key: str
    person_external_id: str
    campaign: str | None = None
    channel: str | None = None
    occurred_at: datetime = Field(sa_type=UtcDateTime)
    share_units: int  # millionths of the opportunity: 1,000,000 = 100%
    amount: Decimal = Field(max_digits=18, decimal_places=2)
    milestones: str = Field(default="", sa_column_kwargs={"default": ""})  # comma-separated


class AttributionOutcomeRow(LedgerModel, table=True):
    """One opportunity in one run: its amount, counted touches, and sourcing campaign."""

    __tablename__ = "attribution_outcome"
    __table_args__ = (UniqueConstraint("run_id", "opportunity_external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="attribution_run.id")
    opportunity_external_id: str
    amount: Decimal = Field(max_digits=18, decimal_places=2)
    is_closed: bool
    is_won: bool
    counted_touches: int
    lead_person_external_id: str | None = None
    sourced_campaign: str | None = None
    sourced_by: str | None = None  # "lead_creation" or "primary_campaign"
    influencing_campaigns: list[str] = Field(
        default_factory=_empty_list,
        sa_type=JsonDocument,
        sa_column_kwargs={"default": _empty_list},
    )


# --- CRM schema cache (revision 0004) ---------------------------------------------------------


class CrmSchemaRow(LedgerModel, table=True):
    """The fields of one object of a connection's CRM as the org last described them."""

    __tablename__ = "crm_schema"
    __table_args__ = (UniqueConstraint("connection", "object"),)

    id: int | None = Field(default=None, primary_key=True)
    connection: str  # the connection's name in closedloop.yaml
    crm: str  # its connector type when read (salesforce, hubspot)
    object: str  # as mappings name it: Task, Lead, note, contact ...
    # Vendor-neutral field rows (``sync.mapping.catalogue.FieldInfo.to_row``); NULL when the org
    # has no such object (or the integration user cannot see it).
    fields: list[dict[str, Any]] | None = Field(default=None, sa_type=JsonDocument)
    read_at: datetime = Field(sa_type=UtcDateTime)


# --- names for reports (revision 0005) -------------------------------------------------------


class CrmUserRow(LedgerModel, table=True):
    """A CRM user or owner (Salesforce User, HubSpot owner): the rep behind an owner id."""

    __tablename__ = "crm_user"
    __table_args__ = (UniqueConstraint("crm", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    crm: str  # the connection's name
    external_id: str
    name: str | None = None
    email: str | None = None
    active: bool = Field(default=True, sa_column_kwargs={"default": True})
    pulled_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )


class SourceProgramRow(LedgerModel, table=True):
    """A marketing program (Marketo) and the CRM campaign it is synced to, if any."""

    __tablename__ = "source_program"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str  # the connection's name
    external_id: str  # as touches name it (Marketo: the program id)
    name: str
    channel: str | None = None
    crm_campaign_id: str | None = None  # Marketo sfdcId: the synced Salesforce campaign
    crm_campaign_name: str | None = None
    pulled_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )


# --- opt-outs (revision 0006) -----------------------------------------------------------------


class OptOutRow(LedgerModel, table=True):
    """An email opt-out closedloop set in a sink (or found already set there), per address.

    Written with the unsubscribe touch's intended delivery, so a replay writes nothing again;
    closedloop never clears an opt-out (``sync.pipelines.deliveries``).
    """

    __tablename__ = "opt_out"
    __table_args__ = (UniqueConstraint("sink", "email"),)

    id: int | None = Field(default=None, primary_key=True)
    sink: str
    email: str = Field(sa_type=EmailAddress)
    external_id: str | None = None
    touch_key: str | None = Field(default=None, sa_type=Text)
    changed: bool  # closedloop wrote it (False: the CRM already had the person opted out)
    subscription: str  # "all" or the HubSpot subscription type id
    run_id: int | None = None
    recorded_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )


# --- sync log and alerts (revision 0009) ------------------------------------------------------


class SyncLogOperation(enum.StrEnum):
    """What one step did to one record (``sync_log.operation``)."""

    CREATE = "create"  # pushed: the CRM created the record
    UPDATE = "update"  # pushed: the CRM updated a record it had
    SKIP = "skip"  # not pushed: the mapping filtered it, or the CRM already held it
    REFUSE = "refuse"  # pushed and refused (or held back: the answer says why)
    REPLAY = "replay"  # a dead letter sent round again
    PULL = "pull"  # read from a source
    MATCH = "match"  # its person found in (or created by) the CRM
    MAP = "map"  # rendered by the mapping into the payload to send


class SyncLogEntry(LedgerModel, table=True):
    """One step one record went through, for ``closedloop log`` and the health page.

    ``payload`` is the JSON sent (or read), zlib-compressed; ``answer`` is the vendor's answer,
    status or error with secrets masked. Rows older than ``sync_log.retention`` are pruned.
    """

    __tablename__ = "sync_log"
    __table_args__ = (CheckConstraint(_in("operation", SyncLogOperation), name="operation"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(
        default_factory=utcnow,
        sa_type=UtcDateTime,
        index=True,
        sa_column_kwargs={"default": utcnow},
    )
    pipeline: str
    touch_key: str | None = Field(default=None, index=True)
    email: str | None = Field(default=None, sa_type=EmailAddress, index=True)
    crm: str  # the connection name of the CRM (or source) the step was about
    crm_id: str | None = Field(default=None, index=True)
    operation: str
    payload: bytes | None = Field(default=None, sa_type=LargeBinary)
    answer: str | None = Field(default=None, sa_type=Text)
    run_id: int | None = None


class AlertStateRow(LedgerModel, table=True):
    """Whether one alert condition holds (``key``: trigger and pipeline), since when, and the
    figures last announced; a notice goes out only when ``active`` flips."""

    __tablename__ = "alert_state"

    key: str = Field(primary_key=True)
    trigger: str
    pipeline: str | None = None
    active: bool = Field(default=False, sa_column_kwargs={"default": False})
    since: datetime = Field(sa_type=UtcDateTime)
    figures: dict[str, Any] = Field(
        default_factory=_empty_dict,
        sa_type=JsonDocument,
        sa_column_kwargs={"default": _empty_dict},
    )
    notified_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


# --- API budgets (revision 0008) ------------------------------------------------------------


class ApiUsageRow(LedgerModel, table=True):
    """API calls closedloop made through one connection in one vendor day (``sync.budgets``).

    ``day`` is the vendor's calendar day (its own time zone; UTC for Salesforce's rolling
    allocation). Every run adds its calls, so the count holds across processes and replicas;
    ``vendor_used`` / ``allocation`` keep the vendor's own figures where it reports them.
    """

    __tablename__ = "api_usage"
    __table_args__ = (UniqueConstraint("connection", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    connection: str
    day: str
    calls: int = 0
    vendor_used: int | None = None
    allocation: int | None = None
    updated_at: datetime = Field(
        default_factory=utcnow, sa_type=UtcDateTime, sa_column_kwargs={"default": utcnow}
    )


# --- wake-ups (revision 0012) -----------------------------------------------------------------


class WakeupRow(LedgerModel, table=True):
    """How often touches of one source were stored by a webhook or an import (``sync.wakeups``)."""

    __tablename__ = "wakeup"

    source: str = Field(primary_key=True)
    generation: int = Field(sa_type=BigInteger)
    woken_at: datetime = Field(sa_type=UtcDateTime)


# Every plain text column stores no control characters, alike on SQLite and PostgreSQL
# (``sync.ledger.types``: one-line columns, multi-line ones, JSON documents).
guard_text_columns(LEDGER_METADATA)
