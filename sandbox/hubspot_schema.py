"""HubSpot's CRM object model as plain data: object types, property definitions, association types.

The emulator validates every write against these definitions (unknown property, enumeration
option, read-only and required properties), so they mirror a fresh HubSpot portal's defaults.
Association type ids are HubSpot's HUBSPOT_DEFINED ids; each entry names its inverse.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ASSOCIATION_TYPES",
    "DEFAULT_PROPERTIES",
    "ENGAGEMENT_TYPES",
    "INVERSE_ASSOCIATION",
    "OBJECT_TYPES",
    "OBJECT_TYPE_IDS",
    "READ_ONLY_PROPERTIES",
    "REQUIRED_ON_CREATE",
    "base_properties",
    "singular",
]

# object type name -> HubSpot object type id
OBJECT_TYPE_IDS: dict[str, str] = {
    "contacts": "0-1",
    "companies": "0-2",
    "deals": "0-3",
    "calls": "0-48",
    "emails": "0-49",
    "meetings": "0-47",
    "notes": "0-46",
    "tasks": "0-27",
}
OBJECT_TYPES = tuple(OBJECT_TYPE_IDS)
ENGAGEMENT_TYPES = ("calls", "emails", "meetings", "notes", "tasks")

_SINGULAR = {
    "contacts": "contact",
    "companies": "company",
    "deals": "deal",
    "calls": "call",
    "emails": "email",
    "meetings": "meeting",
    "notes": "note",
    "tasks": "task",
}


def singular(object_type: str) -> str:
    """``contacts`` -> ``contact``: the name HubSpot uses in messages and association paths."""
    return _SINGULAR[object_type]


# Properties every response carries even when not asked for.
DEFAULT_PROPERTIES: dict[str, tuple[str, ...]] = {
    "contacts": (
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    ),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "deals": (
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    ),
    **dict.fromkeys(
        ("calls", "emails", "meetings", "notes", "tasks"),
        ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    ),
}
READ_ONLY_PROPERTIES = frozenset(
    {"hs_object_id", "createdate", "hs_createdate", "hs_lastmodifieddate", "lastmodifieddate"}
)
REQUIRED_ON_CREATE: dict[str, tuple[str, ...]] = {
    "contacts": (),
    "companies": (),
    "deals": ("dealname", "dealstage"),
    **dict.fromkeys(("calls", "emails", "meetings", "notes", "tasks"), ("hs_timestamp",)),
}

# (name, type, fieldType, options or None); the group is the object's "information" group.
_Spec = tuple[str, str, str, tuple[str, ...] | None]
_COMMON: tuple[_Spec, ...] = (
    ("hs_object_id", "number", "number", None),
    ("hs_lastmodifieddate", "datetime", "date", None),
    ("hubspot_owner_id", "enumeration", "select", None),
)
_ENGAGEMENT: tuple[_Spec, ...] = (
    ("hs_timestamp", "datetime", "date", None),
    ("hs_createdate", "datetime", "date", None),
    ("hs_attachment_ids", "enumeration", "checkbox", None),
)
_SPECS: dict[str, tuple[_Spec, ...]] = {
    "contacts": (
        ("email", "string", "text", None),
        ("firstname", "string", "text", None),
        ("lastname", "string", "text", None),
        ("company", "string", "text", None),
        ("jobtitle", "string", "text", None),
        ("phone", "string", "phonenumber", None),
        ("country", "string", "text", None),
        ("website", "string", "text", None),
        ("createdate", "datetime", "date", None),
        ("lastmodifieddate", "datetime", "date", None),
        (
            "lifecyclestage",
            "enumeration",
            "radio",
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
        (
            "hs_lead_status",
            "enumeration",
            "radio",
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
        ("hs_analytics_source", "string", "text", None),
    ),
    "companies": (
        ("name", "string", "text", None),
        ("domain", "string", "text", None),
        ("industry", "string", "text", None),
        ("numberofemployees", "number", "number", None),
        ("createdate", "datetime", "date", None),
    ),
    "deals": (
        ("dealname", "string", "text", None),
        (
            "dealstage",
            "enumeration",
            "radio",
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
        ("pipeline", "enumeration", "select", ("default",)),
        ("amount", "number", "number", None),
        ("closedate", "datetime", "date", None),
        ("createdate", "datetime", "date", None),
        ("hs_campaign", "string", "text", None),
    ),
    "notes": (("hs_note_body", "string", "html", None),),
    "tasks": (
        ("hs_task_subject", "string", "text", None),
        ("hs_task_body", "string", "html", None),
        (
            "hs_task_status",
            "enumeration",
            "select",
            ("NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"),
        ),
        ("hs_task_priority", "enumeration", "select", ("NONE", "LOW", "MEDIUM", "HIGH")),
        ("hs_task_type", "enumeration", "select", ("CALL", "EMAIL", "TODO", "LINKED_IN")),
    ),
    "emails": (
        ("hs_email_subject", "string", "text", None),
        ("hs_email_text", "string", "textarea", None),
        ("hs_email_html", "string", "html", None),
        (
            "hs_email_direction",
            "enumeration",
            "select",
            ("EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL"),
        ),
        (
            "hs_email_status",
            "enumeration",
            "select",
            ("BOUNCED", "FAILED", "SCHEDULED", "SENDING", "SENT"),
        ),
    ),
    "meetings": (
        ("hs_meeting_title", "string", "text", None),
        ("hs_meeting_body", "string", "html", None),
        ("hs_meeting_location", "string", "text", None),
        ("hs_meeting_start_time", "datetime", "date", None),
        ("hs_meeting_end_time", "datetime", "date", None),
        (
            "hs_meeting_outcome",
            "enumeration",
            "select",
            ("SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED"),
        ),
    ),
    "calls": (
        ("hs_call_title", "string", "text", None),
        ("hs_call_body", "string", "html", None),
        ("hs_call_direction", "enumeration", "select", ("INBOUND", "OUTBOUND")),
        ("hs_call_duration", "number", "number", None),
        (
            "hs_call_status",
            "enumeration",
            "select",
            (
                "BUSY",
                "CALLING_CRM_USER",
                "CANCELED",
                "COMPLETED",
                "CONNECTING",
                "FAILED",
                "IN_PROGRESS",
                "NO_ANSWER",
                "QUEUED",
                "RINGING",
            ),
        ),
    ),
}


def _definition(object_type: str, spec: _Spec, order: int) -> dict[str, Any]:
    name, kind, field_type, options = spec
    read_only = name in READ_ONLY_PROPERTIES
    return {
        "name": name,
        "label": name.replace("hs_", "").replace("_", " ").title(),
        "type": kind,
        "fieldType": field_type,
        "description": "",
        "groupName": f"{singular(object_type)}information",
        "options": [
            {
                "label": value.replace("_", " ").title(),
                "value": value,
                "displayOrder": i,
                "hidden": False,
            }
            for i, value in enumerate(options or ())
        ],
        "displayOrder": order,
        "calculated": False,
        "externalOptions": name == "hubspot_owner_id",
        "hasUniqueValue": False,
        "hidden": False,
        "formField": not read_only,
        "hubspotDefined": True,
        "archived": False,
        "modificationMetadata": {
            "archivable": False,
            "readOnlyDefinition": True,
            "readOnlyValue": read_only,
        },
        "createdAt": "2020-01-01T00:00:00.000Z",
        "updatedAt": "2020-01-01T00:00:00.000Z",
    }


def base_properties(object_type: str) -> dict[str, dict[str, Any]]:
    """A fresh portal's property definitions of ``object_type``, by property name."""
    specs = list(_SPECS[object_type]) + list(_COMMON)
    if object_type in ENGAGEMENT_TYPES:
        specs += list(_ENGAGEMENT)
    return {spec[0]: _definition(object_type, spec, i) for i, spec in enumerate(specs)}


