"""What a CRM's objects and fields look like, for validating mappings and shaping values.

A ``FieldCatalogue`` maps CRM -> object -> field -> ``FieldInfo`` (type, length, picklist
values and whether only they are accepted, createable / updateable, required on create).
``validate`` uses it for "did you mean" on CRM field names, picklist values and value types;
``compile`` uses lengths to cut text and types to refuse values the CRM would refuse.

Where a catalogue comes from is always explicit, and every message says which one was used:

- the connected org's own schema (``sync.crm_schema.OrgSchema``: Salesforce describe or
  HubSpot's properties API, cached in the ledger), what ``closedloop mappings validate``,
  ``config check``, ``check`` and ``sync`` use;
- ``offline_catalogue()``: the sandbox emulators' schemas (else ``STANDARD``, the standard
  fields below) and the catalogues plugin sinks declare (``SinkInfo.fields``), only when asked
  for (``--offline``) and in tests;
- ``UNCHECKED``: no CRM schema at all, for readers that only need a mapping's lifecycle.

A catalogue is also a ``SchemaSource`` (it answers every request with itself), so functions
that validate a mapping take either a fixed catalogue or a source that reads the org.

Rows (``FieldInfo.from_row`` / ``to_row``) are the vendor-neutral form the connectors'
``describe_fields`` return and the ledger caches: ``name``, ``label``, ``type`` (the vendor's
type name), ``length``, ``picklist`` (values that may be written), ``restricted``,
``createable``, ``updateable``, ``required`` (on create), ``custom``, ``field_type``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from connectors.registry import sink_info, sink_names

__all__ = [
    "HUBSPOT_ENGAGEMENTS",
    "STANDARD",
    "UNCHECKED",
    "FieldCatalogue",
    "FieldInfo",
    "SchemaSource",
    "deal_objects",
    "declared_catalogue",
    "offline_catalogue",
    "person_objects",
]


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One CRM field: its type, maximum text length, allowed values and how it may be written."""

    name: str
    type: str = "string"
    length: int | None = None
    picklist: tuple[str, ...] = ()
    required: bool = False
    # Only the picklist values are accepted (Salesforce restricted picklists, HubSpot
    # enumerations); an unrestricted Salesforce picklist takes other values too.
    restricted: bool = False
    createable: bool = True
    updateable: bool = True
    custom: bool = False
    # HubSpot's fieldType (``checkbox`` enumerations hold several values separated by ";").
    field_type: str | None = None
    label: str | None = None

    @property
    def read_only(self) -> bool:
        """Neither createable nor updateable for the integration user."""
        return not (self.createable or self.updateable)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> FieldInfo:
        """A field from a vendor-neutral row (see the module docstring)."""
        length = row.get("length")
        return cls(
            name=str(row["name"]),
            type=str(row.get("type") or "string"),
            length=int(length) if length else None,
            picklist=tuple(str(v) for v in row.get("picklist") or ()),
            required=bool(row.get("required", False)),
            restricted=bool(row.get("restricted", False)),
            createable=bool(row.get("createable", True)),
            updateable=bool(row.get("updateable", True)),
            custom=bool(row.get("custom", False)),
            field_type=row.get("field_type") or None,
            label=row.get("label") or None,
        )

    def to_row(self) -> dict[str, Any]:
        """The vendor-neutral row of this field (JSON-ready)."""
        return {
            "name": self.name, "label": self.label, "type": self.type, "length": self.length,
            "picklist": list(self.picklist), "restricted": self.restricted,
            "createable": self.createable, "updateable": self.updateable,
            "required": self.required, "custom": self.custom, "field_type": self.field_type,
        }  # fmt: skip


class SchemaSource(Protocol):
    """Gives the catalogue to check a mapping of ``crm`` that uses ``objects`` against."""

    def catalogue(self, crm: str, objects: Collection[str]) -> FieldCatalogue:
        """The catalogue covering ``objects`` of ``crm`` (reading them if needed)."""
        ...


