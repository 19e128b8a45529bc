"""What a CRM's objects and fields look like, for validating mappings and truncating text.

A ``FieldCatalogue`` maps CRM -> object -> field -> ``FieldInfo`` (type, length, picklist
values, required on create). ``validate`` uses it for "did you mean" on CRM field names and
picklist values; ``compile`` uses the lengths to cut text that would be rejected.

``default_catalogue()`` prefers the sandbox emulators' schemas (``sandbox.
salesforce_schema`` / ``hubspot_schema``, which mirror the real describe output) and falls back
to the standard fields below, which cover everything the shipped mappings use. A live CRM
describe can be turned into a catalogue with ``FieldCatalogue.from_describe``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "HUBSPOT_ENGAGEMENTS",
    "PERSON_OBJECTS",
    "STANDARD",
    "FieldCatalogue",
    "FieldInfo",
    "default_catalogue",
]


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One CRM field: its type, maximum text length, allowed values and whether create needs it."""

    name: str
    type: str = "string"
    length: int | None = None
    picklist: tuple[str, ...] = ()
    required: bool = False


@dataclass(frozen=True)
class FieldCatalogue:
    """CRM -> object -> field name -> FieldInfo. Objects absent here are not checked."""

    objects: Mapping[str, Mapping[str, Mapping[str, FieldInfo]]] = field(default_factory=dict)
    origin: str = "standard fields"
    origins: Mapping[str, str] = field(default_factory=dict)

    def origin_for(self, crm: str) -> str:
        """Where the field definitions of ``crm`` come from, for messages."""
        return self.origins.get(crm, self.origin)

    def object_names(self, crm: str) -> list[str]:
        """The objects known for ``crm``."""
        return sorted(self.objects.get(crm, {}))

    def fields(self, crm: str, obj: str) -> Mapping[str, FieldInfo] | None:
        """The fields of ``obj`` in ``crm``, or None when the object is not catalogued."""
        return self.objects.get(crm, {}).get(obj)

    def field(self, crm: str, obj: str, name: str) -> FieldInfo | None:
        """One field, or None when unknown."""
        fields = self.fields(crm, obj)
        return None if fields is None else fields.get(name)

    def merged(self, other: FieldCatalogue) -> FieldCatalogue:
        """This catalogue with ``other``'s objects added (``other`` wins per object)."""
        out: dict[str, dict[str, Mapping[str, FieldInfo]]] = {
            crm: dict(objs) for crm, objs in self.objects.items()
        }
        origins = dict(self.origins)
        for crm, objs in other.objects.items():
            out.setdefault(crm, {}).update(objs)
            origins[crm] = f"{other.origin_for(crm)} + {self.origin_for(crm)}"
        return FieldCatalogue(out, origin=self.origin, origins=origins)

    @classmethod
    def from_describe(
        cls, crm: str, describes: Mapping[str, Iterable[Mapping[str, Any]]], origin: str
    ) -> FieldCatalogue:
        """Build from describe-like rows: ``{object: [{name, type, length, picklist, required}]}``.

        Salesforce describe rows carry ``picklistValues`` ([{value: ...}]) and ``nillable``;
        HubSpot property rows carry ``options`` ([{value: ...}]); both are understood.
        """
        objects: dict[str, dict[str, FieldInfo]] = {}
        for obj, rows in describes.items():
            fields: dict[str, FieldInfo] = {}
            for row in rows:
                info = _info_from_row(row)
                fields[info.name] = info
            objects[obj] = fields
        return cls({crm: objects}, origin=origin)


def _info_from_row(row: Mapping[str, Any]) -> FieldInfo:
    values = row.get("picklist") or row.get("picklistValues") or row.get("options") or ()
    picklist = tuple(str(v.get("value")) if isinstance(v, Mapping) else str(v) for v in values)
    length = row.get("length")
    required = bool(row.get("required", False))
    if "nillable" in row and "createable" in row and "defaultedOnCreate" in row:
        required = not row["nillable"] and row["createable"] and not row["defaultedOnCreate"]
    return FieldInfo(
        name=str(row["name"]),
        type=str(row.get("type", "string")),
        length=int(length) if length else None,
        picklist=picklist,
        required=required,
    )


def _f(
    name: str,
    type_: str = "string",
    length: int | None = None,
    picklist: tuple[str, ...] = (),
    required: bool = False,
) -> tuple[str, FieldInfo]:
    return name, FieldInfo(name, type_, length, picklist, required)


_LEAD_STATUS = (
    "Open - Not Contacted", "Marketing Qualified", "Working - Contacted", "Sales Accepted",
    "Sales Qualified", "Closed - Converted", "Closed - Not Converted", "Recycled", "Disqualified",
)  # fmt: skip
_LEAD_SOURCE = (
    "Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Trade Show", "Webinar",
    "Email", "Advertisement", "Other",
)  # fmt: skip
_OPPORTUNITY_STAGE = (
    "Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
    "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review", "Closed Won",
    "Closed Lost",
)  # fmt: skip

