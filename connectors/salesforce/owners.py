"""Owners of the Leads closedloop creates, and email opt-outs (mapping ``people.owner``,
``opt_out``).

Owners (docs/vendor-behaviour.md, "Assignment Rule header"): the REST API applies the org's
active assignment rule to Leads created or updated when a request carries no
``Sforce-Auto-Assign`` header (it defaults to TRUE), ``FALSE`` keeps the owner given,
an AssignmentRule Id runs that rule. A Composite subrequest carries the header in its own
``httpHeaders``. So:

- ``assignment_rule: active`` sends ``TRUE`` on the creates, an Id sends that Id;
- ``user`` / ``queue`` set ``OwnerId`` and send ``FALSE`` (an active rule would reassign them);
- updates closedloop makes (opt-outs, write-backs) send ``FALSE``: they must never reassign a
  Lead through the rule.

``check_owner`` verifies the rule (``AssignmentRule``: a Lead rule, active when "active"), the
User (active) or the queue (``Group`` of type Queue that holds Leads, ``QueueSobject``) exists.

Opt-outs: ``opt_out`` reads ``HasOptedOutOfEmail`` of the people's Leads and Contacts (one
Composite request of ``Id IN`` queries) and sets it to true on those that have it false
(sObject Collections updates, 1,000 per call); it never writes false, so nobody is opted back in,
and a person already opted out is left alone (``changed`` False).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.base import CheckResult, OptOutResult, Person, PersonKind
from connectors.errors import ClosedloopError
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.collections import Write, query_rows, write_records
from connectors.salesforce.identity import in_list_queries, soql_string

__all__ = [
    "AUTO_ASSIGN",
    "check_owner",
    "opt_out",
]

AUTO_ASSIGN = "Sforce-Auto-Assign"
OPT_OUT_FIELD = "HasOptedOutOfEmail"


def _where(statement: str, value: str) -> str:
    """``statement`` ending in ``=`` with ``value`` as a quoted SOQL literal."""
    return statement + soql_string(value)


def _short(record_id: str) -> str:
    return record_id[:15]


def check_owner(client: SalesforceClient, kind: str, value: str) -> CheckResult:
    """Whether the owner a mapping names exists: ``kind`` is assignment_rule, user or queue."""
    name = "lead owner"
    try:
        if kind == "assignment_rule":
            return _check_rule(client, value)
        if kind == "user":
            rows = query_rows(
                client, [_where("SELECT Id, Name, IsActive FROM User WHERE Id = ", value)]
            )
            if not rows:
                return CheckResult(
                    name,
                    False,
                    f"no User {value}",
                    "set people.owner.user to an active User's Id (005...)",
                )
            if not rows[0].get("IsActive"):
                return CheckResult(
                    name,
                    False,
                    f"User {value} ({rows[0].get('Name')}) is inactive",
                    "activate the User or name an active one",
                )
            return CheckResult(name, True, f"User {rows[0].get('Name')} ({value})")
        rows = query_rows(
            client,
            [
                _where("SELECT Id, Name FROM Group WHERE Type = 'Queue' AND Id = ", value),
                _where(
                    "SELECT QueueId FROM QueueSobject WHERE SobjectType = 'Lead' AND QueueId = ",
                    value,
                ),
            ],
        )
        queue = next((r for r in rows if "Name" in r), None)
        if queue is None:
            return CheckResult(
                name,
                False,
                f"no queue {value}",
                "set people.owner.queue to a queue's Id (Setup > Queues; 00G...)",
            )
        if not any("QueueId" in r for r in rows):
            return CheckResult(
                name,
                False,
                f"queue {queue.get('Name')} ({value}) does not hold Leads",
                "add Lead to the queue's Supported Objects (Setup > Queues)",
            )
        return CheckResult(name, True, f"queue {queue.get('Name')} ({value}) holds Leads")
    except ClosedloopError as exc:
        return CheckResult(name, False, str(exc), "give the integration user View Setup")


def _check_rule(client: SalesforceClient, value: str) -> CheckResult:
    name = "lead assignment rule"
    if value.lower() == "active":
        rows = query_rows(
            client,
            ["SELECT Id, Name FROM AssignmentRule WHERE SobjectType = 'Lead' AND Active = true"],
        )
        if not rows:
            return CheckResult(
                name,
                False,
                "the org has no active Lead assignment rule",
                "activate one (Setup > Lead Assignment Rules) or set people.owner.user / queue",
            )
        return CheckResult(name, True, f"active rule {rows[0].get('Name')} ({rows[0].get('Id')})")
    rows = query_rows(
        client,
        [
            _where(
                "SELECT Id, Name, Active FROM AssignmentRule WHERE SobjectType = 'Lead' AND Id = ",
                value,
            )
        ],
    )
    if not rows:
        return CheckResult(
            name,
            False,
            f"no Lead assignment rule {value}",
            "set people.owner.assignment_rule to a Lead rule's Id (01Q...) or 'active'",
        )
    state = "active" if rows[0].get("Active") else "inactive (it still runs when named)"
    return CheckResult(name, True, f"rule {rows[0].get('Name')} ({value}), {state}")


def opt_out(
    client: SalesforceClient, people: Sequence[Person], max_chars: int
) -> list[OptOutResult]:
    """Set ``HasOptedOutOfEmail`` on each person's Lead or Contact unless already set."""
    by_id: dict[str, Person] = {}
    for person in people:
        if person.external_id:
            by_id[_short(person.external_id)] = person
    queries: list[str] = []
    for sobject, kind in (("Lead", PersonKind.LEAD), ("Contact", PersonKind.CONTACT)):
        ids = [p.external_id for p in by_id.values() if p.kind is kind]
        prefix = f"SELECT Id, {OPT_OUT_FIELD} FROM {sobject} WHERE Id IN ("  # noqa: S608
        queries += in_list_queries(prefix, ids, max_chars)
    current: dict[str, Any] = {}
    for row in query_rows(client, queries) if queries else []:
        current[_short(str(row.get("Id")))] = row.get(OPT_OUT_FIELD)
    results: dict[str, OptOutResult] = {}
    writes: list[Write] = []
    for short, person in by_id.items():
        email = (person.email or "").lower()
        if short not in current:
            results[short] = OptOutResult(
                email,
                False,
                error_code="ENTITY_IS_DELETED",
                error_message=f"Salesforce has no live record {person.external_id}",
            )
        elif current[short]:
            results[short] = OptOutResult(email, True, changed=False)
        else:
            sobject = "Contact" if person.kind is PersonKind.CONTACT else "Lead"
            writes.append(
                Write("update", sobject, short, {"Id": person.external_id, OPT_OUT_FIELD: True})
            )
    if writes:
        # One object per run of writes: write_records packs consecutive writes of one object
        # into collections of 200 (mixed, every Lead/Contact switch would start a new one).
        writes.sort(key=lambda w: w.sobject)
        outcome = write_records(client, writes)
        refused = {r.key: r for r in [*outcome.rejected, *outcome.deferred]}
        for write in writes:
            email = (by_id[write.key].email or "").lower()
            failure = refused.get(write.key)
            if failure is None:
                results[write.key] = OptOutResult(email, True, changed=True)
            else:
                results[write.key] = OptOutResult(
                    email, False, error_code=failure.code, error_message=str(failure)
                )
    return [results[s] for s in by_id if s in results]