@dataclass(frozen=True)
class FieldCatalogue:
    """CRM -> object -> field name -> FieldInfo. Objects absent here are not checked.

    ``origins`` says per CRM what the catalogue was checked against, as a phrase that completes
    "checked ..." in messages. ``absent`` lists objects the org said it does not have (or the
    integration user cannot see). ``lists_objects`` is true when ``objects`` names every object
    of the CRM (the offline catalogues), so an object outside it is unknown; an org catalogue
    only holds the objects a mapping named.
    """

    objects: Mapping[str, Mapping[str, Mapping[str, FieldInfo]]] = field(default_factory=dict)
    origin: str = "against closedloop's list of standard fields"
    origins: Mapping[str, str] = field(default_factory=dict)
    absent: Mapping[str, frozenset[str]] = field(default_factory=dict)
    lists_objects: bool = True

    def catalogue(self, crm: str, objects: Collection[str]) -> FieldCatalogue:  # noqa: ARG002
        """A fixed catalogue answers every request with itself (see ``SchemaSource``)."""
        return self

    def origin_for(self, crm: str) -> str:
        """What the fields of ``crm`` were checked against: "against the Salesforce org ..."."""
        return self.origins.get(crm, self.origin)

    def object_names(self, crm: str) -> list[str]:
        """The objects known for ``crm``."""
        return sorted(self.objects.get(crm, {}))

    def absent_objects(self, crm: str) -> frozenset[str]:
        """Objects of ``crm`` the org reported missing."""
        return self.absent.get(crm, frozenset())

    def fields(self, crm: str, obj: str) -> Mapping[str, FieldInfo] | None:
        """The fields of ``obj`` in ``crm``, or None when the object is not catalogued."""
        return self.objects.get(crm, {}).get(obj)

    def field(self, crm: str, obj: str, name: str) -> FieldInfo | None:
        """One field, or None when unknown."""
        fields = self.fields(crm, obj)
        return None if fields is None else fields.get(name)

    def merged(self, other: FieldCatalogue) -> FieldCatalogue:
        """This catalogue with ``other``'s objects added (``other`` wins per object and origin)."""
        out: dict[str, dict[str, Mapping[str, FieldInfo]]] = {
            crm: dict(objs) for crm, objs in self.objects.items()
        }
        origins = dict(self.origins)
        for crm, objs in other.objects.items():
            out.setdefault(crm, {}).update(objs)
            origins[crm] = other.origin_for(crm)
        absent = {**self.absent, **other.absent}
        return FieldCatalogue(
            out, origin=self.origin, origins=origins, absent=absent,
            lists_objects=self.lists_objects and other.lists_objects,
        )  # fmt: skip

    @classmethod
    def from_rows(
        cls,
        crm: str,
        described: Mapping[str, Iterable[Mapping[str, Any]] | None],
        origin: str,
    ) -> FieldCatalogue:
        """An org catalogue from rows per object (None: the org has no such object)."""
        objects: dict[str, dict[str, FieldInfo]] = {}
        absent: set[str] = set()
        for obj, rows in described.items():
            if rows is None:
                absent.add(obj)
                continue
            objects[obj] = {info.name: info for info in map(FieldInfo.from_row, rows)}
        return cls(
            {crm: objects}, origin=origin, origins={crm: origin},
            absent={crm: frozenset(absent)}, lists_objects=False,
        )  # fmt: skip


# No CRM schema: nothing about CRM objects and fields is checked or known (lifecycle readers).
UNCHECKED = FieldCatalogue(
    origin="without a CRM schema (CRM fields not checked)", lists_objects=False
)


