"""Lead status and deal stage changes read from Salesforce field history, at their exact times.

Polling ``Lead.Status`` shows one value per pull; the org's field history (``LeadHistory``,
``OpportunityFieldHistory``) keeps every change with its old value and the moment it was made,
so a first sync already has each lead's "Open at t0, MQL at t1, Working at t2" sequence. The
``status_history`` stream reads it incrementally on ``CreatedDate`` (history rows are never
edited, so ``query`` is enough) and yields ``StatusChange`` and ``ReasonChange`` records:

====================================  ==================  ==============================
history row (``Field``)               disposition field   notes
====================================  ==================  ==============================
LeadHistory ``Status``                ``status``
LeadHistory ``Owner``                 ``owner_id``        the id row; the names row is
                                                          skipped (an owner change writes
                                                          both)
LeadHistory ``<reason field>``        (a reason)          a ``ReasonChange`` at the row's
                                                          time; the dispositions pipeline
                                                          gives it to the decision it
                                                          explains
OpportunityFieldHistory ``StageName``  ``stage``
====================================  ==================  ==============================

One save writes one row per tracked field it changed, all with the save's ``CreatedDate``; the
timestamp is precise to the second (Field History Tracking, "Considerations":
https://developer.salesforce.com/docs/atlas.en-us.securityImplGuide.meta/securityImplGuide/tracking_field_history.htm).
A reason filled in by a later save is a later row, which is why reasons are not matched to a
status row here but by the dispositions pipeline, across pages and runs
(``sync.pipelines.dispositions``).

History only holds fields whose tracking is on (Setup > Object Manager > Lead > Fields &
Relationships > Set History Tracking) and only from the day it was turned on; the dispositions
pipeline keeps polling current values for the rest. The cursor works as every change pull's
(``connectors.lagwindow``): a row can commit after its ``CreatedDate``, so each pull re-reads
``reread_lag_seconds`` before the cursor and drops the row ids it already yielded.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from connectors.base import CheckResult, Cursor, Page, ReasonChange, StatusChange
from connectors.errors import ClosedloopError, ConfigError
from connectors.lagwindow import SeenVersions
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.settings import SalesforceSettings
from connectors.salesforce.streams import parse_sf_datetime, sf_datetime

__all__ = [
    "HISTORY_STREAM",
    "HistorySpec",
    "check_history",
    "history_soql",
    "history_specs",
    "pull_history",
]

HISTORY_STREAM = "status_history"
HISTORY_KEY = "CreatedDate"
PAGE_SIZE = 2_000
# A user or queue id (15 or 18 characters): owner history writes a names row and an ids row.
_OWNER_ID = re.compile(r"^(005|00G)[0-9A-Za-z]{12}([0-9A-Za-z]{3})?$")


@dataclass(frozen=True)
class HistorySpec:
    """One history object: its parent, the tracked fields read and what each becomes."""

    sobject: str
    parent: str
    parent_field: str
    object_type: str
    fields: Mapping[str, str]  # history ``Field`` -> disposition field
    reason_fields: tuple[str, ...] = ()
    parent_values: tuple[str, ...] = ("OwnerId",)


def history_specs(settings: SalesforceSettings) -> tuple[HistorySpec, ...]:
    """The history objects the ``status_history`` stream reads."""
    reasons = tuple(dict.fromkeys(settings.lead_reason_fields))
    return (
        HistorySpec(
            "LeadHistory", "Lead", "LeadId", "lead", {"Status": "status", "Owner": "owner_id"},
            reasons, ("OwnerId", "Email"),
        ),
        HistorySpec("OpportunityFieldHistory", "Opportunity", "OpportunityId", "opportunity",
                    {"StageName": "stage"}),
    )  # fmt: skip


def history_soql(spec: HistorySpec, lower: datetime | None, until: datetime) -> str:
    """The SOQL reading ``spec``'s rows created in [lower, until], in time order."""
    wanted = ", ".join(f"'{name}'" for name in (*spec.fields, *spec.reason_fields))
    parents = ", ".join(f"{spec.parent}.{name}" for name in spec.parent_values)
    where = [f"Field IN ({wanted})", f"{HISTORY_KEY} <= {sf_datetime(until)}"]
    if lower is not None:
        where.insert(1, f"{HISTORY_KEY} >= {sf_datetime(lower)}")
    # Names come from our own specs and the validated settings; values are formatted dates.
    return (
        f"SELECT Id, {spec.parent_field}, Field, OldValue, NewValue, {HISTORY_KEY}, "  # noqa: S608
        f"{parents} FROM {spec.sobject} WHERE {' AND '.join(where)} "
        f"ORDER BY {HISTORY_KEY}, Id"
    )


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _changes(
    source: str, spec: HistorySpec, rows: Sequence[Mapping[str, Any]]
) -> list[StatusChange | ReasonChange]:
    """The changes of rows that share one ``CreatedDate``; a reason field's row is the value
    written to it (a cleared reason is no reason and is left out)."""
    out: list[StatusChange | ReasonChange] = []
    for row in rows:
        name = str(row.get("Field"))
        old, new = _text(row.get("OldValue")), _text(row.get("NewValue"))
        object_id = str(row.get(spec.parent_field))
        changed_at = parse_sf_datetime(row.get(HISTORY_KEY))
        assert changed_at is not None
        if name in spec.reason_fields:
            if new is not None and new.strip():
                out.append(ReasonChange(source, spec.object_type, object_id, name, new, changed_at))
            continue
        field = spec.fields.get(name)
        if field is None:
            continue
        if field == "owner_id" and not all(_OWNER_ID.match(v) for v in (old, new) if v):
            continue  # the user-names row of an owner change
        related = row.get(spec.parent)
        parent: Mapping[str, Any] = related if isinstance(related, Mapping) else {}
        out.append(
            StatusChange(
                source=source, object_type=spec.object_type, object_id=object_id, field=field,
                old_value=old, new_value=new, changed_at=changed_at,
                owner_id=new if field == "owner_id" else _text(parent.get("OwnerId")),
                email=_text(parent.get("Email")),
            )
        )  # fmt: skip
    return out


