"""Person fields of existing contacts: read them with their change times, update them.

The HubSpot side of the mapping's ``people.fields`` rules (``sync.mapping.people``), in batches:

- ``read_fields``: a contacts batch read of the mapped properties, 100 per call
  (``POST /crm/v3/objects/contacts/batch/read``). When the mapping has two-way fields, the read
  asks for them in ``propertiesWithHistory`` too, whose entries carry the time each value was
  set, newest first; HubSpot then takes at most 50 inputs per call (``history``). The newest
  entry's time is when the field last changed; without one, the contact's ``lastmodifieddate``.
  (https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/batch/post-crm-v3-objects-contacts-batch-read)
- ``update_fields``: batch update, 100 contacts per call
  (``POST /crm/v3/objects/contacts/batch/update``,
  https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/batch/post-crm-v3-objects-contacts-batch-update).
  Setting the same values twice is harmless, so a timed-out call may be sent again. A contact
  HubSpot refuses (a property value it does not accept) comes back keyed by e-mail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from connectors.base import PersonSnapshot, PersonUpdate
from connectors.errors import RecordRejected
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.history import HISTORY_BATCH_LIMIT
from connectors.hubspot.identity import BATCH_LIMIT, CONTACT_MODIFIED, parse_hubspot_time
from connectors.hubspot.writeback import PropertyWriter

__all__ = ["read_fields", "update_fields"]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def read_fields(
    client: HubSpotClient, ids: Sequence[str], fields: Sequence[str], history: Sequence[str]
) -> dict[str, PersonSnapshot]:
    """The current ``fields`` of contacts ``ids``, with the history time of each ``history``
    field; contacts HubSpot lacks are omitted."""
    api = client.api("objects_batch")
    names = list(dict.fromkeys(fields))
    tracked = [f for f in dict.fromkeys(history) if f in names]
    size = HISTORY_BATCH_LIMIT if tracked else BATCH_LIMIT
    out: dict[str, PersonSnapshot] = {}
    wanted = list(dict.fromkeys(ids))
    for start in range(0, len(wanted), size):
        chunk = wanted[start : start + size]
        body: dict[str, Any] = {
            "inputs": [{"id": record_id} for record_id in chunk],
            "properties": list(dict.fromkeys([*names, CONTACT_MODIFIED])),
        }
        if tracked:
            body["propertiesWithHistory"] = tracked
        answer = client.call("contacts fields read", api.read, "contacts", body, idempotent=True)
        for record in answer.get("results") or []:
            props: Mapping[str, Any] = record.get("properties") or {}
            changed: dict[str, datetime] = {}
            for name, entries in (record.get("propertiesWithHistory") or {}).items():
                times = [parse_hubspot_time(e.get("timestamp")) for e in entries or []]
                known = [t for t in times if t is not None]
                if known:
                    changed[str(name)] = max(known)
            record_id = str(record.get("id"))
            out[record_id] = PersonSnapshot(
                record_id,
                {name: props.get(name) for name in names},
                changed,
                parse_hubspot_time(props.get(CONTACT_MODIFIED) or record.get("updatedAt")),
            )
    return out


def update_fields(
    client: HubSpotClient, updates: Sequence[PersonUpdate]
) -> tuple[int, list[RecordRejected], int]:
    """Write each update's values on its contact, 100 per call: (contacts written, refusals
    keyed by e-mail, calls)."""
    wanted: dict[str, dict[str, str]] = {}
    emails: dict[str, str] = {}
    for update in updates:
        record_id = update.person.external_id
        values = {k: _text(v) for k, v in update.values.items() if k != "email"}
        if not record_id or not values:
            continue
        wanted.setdefault(record_id, {}).update(values)
        emails[record_id] = (update.person.email or record_id).strip().lower()
    if not wanted:
        return 0, [], 0
    written, refused, calls = PropertyWriter(client, "contacts").update(wanted)
    keyed = [
        RecordRejected(str(r), code=r.code, key=emails.get(r.key or "", r.key)) for r in refused
    ]
    return written, keyed, calls
