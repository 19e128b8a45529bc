"""SLA breach flags on Salesforce Leads and Contacts: a custom checkbox (and optional time).

``FlagWriter(client, field, time_field)`` reads the records that carry the flag now
(``WHERE <field> = true``: one query per object, 2,000 rows a page) and, in the same Composite
call, which of the wanted Leads Salesforce has converted since the caller last looked; then
writes only the difference with the wanted flags: set on newly breached people, the time
corrected where it moved, cleared (false, time emptied) where the breach no longer holds.
Updates go through sObject Collections, five collections of 200 per counted call; running it
again with the same wanted flags makes the read call only.

Converted leads: Salesforce refuses any update to a converted Lead (CANNOT_UPDATE_CONVERTED_LEAD,
https://help.salesforce.com/s/articleView?id=000384333&type=1) and the person is the Contact it
became, so a wanted flag on a converted Lead goes on its ConvertedContactId (or nowhere when it
has none), a converted Lead's own old flag is neither read nor cleared, and a Lead converted
between the read and the write comes back as a refusal with Salesforce's code (a dead letter
the next run settles on the Contact), never an exception.

``check_flag_fields`` tells whether both objects have the fields, of the right type and
editable, and names the exact field to create when not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.base import CheckResult
from connectors.errors import ClosedloopError, RecordRejected
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.collections import Write, query_each, write_records
from connectors.salesforce.identity import in_list_queries
from connectors.salesforce.members import short_id
from connectors.salesforce.streams import parse_sf_datetime, sf_datetime

__all__ = [
    "FLAG_OBJECTS",
    "FlagPlan",
    "FlagSync",
    "FlagWriter",
    "check_flag_fields",
    "on_contacts",
    "plan_flags",
]

FLAG_OBJECTS = ("Lead", "Contact")
# (sobject, record id) -> breach time (None: flag without a time)
Flags = Mapping[tuple[str, str], datetime | None]
# Which of the wanted Leads are converted, and to which Contact (ids are quoted by soql_string).
_CONVERTED = "SELECT Id, ConvertedContactId FROM Lead WHERE IsConverted = true AND Id IN ("


@dataclass
class FlagPlan:
    """Records to flag, to re-time (flagged at another time) and to clear."""

    set: list[tuple[str, str, datetime | None]] = field(default_factory=list)
    retime: list[tuple[str, str, datetime | None]] = field(default_factory=list)
    clear: list[tuple[str, str]] = field(default_factory=list)
    unchanged: int = 0

    @property
    def changes(self) -> int:
        """How many records the plan writes."""
        return len(self.set) + len(self.retime) + len(self.clear)


@dataclass
class FlagSync:
    """What ``FlagWriter.sync`` did (or, dry, would do)."""

    plan: FlagPlan
    flagged_before: int = 0
    written: int = 0
    rejected: list[RecordRejected] = field(default_factory=list)
    # Records still row-locked after the retries: written by the next run, not dead letters.
    deferred: list[RecordRejected] = field(default_factory=list)
    read_calls: int = 0
    write_calls: int = 0


def _same_time(a: datetime | None, b: datetime | None) -> bool:
    if a is None or b is None:
        return a is b
    return sf_datetime(a) == sf_datetime(b)  # Salesforce keeps milliseconds


def on_contacts(wanted: Flags, converted: Mapping[str, str | None]) -> Flags:
    """``wanted`` with each converted Lead's flag moved to its Contact (``converted``: the
    15-character Lead id -> Contact id or None); a Contact wanted in its own right keeps its
    own time."""
    moved: dict[tuple[str, str], datetime | None] = {}
    for (sobject, record_id), at in wanted.items():
        if sobject == "Lead" and short_id(record_id) in converted:
            contact = converted[short_id(record_id)]
            if contact is not None and ("Contact", contact) not in wanted:
                moved.setdefault(("Contact", contact), at)
            continue
        moved[(sobject, record_id)] = at
    return moved


def plan_flags(wanted: Flags, flagged: Flags, *, with_time: bool) -> FlagPlan:
    """Set what ``wanted`` has and ``flagged`` lacks (or holds at another time); clear the rest."""
    plan = FlagPlan()
    for (sobject, record_id), at in sorted(wanted.items()):
        if (sobject, record_id) not in flagged:
            plan.set.append((sobject, record_id, at))
        elif with_time and not _same_time(flagged[(sobject, record_id)], at):
            plan.retime.append((sobject, record_id, at))
        else:
            plan.unchanged += 1
    plan.clear = sorted(key for key in flagged if key not in wanted)
    return plan


class FlagWriter:
    """The breach flag (``field``, optional ``time_field``) on Leads and Contacts of one org."""

    def __init__(self, client: SalesforceClient, field: str, time_field: str | None) -> None:
        self.client = client
        self.field = field
        self.time_field = time_field

    def read(
        self, leads: Iterable[str] = ()
    ) -> tuple[dict[tuple[str, str], datetime | None], dict[str, str | None]]:
        """(every unconverted Lead and every Contact whose flag is set now, with its time;
        converted Lead among ``leads`` -> its Contact id), five queries per Composite call."""
        columns = ", ".join(["Id", self.field, *([self.time_field] if self.time_field else [])])
        # Field names come from the validated config; no values are interpolated.
        where = f"{self.field} = true"
        flagged_queries = [
            ("Lead", f"SELECT {columns} FROM Lead WHERE {where} AND IsConverted = false"),  # noqa: S608
            ("Contact", f"SELECT {columns} FROM Contact WHERE {where}"),  # noqa: S608
        ]
        limit = self.client.settings.max_soql_chars
        converted_queries = in_list_queries(_CONVERTED, sorted(set(leads)), limit)
        rows = query_each(self.client, [q for _, q in flagged_queries] + converted_queries)
        found: dict[tuple[str, str], datetime | None] = {}
        for (sobject, _), answer in zip(flagged_queries, rows, strict=False):
            for row in answer:
                at = parse_sf_datetime(row.get(self.time_field)) if self.time_field else None
                found[(sobject, str(row["Id"]))] = at
        converted = {
            short_id(str(row["Id"])): (
                str(row["ConvertedContactId"]) if row.get("ConvertedContactId") else None
            )
            for answer in rows[len(flagged_queries) :]
            for row in answer
        }
        return found, converted

    def flagged(self) -> dict[tuple[str, str], datetime | None]:
        """Every unconverted Lead and every Contact whose flag is set now, with its time."""
        return self.read()[0]

    def sync(self, wanted: Flags, *, dry_run: bool = False) -> FlagSync:
        """Make the set of flagged records equal ``wanted`` (see the module docstring)."""
        before = self.client.api_calls
        leads = [record_id for sobject, record_id in wanted if sobject == "Lead"]
        flagged, converted = self.read(leads)
        wanted = on_contacts(wanted, converted)
        plan = plan_flags(wanted, flagged, with_time=self.time_field is not None)
        result = FlagSync(plan, flagged_before=len(flagged))
        result.read_calls = self.client.api_calls - before
        if dry_run or not plan.changes:
            return result
        writes = []
        for sobject, record_id, at in plan.set + plan.retime:
            values: dict[str, Any] = {"Id": record_id, self.field: True}
            if self.time_field:
                values[self.time_field] = sf_datetime(at) if at is not None else None
            writes.append(Write("update", sobject, record_id, values))
        for sobject, record_id in plan.clear:
            values = {"Id": record_id, self.field: False}
            if self.time_field:
                values[self.time_field] = None
            writes.append(Write("update", sobject, record_id, values))
        writes.sort(key=lambda w: w.sobject)  # one collection per object where possible
        outcome = write_records(self.client, writes)
        result.written = outcome.written["update"]
        result.rejected = outcome.rejected
        result.deferred = outcome.deferred
        result.write_calls = outcome.calls
        return result


def _field_check(
    described: Mapping[str, Any], sobject: str, name: str, kind: str, label: str
) -> str | None:
    """A problem with ``sobject.name`` (missing, wrong type, read-only), or None."""
    found = next(
        (f for f in described.get("fields", []) if str(f.get("name")).lower() == name.lower()),
        None,
    )
    if found is None:
        return f"{sobject} has no field {name}"
    if found.get("type") != kind:
        return f"{sobject}.{name} is of type {found.get('type')}, not {label}"
    if not found.get("updateable"):
        return f"{sobject}.{name} is read-only for the integration user"
    return None


def check_flag_fields(
    client: SalesforceClient, field: str, time_field: str | None
) -> list[CheckResult]:
    """Whether Lead and Contact have the breach flag fields, with the exact fields to create."""
    wanted = [(field, "boolean", "Checkbox", "Checkbox (default unchecked)")]
    if time_field:
        wanted.append((time_field, "datetime", "Date/Time", "Date/Time"))
    results = []
    for sobject in FLAG_OBJECTS:
        try:
            described = client.call("GET", f"sobjects/{sobject}/describe", budgeted=False)
        except ClosedloopError as exc:
            results.append(CheckResult(f"sla flag on {sobject}", False, str(exc), ""))
            continue
        problems, remedies = [], []
        for name, kind, label, spec in wanted:
            problem = _field_check(described, sobject, name, kind, label)
            if problem is not None:
                problems.append(problem)
                remedies.append(
                    f"Create a {spec} field {name} on {sobject} (Setup > Object Manager > "
                    f"{sobject} > Fields & Relationships > New) and give the integration user "
                    "edit access to it"
                )
        if problems:
            results.append(
                CheckResult(
                    f"sla flag on {sobject}", False, "; ".join(problems), "; ".join(remedies)
                )
            )
        else:
            names = ", ".join(w[0] for w in wanted)
            results.append(
                CheckResult(f"sla flag on {sobject}", True, f"{sobject}.{names} editable")
            )
    return results