def pull_history(
    client: SalesforceClient, source: str, cursor: Cursor, until: datetime
) -> Iterator[Page[StatusChange | ReasonChange]]:
    """Pages of status, owner and stage changes and reasons written after ``cursor``, up to
    ``until``."""
    settings = client.settings
    lag = timedelta(seconds=settings.reread_lag_seconds)
    start = parse_sf_datetime(cursor.value) if cursor.value is not None else None
    if cursor.value is not None and start is None:
        raise ConfigError(f"cursor value {cursor.value!r} is not a Salesforce datetime")
    cursor_ms = _ms(start) if start is not None else None
    seen = SeenVersions(cursor.boundary_keys, cursor_ms, int(lag.total_seconds() * 1000))
    lower = start - lag if start is not None else None
    specs = history_specs(settings)
    merged = heapq.merge(
        *(_rows(client, spec, lower, until) for spec in specs), key=lambda item: item[0]
    )
    batch: list[StatusChange | ReasonChange] = []
    group: list[Mapping[str, Any]] = []
    group_key: tuple[datetime, HistorySpec] | None = None
    last: datetime | None = None
    for at, spec, row in merged:
        if not seen.first_sight(str(row["Id"]), _ms(at)):
            continue
        if group_key is not None and group_key != (at, spec):
            batch.extend(_changes(source, group_key[1], group))
            group = []
            if len(batch) >= PAGE_SIZE and at != group_key[0]:
                yield Page(batch, _cursor(group_key[0], seen))
                batch = []
        group_key = (at, spec)
        group.append(row)
        last = at
    if group_key is not None:
        batch.extend(_changes(source, group_key[1], group))
    if last is not None:
        yield Page(batch, _cursor(last, seen))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _cursor(at: datetime, seen: SeenVersions) -> Cursor:
    return Cursor(sf_datetime(at), seen.keys_until(_ms(at)))


def _rows(
    client: SalesforceClient, spec: HistorySpec, lower: datetime | None, until: datetime
) -> Iterator[tuple[datetime, HistorySpec, Mapping[str, Any]]]:
    for page in client.query_pages(history_soql(spec, lower, until), include_deleted=False):
        for row in page.get("records") or []:
            at = parse_sf_datetime(row.get(HISTORY_KEY))
            assert at is not None
            yield at, spec, row


_TRACKING_REMEDY = (
    "turn on field history tracking for Lead Status (Setup > Object Manager > Lead > Fields & "
    "Relationships > Set History Tracking: Enable Lead History, tick Lead Status and Lead Owner) "
    "and for Opportunity Stage the same way; history starts on the day it is turned on"
)


def check_history(client: SalesforceClient) -> CheckResult:
    """Whether Lead Status changes can be read from field history (exact transition times)."""
    name = "lead status history"
    fallback = "status times come from polling only (SLA and time in stage start empty)"
    try:
        described = client.call("GET", "sobjects/LeadHistory/describe", budgeted=False)
        if not (isinstance(described, Mapping) and described.get("queryable")):
            return CheckResult(
                name, False, f"LeadHistory is not queryable: {fallback}", _TRACKING_REMEDY
            )
        soql = "SELECT Id FROM LeadHistory WHERE Field = 'Status' LIMIT 1"
        found = client.call("GET", "query", params={"q": soql}, budgeted=False)
    except ClosedloopError as exc:
        return CheckResult(name, False, f"{exc}: {fallback}", _TRACKING_REMEDY)
    if not (isinstance(found, Mapping) and found.get("records")):
        # A new org with tracking on has no rows yet either: say so, but do not fail on it.
        detail = (
            "LeadHistory holds no Lead Status changes yet; if Status is not history-tracked, "
            f"{fallback}"
        )
        return CheckResult(name, True, detail, _TRACKING_REMEDY)
    return CheckResult(name, True, "Lead Status changes are read from LeadHistory")