def _f(
    name: str,
    type_: str = "string",
    length: int | None = None,
    picklist: tuple[str, ...] = (),
    required: bool = False,
    *,
    restricted: bool = False,
) -> tuple[str, FieldInfo]:
    return name, FieldInfo(name, type_, length, picklist, required, restricted)


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
                restricted=True,
            ),
            _f("Priority", "picklist", 255, ("High", "Normal", "Low"), restricted=True),
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
            _f("Status", "picklist", 255, _LEAD_STATUS, False, restricted=True),
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
            _f(
                "Recycle_Reason__c",
                "picklist",
                255,
                ("Not ready to buy", "No response", "Timing: next fiscal year"),
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
            _f("StageName", "picklist", 255, _OPPORTUNITY_STAGE, True, restricted=True),
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
            _f("closedloop_recycle_reason", "string", 255),
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


def _enumerations_restricted(
    objects: dict[str, dict[str, FieldInfo]],
) -> dict[str, dict[str, FieldInfo]]:
    # HubSpot refuses an enumeration value outside the property's options (INVALID_OPTION).
    return {
        obj: {
            name: replace(info, restricted=True) if info.picklist else info
            for name, info in fields.items()
        }
        for obj, fields in objects.items()
    }


STANDARD = FieldCatalogue(
    {"salesforce": _SALESFORCE, "hubspot": _enumerations_restricted(_HUBSPOT)}
)

HUBSPOT_ENGAGEMENTS: tuple[str, ...] = ("note", "task", "email", "meeting", "call")


def person_objects(crm: str) -> tuple[str, ...]:
    """The objects a person can be in ``crm`` (as its connector declares them): person fields
    are checked against their union."""
    return sink_info(crm).person_objects


def deal_objects(crm: str) -> tuple[str, ...]:
    """The objects of ``crm`` holding deals (``lifecycle.stage_field`` is one of their fields)."""
    return sink_info(crm).deal_objects


def declared_catalogue(crm: str, origin: str) -> FieldCatalogue | None:
    """The field catalogue the connector of ``crm`` declares (``SinkInfo.fields``), or None."""
    declared = sink_info(crm).fields
    if not declared:
        return None
    objects = {
        obj: {info.name: info for info in map(FieldInfo.from_row, rows)}
        for obj, rows in declared.items()
    }
    return FieldCatalogue({crm: objects}, origin=origin, origins={crm: origin})


# Custom properties closedloop's HubSpot connector creates (``closedloop check hubspot --fix``;
# the touch key is searched: it is how a re-send whose outcome is unknown finds the engagement
# already written). The offline catalogue assumes they exist.
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
        FieldInfo("closedloop_recycle_reason", "string", 255),
        FieldInfo("closedloop_lead_source", "string", 255),
    ),
}

OFFLINE_ORIGIN = "offline against the sandbox's schema, not your org's"


def offline_catalogue() -> FieldCatalogue:
    """The sandbox org/portal schemas when installed, else STANDARD: for ``--offline`` and tests.

    Objects the sandbox defines replace the standard ones whole, so a field the sandbox org
    lacks is reported, as the sandbox would reject it. Never a stand-in for a real org: the
    CLI uses it only when asked to, and says so in every message.
    """
    catalogue = STANDARD
    for build in (_salesforce_sandbox, _hubspot_sandbox):
        try:
            built = build()
        except ImportError:
            continue
        catalogue = catalogue.merged(built)
    for crm in sink_names():  # plugin sinks: the catalogue their connector declares
        declared = declared_catalogue(crm, OFFLINE_ORIGIN)
        if declared is not None and crm not in catalogue.objects:
            catalogue = catalogue.merged(declared)
    return replace(
        catalogue, origin=OFFLINE_ORIGIN, origins=dict.fromkeys(catalogue.objects, OFFLINE_ORIGIN)
    )


def _salesforce_sandbox() -> FieldCatalogue:
    # The sandbox org's describe, read the way the connector reads a real one.
    from connectors.salesforce.schema import field_row
    from sandbox.salesforce_schema import OBJECTS, describe_field

    objects = {
        name: {
            f.name: FieldInfo.from_row(field_row(describe_field(f))) for f in obj.fields.values()
        }
        for name, obj in OBJECTS.items()
    }
    return FieldCatalogue({"salesforce": objects})


def _hubspot_sandbox() -> FieldCatalogue:
    # The sandbox portal's property definitions, read the way the connector reads a real one.
    from connectors.hubspot.schema import property_row
    from sandbox.hubspot_schema import OBJECT_TYPES, base_properties, singular

    objects: dict[str, dict[str, FieldInfo]] = {}
    for object_type in OBJECT_TYPES:
        fields = {
            name: FieldInfo.from_row(property_row(prop, object_type))
            for name, prop in base_properties(object_type).items()
        }
        for info in CLOSEDLOOP_HUBSPOT_PROPERTIES.get(singular(object_type), ()):
            fields.setdefault(info.name, info)
        objects[singular(object_type)] = fields
    return FieldCatalogue({"hubspot": objects})