_SF_PERSON_COMMON = (
    _f("Email", "email", 80), _f("FirstName", "string", 40), _f("LastName", "string", 80, (), True),
    _f("Title", "string", 128), _f("Phone", "phone", 40), _f("LeadSource", "picklist", 255,
    _LEAD_SOURCE), _f("OwnerId", "reference", 18), _f("Description", "textarea", 32000),
    _f("HasOptedOutOfEmail", "boolean"),
)  # fmt: skip

_SALESFORCE: dict[str, dict[str, FieldInfo]] = {
    "Task": dict(
        (
            _f("Subject", "combobox", 255),
            _f("ActivityDate", "date"),
            _f(
                "Status",
                "picklist",
                255,
                ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"),
            ),
            _f("Priority", "picklist", 255, ("High", "Normal", "Low")),
            _f(
                "Type",
                "picklist",
                255,
                ("Call", "Email", "Meeting", "Marketing Touch", "Other"),
            ),
            _f("TaskSubtype", "picklist", 255, ("Task", "Email", "Call")),
            _f("Description", "textarea", 32000),
            _f("WhoId", "reference", 18),
            _f("WhatId", "reference", 18),
            _f("OwnerId", "reference", 18),
            _f("Closedloop_Key__c", "string", 255),
        )
    ),
    "Lead": dict(
        (
            *_SF_PERSON_COMMON,
            _f("Company", "string", 255, (), True),
            _f("Status", "picklist", 255, _LEAD_STATUS, False),
            _f("Industry", "picklist", 255),
            _f("NumberOfEmployees", "int"),
            _f("Website", "url", 255),
            _f("Country", "string", 80),
            _f(
                "Disqualified_Reason__c",
                "picklist",
                255,
                ("No budget", "No need", "Competitor", "Bad data", "Not a fit"),
            ),
            _f("IsConverted", "boolean"),
        )
    ),
    "Contact": dict(
        (
            *_SF_PERSON_COMMON,
            _f("AccountId", "reference", 18),
            _f("Department", "string", 80),
            _f("MailingCountry", "string", 80),
        )
    ),
    "Opportunity": dict(
        (
            _f("Name", "string", 120, (), True),
            _f("StageName", "picklist", 255, _OPPORTUNITY_STAGE, True),
            _f("Amount", "currency"),
            _f("CloseDate", "date", None, (), True),
            _f("AccountId", "reference", 18),
            _f("CampaignId", "reference", 18),
        )
    ),
}

_HS_ENGAGEMENT_COMMON = (
    _f("hs_timestamp", "datetime", None, (), True), _f("hubspot_owner_id", "enumeration"),
    _f("closedloop_touch_key", "string", 255), _f("closedloop_source", "string", 255),
    _f("closedloop_campaign", "string", 255), _f("closedloop_kind", "string", 255),
)  # fmt: skip

_HUBSPOT: dict[str, dict[str, FieldInfo]] = {
    "note": dict((*_HS_ENGAGEMENT_COMMON, _f("hs_note_body", "string", 65536))),
    "task": dict(
        (
            *_HS_ENGAGEMENT_COMMON,
            _f("hs_task_subject", "string", 255, (), True),
            _f("hs_task_body", "string", 65536),
            _f(
                "hs_task_status",
                "enumeration",
                None,
                ("NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"),
            ),
            _f("hs_task_priority", "enumeration", None, ("NONE", "LOW", "MEDIUM", "HIGH")),
            _f("hs_task_type", "enumeration", None, ("CALL", "EMAIL", "TODO")),
        )
    ),
    "email": dict(
        (
            *_HS_ENGAGEMENT_COMMON,
            _f("hs_email_subject", "string", 255),
            _f("hs_email_text", "string", 65536),
            _f(
                "hs_email_direction",
                "enumeration",
                None,
                ("EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL"),
            ),
            _f(
                "hs_email_status",
                "enumeration",
                None,
                ("BOUNCED", "FAILED", "SCHEDULED", "SENDING", "SENT"),
            ),
        )
    ),
    "meeting": dict(
        (
            *_HS_ENGAGEMENT_COMMON,
            _f("hs_meeting_title", "string", 255),
            _f("hs_meeting_body", "string", 65536),
            _f("hs_meeting_start_time", "datetime"),
            _f("hs_meeting_end_time", "datetime"),
            _f(
                "hs_meeting_outcome",
                "enumeration",
                None,
                ("SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED"),
            ),
        )
    ),
    "call": dict(
        (
            *_HS_ENGAGEMENT_COMMON,
            _f("hs_call_title", "string", 255),
            _f("hs_call_body", "string", 65536),
            _f("hs_call_direction", "enumeration", None, ("INBOUND", "OUTBOUND")),
        )
    ),
    "contact": dict(
        (
            _f("email", "string", 255),
            _f("firstname", "string", 255),
            _f("lastname", "string", 255),
            _f("company", "string", 255),
            _f("jobtitle", "string", 255),
            _f("phone", "string", 255),
            _f("hubspot_owner_id", "enumeration"),
            _f(
                "lifecyclestage",
                "enumeration",
                None,
                (
                    "subscriber",
                    "lead",
                    "marketingqualifiedlead",
                    "salesqualifiedlead",
                    "opportunity",
                    "customer",
                    "evangelist",
                    "other",
                ),
            ),
            _f(
                "hs_lead_status",
                "enumeration",
                None,
                (
                    "NEW",
                    "OPEN",
                    "IN_PROGRESS",
                    "OPEN_DEAL",
                    "UNQUALIFIED",
                    "ATTEMPTED_TO_CONTACT",
                    "CONNECTED",
                    "BAD_TIMING",
                ),
            ),
            _f("closedloop_disqualified_reason", "string", 255),
            _f("hubspotscore", "number"),
            _f("hs_analytics_source", "enumeration"),
            _f("closedloop_lead_source", "string", 255),
            _f("country", "string", 255),
            _f("industry", "string", 255),
        )
    ),
    "deal": dict(
        (
            _f("dealname", "string", 255, (), True),
            _f(
                "dealstage",
                "enumeration",
                None,
                (
                    "appointmentscheduled",
                    "qualifiedtobuy",
                    "presentationscheduled",
                    "decisionmakerboughtin",
                    "contractsent",
                    "closedwon",
                    "closedlost",
                ),
            ),
            _f("amount", "number"),
            _f("closedate", "datetime"),
            _f("pipeline", "enumeration"),
        )
    ),
}

