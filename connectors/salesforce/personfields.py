"""Person fields of existing Leads and Contacts: read them with their change times, update them.

The mapping's ``people.fields`` rules decide per field whether closedloop writes (see
``sync.mapping.people``); this module is the Salesforce side of it, always in batches:

- ``read_fields``: ``SELECT Id, LastModifiedDate, <fields> FROM Lead|Contact WHERE Id IN (...)``
  lists packed to the SOQL length limit, five queries per Composite request. Fields the object
  lacks (Company on a Contact) are left out: their values are not read and never written.
- field change times: ``LeadHistory`` / ``ContactHistory`` rows of the two-way fields
  (``Field IN (...) AND LeadId IN (...)``), in the same Composite requests. History holds only
  fields whose tracking is on (Setup > Object Manager > Lead > Fields & Relationships > Set
  History Tracking), and only from when it was turned on; a field with no row falls back to
  the record's ``LastModifiedDate`` (Field History Tracking:
  https://help.salesforce.com/s/articleView?id=sf.tracking_field_history.htm).
- ``update_fields``: sObject Collections updates (``PATCH composite/sobjects``, 200 records a
  collection, ``allOrNone`` false) five to a Composite request, so N people cost
  ceil(N / 1,000) counted calls
  (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm).
  Updates carry ``Sforce-Auto-Assign: FALSE`` (``collections.write_records``): a field write
  never runs the org's assignment rule. Refusals (a validation rule, a value too long) come
  back per record, keyed by e-mail; a row still locked after the retries is ``retryable``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from connectors.base import PersonKind, PersonSnapshot, PersonUpdate
from connectors.errors import ConfigError, RecordRejected
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.collections import Write, query_each, write_records
from connectors.salesforce.identity import in_list_queries
from connectors.salesforce.streams import parse_sf_datetime

__all__ = ["HISTORY", "read_fields", "update_fields"]

# Person object -> (its field history object, the parent id field of a history row).
HISTORY = {"Lead": ("LeadHistory", "LeadId"), "Contact": ("ContactHistory", "ContactId")}


def _sobject(kind: PersonKind) -> str:
    return "Contact" if kind is PersonKind.CONTACT else "Lead"


def read_fields(
    client: SalesforceClient,
    people: Mapping[str, PersonKind],
    fields: Sequence[str],
    history: Sequence[str],
    *,
    known: Mapping[str, set[str]],
    max_chars: int,
) -> dict[str, PersonSnapshot]:
    """The current ``fields`` of ``people`` (id -> kind), with history times of ``history``
    fields; ``known``: the fields each object has. People Salesforce lacks are omitted."""
    queries: list[tuple[str, str, str]] = []  # (what, sobject, SOQL)
    for sobject in ("Lead", "Contact"):
        ids = [i for i, kind in people.items() if _sobject(kind) == sobject]
        if not ids:
            continue
        names = [f for f in dict.fromkeys(fields) if f in known.get(sobject, set())]
        columns = ", ".join(dict.fromkeys(["Id", "LastModifiedDate", *names]))
        prefix = f"SELECT {columns} FROM {sobject} WHERE Id IN ("  # noqa: S608 - described names
        queries += [("row", sobject, q) for q in in_list_queries(prefix, ids, max_chars)]
        tracked = [f for f in dict.fromkeys(history) if f in names]
        if tracked:
            table, parent = HISTORY[sobject]
            wanted = ", ".join(f"'{name}'" for name in tracked)
            prefix = (
                f"SELECT {parent}, Field, CreatedDate FROM {table} "  # noqa: S608 - our names
                f"WHERE Field IN ({wanted}) AND {parent} IN ("
            )
            queries += [("history", sobject, q) for q in in_list_queries(prefix, ids, max_chars)]
    rows = _query(client, queries)
    values: dict[str, dict[str, Any]] = {}
    modified: dict[str, datetime | None] = {}
    changed: dict[str, dict[str, datetime]] = {}
    for (what, sobject, _), found in zip(queries, rows, strict=True):
        for row in found:
            if what == "row":
                record_id = str(row["Id"])
                names = [f for f in fields if f in known.get(sobject, set())]
                values[record_id] = {name: row.get(name) for name in names}
                modified[record_id] = parse_sf_datetime(row.get("LastModifiedDate"))
                continue
            parent = HISTORY[sobject][1]
            at = parse_sf_datetime(row.get("CreatedDate"))
            if at is None:
                continue
            times = changed.setdefault(str(row.get(parent)), {})
            name = str(row.get("Field"))
            if name not in times or at > times[name]:
                times[name] = at
    out: dict[str, PersonSnapshot] = {}
    for record_id, found_values in values.items():
        out[record_id] = PersonSnapshot(
            record_id, found_values, changed.get(record_id, {}), modified.get(record_id)
        )
    # An id read back in its 18-character form: answer under the id the caller gave too.
    for given in people:
        if given not in out:
            match = next((s for i, s in out.items() if i[:15] == given[:15]), None)
            if match is not None:
                out[given] = match
    return out


def _query(client: SalesforceClient, queries: Sequence[tuple[str, str, str]]) -> list[Any]:
    """The rows of each query; a history object the org does not offer (field history never
    turned on for it) reads as no rows, so its fields fall back to LastModifiedDate."""
    if not queries:
        return []
    try:
        return query_each(client, [q for _, _, q in queries])
    except ConfigError:
        if not any(what == "history" for what, _, _ in queries):
            raise
    rows = query_each(client, [q for what, _, q in queries if what == "row"])
    it = iter(rows)
    return [next(it) if what == "row" else [] for what, _, _ in queries]


def update_fields(
    client: SalesforceClient,
    updates: Sequence[PersonUpdate],
    writable: Mapping[str, set[str]],
) -> tuple[int, list[RecordRejected], int]:
    """Write each update's values on its Lead or Contact (only fields the object lets the
    integration user update, ``writable``): (records written, refusals by e-mail, calls)."""
    writes: list[Write] = []
    for update in sorted(updates, key=lambda u: _sobject(u.person.kind)):
        sobject = _sobject(update.person.kind)
        values = {k: v for k, v in update.values.items() if k in writable.get(sobject, set())}
        if not values or not update.person.external_id:
            continue
        key = (update.person.email or update.person.external_id).strip().lower()
        writes.append(Write("update", sobject, key, {"Id": update.person.external_id, **values}))
    if not writes:
        return 0, [], 0
    outcome = write_records(client, writes)
    refused = list(outcome.rejected)
    refused += [
        RecordRejected(str(r), code=r.code, key=r.key, retryable=True) for r in outcome.deferred
    ]
    return outcome.written["update"], refused, outcome.calls
