"""Person-field sync planning: which side's value wins, field by field, and why.

Rules (``people.fields.<CRM field>.rule``):

- ``prefer_crm_unless_blank``: the CRM keeps its value; closedloop only fills blanks.
- ``always_overwrite``: the side named by ``direction`` is overwritten whenever values differ.
- ``two_way_latest``: the side changed more recently wins. The CRM side's time is when that
  field last changed, from the CRM's field history where it keeps one (Salesforce
  LeadHistory / ContactHistory for fields with history tracking on, HubSpot property history),
  else the record's last modification (``Person.updated_at``); the source side's time is the
  source person's ``updated_at`` (Marketo's lead ``updatedAt``, a form's submission time, a
  file row's touch time). A tie or a missing time keeps both as they are.
- ``never``: documented as not synced; nothing is ever written.

A blank value never overwrites a non-blank one, under any rule: the failure this project exists
to prevent is a sync wiping good CRM data. Planning is pure: it returns decisions; the pipeline
writes them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from connectors.base import Person
from sync.mapping.conditions import Getter, compile_path, is_blank
from sync.mapping.templates import EMPTY_TOUCH
from sync.mapping.transforms import Transform, to_text

__all__ = [
    "STANDARD_ATTRIBUTES",
    "FieldDecision",
    "PersonFieldPlan",
    "PersonPlan",
    "compile_person_rule",
    "crm_value",
    "plan_person",
]

# CRM field -> the structured Person attribute a connector fills for it.
STANDARD_ATTRIBUTES: dict[str, dict[str, str]] = {
    "salesforce": {
        "Email": "email", "FirstName": "first_name", "LastName": "last_name",
        "Company": "company", "OwnerId": "owner_id", "Status": "status",
        "LeadSource": "lead_source", "AccountId": "account_id",
    },
    "hubspot": {
        "email": "email", "firstname": "first_name", "lastname": "last_name",
        "company": "company", "hubspot_owner_id": "owner_id", "hs_lead_status": "status",
        "lifecyclestage": "lifecycle_stage",
    },
}  # fmt: skip

Action = Literal["write_crm", "write_source", "keep"]


@dataclass(frozen=True, slots=True)
class FieldDecision:
    """What happens to one person field, with both values and the reason."""

    crm_field: str
    source_field: str
    rule: str
    action: Action
    crm_value: Any
    source_value: Any
    reason: str


@dataclass(frozen=True, slots=True)
class PersonPlan:
    """The plan for one person: create / hold / update / nothing, and the field values."""

    action: Literal["create", "hold", "update", "none"]
    target: str | None
    crm_id: str | None
    crm_updates: Mapping[str, Any]
    source_updates: Mapping[str, Any]
    decisions: tuple[FieldDecision, ...]


@dataclass(frozen=True, slots=True)
class PersonFieldPlan:
    """One compiled person-field rule."""

    crm_field: str
    source_path: str
    direction: str
    rule: str
    get: Getter
    transform: Transform | None


def crm_value(crm: str, person: Person, field: str) -> Any:
    """A CRM field's value on a CRM person: raw ``fields`` first, then the standard attribute."""
    if field in person.fields:
        return person.fields[field]
    attr = STANDARD_ATTRIBUTES.get(crm, {}).get(field)
    return getattr(person, attr) if attr else None


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return is_blank(a) and is_blank(b)
    return to_text(a).strip() == to_text(b).strip()


def _decide(
    rule: PersonFieldPlan, source: Any, crm: Any,
    source_at: datetime | None, crm_at: datetime | None,
) -> tuple[Action, str]:  # fmt: skip
    if rule.rule == "never":
        return "keep", "rule never: not synced"
    if _same(source, crm):
        return "keep", "already equal"
    if rule.direction == "both":  # two_way_latest (the model enforces the pairing)
        if is_blank(crm):
            return "write_crm", "CRM blank"
        if is_blank(source):
            return "write_source", "source blank"
        if source_at is None or crm_at is None:
            return "keep", "two_way_latest: a side has no timestamp"
        if source_at > crm_at:
            return "write_crm", "source updated later"
        if crm_at > source_at:
            return "write_source", "CRM updated later"
        return "keep", "two_way_latest: updated at the same time"
    if rule.direction == "to_crm":
        if is_blank(source):
            return "keep", "source blank (blanks never overwrite)"
        if rule.rule == "prefer_crm_unless_blank" and not is_blank(crm):
            return "keep", "CRM has a value (prefer_crm_unless_blank)"
        return "write_crm", "CRM blank" if is_blank(crm) else "always_overwrite"
    if is_blank(crm):
        return "keep", "CRM blank (blanks never overwrite)"
    return "write_source", "from CRM"


def plan_person(  # noqa: PLR0917 - the compiled mapping passes its own parts through
    crm: str,
    rules: tuple[PersonFieldPlan, ...],
    unknown: str,
    create_defaults: Mapping[str, Any],
    source_person: Person,
    crm_person: Person | None,
    changed_at: Mapping[str, datetime] | None = None,
) -> PersonPlan:
    """Decide every person field for one person (see module docstring for the rules)."""
    decisions: list[FieldDecision] = []
    crm_updates: dict[str, Any] = {}
    source_updates: dict[str, Any] = {}
    for rule in rules:
        value = rule.get(EMPTY_TOUCH, source_person)
        if rule.transform is not None:
            value = rule.transform(value)
        source_field = rule.source_path.removeprefix("person.")
        if crm_person is None:
            writes = rule.direction != "from_crm" and rule.rule != "never" and not is_blank(value)
            if writes:
                crm_updates[rule.crm_field] = value
            decisions.append(
                FieldDecision(
                    rule.crm_field, source_field, rule.rule,
                    "write_crm" if writes else "keep", None, value,
                    "new person" if writes else "not written on create",
                )
            )  # fmt: skip
            continue
        current = crm_value(crm, crm_person, rule.crm_field)
        crm_at = (changed_at or {}).get(rule.crm_field) or crm_person.updated_at
        action, reason = _decide(rule, value, current, source_person.updated_at, crm_at)
        if action == "write_crm":
            crm_updates[rule.crm_field] = value
        elif action == "write_source":
            source_updates[source_field] = current
        decisions.append(
            FieldDecision(rule.crm_field, source_field, rule.rule, action, current, value, reason)
        )
    if crm_person is None:
        if unknown == "hold":
            return PersonPlan("hold", None, None, {}, {}, tuple(decisions))
        target = _create_target(crm, unknown)
        payload = {**create_defaults, **crm_updates}
        return PersonPlan("create", target, None, payload, {}, tuple(decisions))
    outcome: Literal["update", "none"] = "update" if crm_updates or source_updates else "none"
    return PersonPlan(
        outcome, crm_person.kind.value, crm_person.external_id, crm_updates, source_updates,
        tuple(decisions),
    )  # fmt: skip


def _create_target(crm: str, unknown: str) -> str:
    if crm == "hubspot":
        return "contact"
    return "Lead" if unknown == "create_lead" else "Contact"


def compile_person_rule(
    crm_field: str, source: str, direction: str, rule: str,
    transform: Callable[[Any], Any] | None,
) -> PersonFieldPlan:  # fmt: skip
    """One person-field rule as plain data plus its getter."""
    return PersonFieldPlan(crm_field, source, direction, rule, compile_path(source), transform)