STANDARD = FieldCatalogue({"salesforce": _SALESFORCE, "hubspot": _HUBSPOT})

HUBSPOT_ENGAGEMENTS: tuple[str, ...] = ("note", "task", "email", "meeting", "call")
# The CRM objects a person can be, per CRM: person fields are checked against their union.
PERSON_OBJECTS: dict[str, tuple[str, ...]] = {
    "salesforce": ("Lead", "Contact"),
    "hubspot": ("contact",),
}


# Custom properties closedloop's HubSpot connector creates (the touch key is searched: it is
# how a re-send whose outcome is unknown finds the engagement already written).
CLOSEDLOOP_HUBSPOT_PROPERTIES: dict[str, tuple[FieldInfo, ...]] = {
    **dict.fromkeys(
        HUBSPOT_ENGAGEMENTS,
        (
            FieldInfo("closedloop_touch_key", "string", 255),
            FieldInfo("closedloop_source", "string", 255),
            FieldInfo("closedloop_campaign", "string", 255),
            FieldInfo("closedloop_kind", "string", 255),
        ),
    ),
    "contact": (
        FieldInfo("closedloop_disqualified_reason", "string", 255),
        FieldInfo("closedloop_lead_source", "string", 255),
    ),
}


def default_catalogue() -> FieldCatalogue:
    """The sandbox org/portal schemas when installed (they mirror real describes), else STANDARD.

    Objects the sandbox defines replace the standard ones whole, so a field the sandbox org
    lacks is reported, as the real org would reject it.
    """
    catalogue = STANDARD
    for build in (_salesforce_sandbox, _hubspot_sandbox):
        try:
            built = build()
        except ImportError:
            continue
        catalogue = catalogue.merged(built)
    return catalogue


def _salesforce_sandbox() -> FieldCatalogue:
    from sandbox.salesforce_schema import OBJECTS

    objects: dict[str, dict[str, FieldInfo]] = {}
    for name, obj in OBJECTS.items():
        objects[name] = {
            f.name: FieldInfo(f.name, f.type, f.length or None, tuple(f.picklist), f.required)
            for f in obj.fields.values()
            if f.createable
        }
    return FieldCatalogue({"salesforce": objects}, origin="the Salesforce sandbox org")


def _hubspot_sandbox() -> FieldCatalogue:
    from sandbox.hubspot_schema import (
        OBJECT_TYPES,
        READ_ONLY_PROPERTIES,
        REQUIRED_ON_CREATE,
        base_properties,
        singular,
    )

    objects: dict[str, dict[str, FieldInfo]] = {}
    for object_type in OBJECT_TYPES:
        required = set(REQUIRED_ON_CREATE.get(object_type, ()))
        fields: dict[str, FieldInfo] = {}
        for name, prop in base_properties(object_type).items():
            if name in READ_ONLY_PROPERTIES:
                continue
            options = tuple(str(o["value"]) for o in prop.get("options") or ())
            # HubSpot text properties hold up to 65,536 characters.
            length = 65536 if prop.get("type") == "string" else None
            fields[name] = FieldInfo(name, str(prop.get("type")), length, options, name in required)
        for info in CLOSEDLOOP_HUBSPOT_PROPERTIES.get(singular(object_type), ()):
            fields.setdefault(info.name, info)
        objects[singular(object_type)] = fields
    return FieldCatalogue({"hubspot": objects}, origin="the HubSpot sandbox portal")
