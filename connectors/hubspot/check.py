"""``closedloop check hubspot``: token, scopes, and the custom properties closedloop writes.

Each check is a ``CheckResult`` with a remedy; none raises. With ``fix=True`` missing custom
properties are created. The touch key is a plain text property: HubSpot allows no unique values
on activities, so exactly-once comes from the ledger and CRM search (``engagements``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.base import CheckResult
from connectors.errors import AuthError, ClosedloopError
from connectors.hubspot.client import CallError, HubSpotClient
from connectors.hubspot.engagements import ENGAGEMENT_TYPES
from connectors.hubspot.events import BEHAVIORAL_EVENT, TIMELINE_AUTH_REMEDY, TIMELINE_EVENT

__all__ = [
    "CUSTOM_PROPERTIES",
    "TOUCH_KEY_SPEC",
    "PropertySpec",
    "check_event_sinks",
    "check_properties",
    "create_property",
    "run_checks",
    "writeback_properties",
]

# Custom properties the shipped mappings write, per HubSpot object type (the touch key is added
# from the settings). Labels are what HubSpot users see in the property settings.
_ENGAGEMENT_PROPERTIES = {
    "closedloop_source": "closedloop source",
    "closedloop_campaign": "closedloop campaign",
    "closedloop_kind": "closedloop touch kind",
}
CUSTOM_PROPERTIES: dict[str, dict[str, str]] = {
    **{object_type: dict(_ENGAGEMENT_PROPERTIES) for object_type in ENGAGEMENT_TYPES.values()},
    "contacts": {
        "closedloop_lead_source": "closedloop lead source",
        # Why sales disqualified or recycled a contact: the shipped HubSpot mapping's
        # lifecycle.reason_fields, filled in by reps and read back by the dispositions pipeline.
        "closedloop_disqualified_reason": "closedloop disqualified reason",
        "closedloop_recycle_reason": "closedloop recycle reason",
    },
}
_SINGULAR = {
    "contacts": "contact",
    "deals": "deal",
    **{v: k for k, v in ENGAGEMENT_TYPES.items()},
}


@dataclass(frozen=True)
class PropertySpec:
    """A custom property closedloop writes: its label and HubSpot type / field type."""

    label: str
    type: str = "string"
    field_type: str = "text"
    description: str = "Written by closedloop (marketing touches synced from the MAP)."


# The engagements' touch-key property (its name comes from the settings).
TOUCH_KEY_SPEC = PropertySpec("closedloop touch key")


def writeback_properties(
    *,
    summary: str | None = None,
    top_campaign: str | None = None,
    flag: str | None = None,
    flag_time: str | None = None,
) -> dict[str, dict[str, PropertySpec]]:
    """The deal and contact properties the write-backs need (``sync.writeback``), by type."""
    deals: dict[str, PropertySpec] = {}
    contacts: dict[str, PropertySpec] = {}
    written = "Written by closedloop"
    if summary:
        deals[summary] = PropertySpec(
            "closedloop attribution",
            field_type="textarea",
            description=f"{written}: each campaign's share of this deal under one model.",
        )
    if top_campaign:
        deals[top_campaign] = PropertySpec(
            "closedloop top campaign",
            description=f"{written}: the campaign with the largest share of this deal.",
        )
    if flag:
        contacts[flag] = PropertySpec(
            "closedloop SLA breached",
            type="bool",
            field_type="booleancheckbox",
            description=f"{written}: sales did not act on the latest hand-off within the SLA.",
        )
    if flag_time:
        contacts[flag_time] = PropertySpec(
            "closedloop SLA breached at",
            type="datetime",
            field_type="date",
            description=f"{written}: when the SLA of the latest hand-off ran out.",
        )
    return {k: v for k, v in (("deals", deals), ("contacts", contacts)) if v}


_AUTH_REMEDY = (
    "set auth.access_token to the private app's token (Settings > Integrations > Private Apps > "
    "the app > Auth), or for a public app check client_id, client_secret and refresh_token"
)
_SCOPE_REMEDY = (
    "add the scopes to the app: crm.objects.contacts.read/write, crm.objects.companies.read, "
    "crm.objects.deals.read, crm.schemas.contacts.read/write, crm.objects.owners.read, and for "
    "engagements the matching object scopes (notes/tasks/emails/meetings/calls write)"
)


def run_checks(client: HubSpotClient, key_property: str, *, fix: bool = False) -> list[CheckResult]:
    """Token, scopes and custom properties; with ``fix`` create the missing properties."""
    results: list[CheckResult] = []
    token = _token(client)
    results.append(token)
    if not token.ok:
        return results
    for object_type, wanted in CUSTOM_PROPERTIES.items():
        names = {name: PropertySpec(label) for name, label in wanted.items()}
        if object_type in ENGAGEMENT_TYPES.values():
            names[key_property] = TOUCH_KEY_SPEC
        results.extend(_properties(client, object_type, names, fix))
    results.append(_marketing(client))
    return results


def check_properties(
    client: HubSpotClient, wanted: Mapping[str, Mapping[str, PropertySpec]], *, fix: bool = False
) -> list[CheckResult]:
    """More properties by object type (``writeback_properties``); ``fix`` creates missing ones."""
    results: list[CheckResult] = []
    for object_type, specs in wanted.items():
        results.extend(_properties(client, object_type, specs, fix, check="writeback"))
    return results


def check_event_sinks(client: HubSpotClient, targets: Mapping[str, set[str]]) -> list[CheckResult]:
    """What the event targets of the mappings need (``targets``: target -> template ids or
    event names); HubSpot offers no call to verify them without sending an event."""
    results: list[CheckResult] = []
    templates = sorted(targets.get(TIMELINE_EVENT) or ())
    if templates:
        used = f"timeline event templates {', '.join(templates)}"
        if client.uses_oauth:
            results.append(
                CheckResult(
                    "hubspot.timeline_events",
                    True,
                    f"{used}: OAuth app configured (a template id the app lacks rejects those "
                    "touches at the first sync; they are dead-lettered with HubSpot's message)",
                )
            )
        else:
            results.append(
                CheckResult(
                    "hubspot.timeline_events",
                    False,
                    f"{used}: this connection uses a private app token, which cannot create "
                    "timeline events",
                    TIMELINE_AUTH_REMEDY + "; the app needs the timeline scope",
                )
            )
    names = sorted(targets.get(BEHAVIORAL_EVENT) or ())
    if names:
        results.append(
            CheckResult(
                "hubspot.behavioral_events",
                True,
                f"custom events {', '.join(names)}: need Marketing Hub Enterprise (or another "
                "Enterprise hub), the event defined in Data Management > Custom Events and the "
                "analytics.behavioral_events.send scope; HubSpot does not de-duplicate them "
                "(at-least-once)",
            )
        )
    return results


def _token(client: HubSpotClient) -> CheckResult:
    api = client.api("owners")
    try:
        client.call("owners list", api.get_page, idempotent=True, limit=1)
    except AuthError as exc:
        missing_scope = "MISSING_SCOPES" in str(exc) or " 403 " in str(exc)
        if missing_scope:
            return CheckResult(
                "hubspot.token", True, "token accepted (owners not readable: see scopes)"
            )
        return CheckResult("hubspot.token", False, _clean(exc), _AUTH_REMEDY)
    except ClosedloopError as exc:
        return CheckResult(
            "hubspot.token", False, _clean(exc), f"check host ({client.settings.host}) and retry"
        )
    return CheckResult("hubspot.token", True, "token accepted")


def _properties(
    client: HubSpotClient,
    object_type: str,
    names: Mapping[str, PropertySpec],
    fix: bool,
    *,
    check: str = "properties",
) -> list[CheckResult]:
    api = client.api("properties")
    check_name = f"hubspot.{check}.{object_type}"
    try:
        answer = client.call(
            f"{object_type} properties list", api.get_all, object_type, idempotent=True
        )
    except AuthError as exc:
        return [CheckResult(check_name, False, _clean(exc), _SCOPE_REMEDY)]
    except ClosedloopError as exc:
        return [CheckResult(check_name, False, _clean(exc), "retry; if it persists, check host")]
    existing = {str(p.get("name")): p for p in answer.get("results") or []}
    missing = [n for n in names if n not in existing]
    mistyped = [
        f"{n} is of type {existing[n].get('type')}, not {_shown_type(names[n])}"
        for n in names
        if n in existing and not _type_fits(existing[n], names[n])
    ]
    created: list[str] = []
    problems: list[str] = []
    if fix:
        for name in missing:
            try:
                create_property(client, object_type, name, names[name])
            except CallError as exc:
                problems.append(f"{name}: {_clean(exc.error)}")
                continue
            created.append(name)
        missing = [n for n in missing if n not in created]
    results: list[CheckResult] = []
    if problems:
        results.append(
            CheckResult(check_name, False, "; ".join(problems), _SCOPE_REMEDY + " (schemas write)")
        )
    elif missing:
        results.append(
            CheckResult(
                check_name,
                False,
                f"missing custom properties: {', '.join(missing)}",
                "run `closedloop check hubspot --fix` to create them",
            )
        )
    else:
        detail = f"created {', '.join(created)}" if created else "custom properties present"
        results.append(CheckResult(check_name, True, detail))
    if mistyped:
        results.append(
            CheckResult(
                f"hubspot.property_types.{object_type}",
                False,
                "; ".join(mistyped),
                "archive these properties in HubSpot and run `closedloop check hubspot --fix`, "
                "or name other properties in closedloop.yaml",
            )
        )
    return results


def create_property(client: HubSpotClient, object_type: str, name: str, spec: PropertySpec) -> None:
    """Create one custom property; raises ``CallError`` when HubSpot refuses.

    A 409 means it exists already (another ``check --fix`` or push created it meanwhile, or an
    earlier attempt whose answer was lost): that is what was wanted, so it is no failure, and
    the call may be repeated after a 5xx like a read.
    """
    try:
        client.call(
            f"{object_type} property create",
            client.api("properties").create,
            object_type,
            _definition(object_type, name, spec),
            idempotent=True,
            raw_failures=True,
        )
    except CallError as exc:
        if exc.failure.status != 409:
            raise


def _shown_type(spec: PropertySpec) -> str:
    return "a single checkbox (bool)" if spec.type == "bool" else spec.type


def _type_fits(existing: Mapping[str, Any], spec: PropertySpec) -> bool:
    """Whether an existing property can hold the values closedloop writes for ``spec``."""
    kind = existing.get("type")
    if spec.type == "bool":  # HubSpot reports a single checkbox as an enumeration
        return kind in ("bool", "enumeration") and existing.get("fieldType") == "booleancheckbox"
    if spec.type == "datetime":
        return kind in ("datetime", "date")
    return kind == spec.type


def _definition(object_type: str, name: str, spec: PropertySpec) -> dict[str, Any]:
    return {
        "name": name,
        "label": spec.label,
        "type": spec.type,
        "fieldType": spec.field_type,
        "groupName": f"{_SINGULAR[object_type]}information",
        "description": spec.description,
        "formField": False,
    }


def _marketing(client: HubSpotClient) -> CheckResult:
    try:
        client.request("forms list", "GET", "/marketing/v3/forms", query=[("limit", 1)])
    except AuthError as exc:
        return CheckResult(
            "hubspot.marketing",
            False,
            _clean(exc),
            "add the forms and content scopes to read form submissions and e-mail events "
            "(only needed when HubSpot is a marketing source)",
        )
    except ClosedloopError as exc:
        return CheckResult("hubspot.marketing", False, _clean(exc), "retry; check host")
    return CheckResult("hubspot.marketing", True, "forms readable")


def _clean(exc: BaseException) -> str:
    """The first line of an error, for a one-line check detail."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