# (from, to) -> (default typeId, primary typeId or None); HUBSPOT_DEFINED ids.
ASSOCIATION_TYPES: dict[tuple[str, str], tuple[int, int | None]] = {
    ("contacts", "companies"): (279, 1),
    ("companies", "contacts"): (280, 2),
    ("deals", "contacts"): (3, None),
    ("contacts", "deals"): (4, None),
    ("deals", "companies"): (341, 5),
    ("companies", "deals"): (342, 6),
    ("notes", "contacts"): (202, None),
    ("contacts", "notes"): (201, None),
    ("notes", "companies"): (190, None),
    ("companies", "notes"): (189, None),
    ("notes", "deals"): (214, None),
    ("deals", "notes"): (213, None),
    ("tasks", "contacts"): (204, None),
    ("contacts", "tasks"): (203, None),
    ("tasks", "companies"): (192, None),
    ("companies", "tasks"): (191, None),
    ("tasks", "deals"): (216, None),
    ("deals", "tasks"): (215, None),
    ("emails", "contacts"): (198, None),
    ("contacts", "emails"): (197, None),
    ("emails", "companies"): (186, None),
    ("companies", "emails"): (185, None),
    ("emails", "deals"): (210, None),
    ("deals", "emails"): (209, None),
    ("meetings", "contacts"): (200, None),
    ("contacts", "meetings"): (199, None),
    ("meetings", "companies"): (188, None),
    ("companies", "meetings"): (187, None),
    ("meetings", "deals"): (212, None),
    ("deals", "meetings"): (211, None),
    ("calls", "contacts"): (194, None),
    ("contacts", "calls"): (193, None),
    ("calls", "companies"): (182, None),
    ("companies", "calls"): (181, None),
    ("calls", "deals"): (206, None),
    ("deals", "calls"): (205, None),
}


def _inverse() -> dict[int, int]:
    pairs: dict[int, int] = {}
    for (source, target), (default, primary) in ASSOCIATION_TYPES.items():
        back_default, back_primary = ASSOCIATION_TYPES[(target, source)]
        pairs[default] = back_default
        if primary is not None and back_primary is not None:
            pairs[primary] = back_primary
    return pairs


# typeId -> the typeId of the same association seen from the other side.
INVERSE_ASSOCIATION: dict[int, int] = _inverse()
