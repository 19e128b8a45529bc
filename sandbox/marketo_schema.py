"""Marketo's standard activity types as plain data, and how world touches map onto them.

Ids are Marketo's standard ones (the same in every subscription); each type carries its primary
attribute and secondary attributes as ``GET /rest/v1/activities/types.json`` describes them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ACTIVITY_TYPES", "KIND_TO_TYPE", "LEAD_FIELDS"]

# id -> (name, description, primary attribute, [(secondary attribute, dataType)])
_TYPES: dict[int, tuple[str, str, tuple[str, str], tuple[tuple[str, str], ...]]] = {
    1: (
        "Visit Webpage",
        "User visits a web page",
        ("Webpage ID", "integer"),
        (("Webpage URL", "string"), ("Referrer URL", "string"), ("Client IP Address", "string")),
    ),
    2: (
        "Fill Out Form",
        "User fills out and submits form on web page",
        ("Webform ID", "integer"),
        (("Form Fields", "text"), ("Webpage ID", "integer"), ("Referrer URL", "string")),
    ),
    3: (
        "Click Link",
        "User clicks link on a page",
        ("Link ID", "integer"),
        (("Webpage ID", "integer"), ("Referrer URL", "string")),
    ),
    6: (
        "Send Email",
        "Send Marketo Email to a person",
        ("Mailing ID", "integer"),
        (("Campaign Run ID", "integer"), ("Step ID", "integer")),
    ),
    7: (
        "Email Delivered",
        "Marketo Email is delivered to a person",
        ("Mailing ID", "integer"),
        (("Campaign Run ID", "integer"), ("Step ID", "integer")),
    ),
    8: (
        "Email Bounced",
        "Marketo Email bounces for a person",
        ("Mailing ID", "integer"),
        (("Category", "string"), ("Details", "string"), ("Email", "email")),
    ),
    9: (
        "Unsubscribe Email",
        "Person unsubscribes from Marketo Emails",
        ("Mailing ID", "integer"),
        (("Client IP Address", "string"), ("Webpage ID", "integer")),
    ),
    10: (
        "Open Email",
        "User opens Marketo Email",
        ("Mailing ID", "integer"),
        (("Device", "string"), ("Platform", "string"), ("Is Mobile Device", "boolean")),
    ),
    11: (
        "Click Email",
        "User clicks on a link in a Marketo Email",
        ("Mailing ID", "integer"),
        (("Link", "string"), ("Device", "string"), ("Is Mobile Device", "boolean")),
    ),
    12: (
        "New Lead",
        "New person",
        ("Lead ID", "integer"),
        (("Source Type", "string"), ("List Name", "string")),
    ),
    13: (
        "Change Data Value",
        "Changed attribute value for a person",
        ("Attribute Name", "integer"),
        (("New Value", "string"), ("Old Value", "string"), ("Reason", "string")),
    ),
    22: (
        "Change Score",
        "Change a score value of a person",
        ("Score Name", "integer"),
        (("Change Value", "string"), ("New Value", "integer"), ("Old Value", "integer")),
    ),
    24: ("Add to List", "Person added to a list", ("List ID", "integer"), ()),
    25: ("Remove from List", "Person removed from a list", ("List ID", "integer"), ()),
    46: (
        "Interesting Moment",
        "Interesting moment for a person",
        ("Milestone ID", "integer"),
        (("Type", "string"), ("Description", "string"), ("Source", "string")),
    ),
    104: (
        "Change Status in Progression",
        "Change a person's program status",
        ("Program ID", "integer"),
        (
            ("New Status ID", "integer"),
            ("Old Status ID", "integer"),
            ("New Status", "string"),
            ("Old Status", "string"),
            ("Reason", "string"),
            ("Success", "boolean"),
        ),
    ),
}

ACTIVITY_TYPES: dict[int, dict[str, Any]] = {
    type_id: {
        "id": type_id,
        "name": name,
        "description": description,
        "primaryAttribute": {"name": primary[0], "dataType": primary[1]},
        "attributes": [{"name": n, "dataType": d} for n, d in attributes],
    }
    for type_id, (name, description, primary, attributes) in _TYPES.items()
}

# World touch kind -> Marketo activity type id. Webinar/event attendance and registrations
# are program status changes (104); downloads are form fills behind a gated asset; ad clicks
# arrive as web visits with UTM parameters; list imports are "Add to List".
KIND_TO_TYPE: dict[str, int] = {
    "page_view": 1,
    "ad_click": 1,
    "form_fill": 2,
    "content_download": 2,
    "email_sent": 6,
    "email_delivered": 7,
    "email_bounce": 8,
    "email_unsubscribe": 9,
    "email_open": 10,
    "email_click": 11,
    "score_change": 22,
    "list_import": 24,
    "webinar_registered": 104,
    "webinar_attended": 104,
    "event_attended": 104,
}

# Lead fields the emulator knows (REST API names); the first six are returned by default.
LEAD_FIELDS = (
    "id",
    "email",
    "firstName",
    "lastName",
    "updatedAt",
    "createdAt",
    "company",
    "title",
    "phone",
    "country",
    "leadScore",
    "leadSource",
    "leadStatus",
    "sfdcLeadId",
)
