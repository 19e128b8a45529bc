"""Lead status, lifecycle stage, owner and deal stage changes from HubSpot property history.

HubSpot keeps every value a property has had. A batch read asking for
``propertiesWithHistory`` answers ``{"propertiesWithHistory": {name: [{value, timestamp,
sourceType}, ...]}}``, newest first, for each record; it takes at most 50 records per call (the
usual batch read takes 100; HubSpot answers more with "The maximum number of inputs supported
in a batch request for property histories is 50").

History has no "changed since" query of its own, so the history streams search the records
changed in the cursor's range (``WindowedSearch``, the same cursor as the other change
streams), then read the history of those records. Each value after the first becomes a
``StatusChange`` (old -> new at the value's timestamp); the first is the value the record was
created with (old value None). Re-reading a record's history yields the same changes again,
which the ledger's unique key on (crm, object, field, time, new value) ignores.

A contact's reason properties (the mapping's ``lifecycle.reason_field`` / ``reason_fields``,
given by ``include_reason_fields``) are read with history too: each non-empty value becomes a
``ReasonChange`` at its own timestamp, and the dispositions pipeline gives it to the
disqualification or recycle it explains, also when a rep filled it in after the status
(``sync.pipelines.dispositions``). Each property's history entry carries the time that property
was updated (``ValueWithTimestamp.timestamp`` in HubSpot's CRM OpenAPI specs); properties set in
one update share that update's time (assumed: HubSpot documents no finer grain).

=====================  ======================  ============================================
stream                 object                  properties -> disposition fields
=====================  ======================  ============================================
people_history         contacts                hs_lead_status -> status, lifecyclestage ->
                                               lifecycle_stage, hubspot_owner_id -> owner_id
opportunity_history    deals                   dealstage -> stage, hubspot_owner_id ->
                                               owner_id
=====================  ======================  ============================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from connectors.base import ReasonChange, StatusChange
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.identity import parse_hubspot_time

__all__ = [
    "DEAL_HISTORY",
    "HISTORY_BATCH_LIMIT",
    "HISTORY_STREAMS",
    "PERSON_HISTORY",
    "history_changes",
    "read_history",
]

HISTORY_BATCH_LIMIT = 50
PERSON_HISTORY = {
    "hs_lead_status": "status",
    "lifecyclestage": "lifecycle_stage",
    "hubspot_owner_id": "owner_id",
}
DEAL_HISTORY = {"dealstage": "stage", "hubspot_owner_id": "owner_id"}
# stream -> (object type, disposition object type, properties read with history).
HISTORY_STREAMS: dict[str, tuple[str, str, Mapping[str, str]]] = {
    "people_history": ("contacts", "contact", PERSON_HISTORY),
    "opportunity_history": ("deals", "opportunity", DEAL_HISTORY),
}


def history_changes(
    source: str,
    object_type: str,
    record: Mapping[str, Any],
    properties: Mapping[str, str],
    reason_properties: Sequence[str] = (),
) -> list[StatusChange | ReasonChange]:
    """The changes one record's ``propertiesWithHistory`` shows, oldest first, and the values
    its ``reason_properties`` were given."""
    props = record.get("properties") or {}
    history = record.get("propertiesWithHistory") or {}
    email = (props.get("email") or "").lower() or None
    owner = props.get("hubspot_owner_id") or None
    out: list[StatusChange | ReasonChange] = []
    for name, field in properties.items():
        entries = _entries(history.get(name))
        previous: str | None = None
        for at, value in entries:
            if value == previous:
                continue  # set again to the value it had: no transition
            if not (field == "owner_id" and previous is None):  # the first owner is no change
                out.append(
                    StatusChange(
                        source=source, object_type=object_type, object_id=str(record["id"]),
                        field=field, old_value=previous, new_value=value, changed_at=at,
                        owner_id=value if field == "owner_id" else owner, email=email,
                    )
                )  # fmt: skip
            previous = value
    for name in reason_properties:
        for at, value in _entries(history.get(name)):
            if value is not None and value.strip():
                out.append(ReasonChange(source, object_type, str(record["id"]), name, value, at))
    return out


def _entries(history: Any) -> list[tuple[datetime, str | None]]:
    """One property's history as (time, value or None), oldest first (HubSpot lists them
    newest first)."""
    entries: list[tuple[datetime, str | None]] = []
    for entry in history or []:
        at = parse_hubspot_time(entry.get("timestamp"))
        if at is not None:
            entries.append((at, str(entry.get("value") or "") or None))
    entries.sort(key=lambda item: item[0])
    return entries


def read_history(
    client: HubSpotClient,
    object_type: str,
    ids: Sequence[str],
    properties: Iterable[str],
) -> list[dict[str, Any]]:
    """The records ``ids`` with the history of ``properties``, 50 per batch read."""
    api = client.api("objects_batch")
    names = list(properties)
    wanted = [*names, "email"] if object_type == "contacts" else names
    records: list[dict[str, Any]] = []
    for start in range(0, len(ids), HISTORY_BATCH_LIMIT):
        chunk = ids[start : start + HISTORY_BATCH_LIMIT]
        body = {
            "inputs": [{"id": record_id} for record_id in chunk],
            "properties": wanted,
            "propertiesWithHistory": names,
        }
        answer = client.call(f"{object_type} history read", api.read, object_type, body,
                             idempotent=True)  # fmt: skip
        records.extend(answer.get("results") or [])
    return records
