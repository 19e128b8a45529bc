"""The events and marketing side of an emulated HubSpot portal.

Timeline events, custom behavioral events (one or a batch, under HubSpot's documented limits of
event occurrences), and the marketing read side: legacy e-mail events, forms and form
submissions, with the test hooks that plant malformed ones (poison records).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any

from sandbox.hubspot_clock import iso_ms, to_ms
from sandbox.hubspot_records import BEHAVIORAL_BATCH_LIMIT, HubSpotApiError, PortalBase
from sandbox.hubspot_search import parse_datetime_ms

__all__ = [
    "EVENT_NAME_LENGTH",
    "EVENT_PROPERTY_LIMIT",
    "EVENT_URL_VALUE_LENGTH",
    "EVENT_VALUE_LENGTH",
    "PortalEvents",
]

# Custom event occurrences (POST /events/v3/send and /send/batch): a request over one of the
# limits HubSpot lists fails
# (https://developers.hubspot.com/docs/api-reference/legacy/events/send-event-data/guide, section
# Limits), and names and values follow the rules of event definitions
# (https://developers.hubspot.com/docs/api-reference/legacy/events/define-events/guide).
EVENT_PROPERTY_LIMIT = 50  # properties per occurrence
EVENT_NAME_LENGTH = 50  # an event's or a property's internal name
EVENT_VALUE_LENGTH = 256  # a property value ...
EVENT_URL_VALUE_LENGTH = 1024  # ... whose property name has url, referrer or link in it
_EVENT_PROPERTY_NAME = re.compile(r"[a-z][a-z0-9_]*")
# The fully qualified name: pe{HubID}_{name}, the name as an event definition's internal name.
_EVENT_NAME = re.compile(rf"pe[0-9]+_[a-z][a-z0-9_]{{0,{EVENT_NAME_LENGTH - 1}}}")


def _occurrence_problem(body: dict[str, Any]) -> str | None:
    """Why HubSpot refuses this custom event occurrence under its documented limits, or None."""
    name = str(body["eventName"])
    if not _EVENT_NAME.fullmatch(name):
        return (
            f"Event {name!r} is not a custom event's fully qualified name, "
            f"pe<HubID>_<name> with a name of at most {EVENT_NAME_LENGTH} lowercase letters, "
            "digits and underscores."
        )
    stamp = body.get("occurredAt")
    readable = isinstance(stamp, int) or (
        isinstance(stamp, str) and parse_datetime_ms(stamp) is not None
    )
    if stamp is not None and (isinstance(stamp, bool) or not readable):
        return f"occurredAt {stamp!r} is neither an ISO 8601 datetime nor epoch milliseconds."
    properties = body.get("properties", {})
    if not isinstance(properties, dict):
        return "properties must be an object of property names and values."
    if len(properties) > EVENT_PROPERTY_LIMIT:
        return (
            f"The occurrence has {len(properties)} properties; an event occurrence can have at "
            f"most {EVENT_PROPERTY_LIMIT} properties."
        )
    for prop, value in properties.items():
        if len(prop) > EVENT_NAME_LENGTH:
            return (
                f"Property name {prop!r} has {len(prop)} characters; a property's internal name "
                f"can have at most {EVENT_NAME_LENGTH} characters."
            )
        if not re.match("[A-Za-z]", prop):
            return f"Property name {prop!r} must start with a letter."
        if not _EVENT_PROPERTY_NAME.fullmatch(prop):
            return (
                f"Property name {prop!r} may hold only lowercase letters a-z, digits and "
                "underscores."
            )
        text = value if isinstance(value, str) else json.dumps(value)
        url_like = any(word in prop for word in ("url", "referrer", "link"))
        limit = EVENT_URL_VALUE_LENGTH if url_like else EVENT_VALUE_LENGTH
        if len(text) > limit:
            return (
                f"The value of property {prop!r} is {len(text)} characters long; it can be at "
                f"most {limit} characters."
            )
    return None


class PortalEvents(PortalBase):
    """Timeline and behavioral events, e-mail events, forms and submissions, and test hooks."""

    # ------------------------------------------------------------ test hooks
    def plant_email_event(self, event: dict[str, Any], at: datetime) -> None:
        """Test hook: serve ``event`` exactly as given (malformed on purpose) as an e-mail event
        of time ``at``, whatever its own ``created`` says."""
        stamp = to_ms(at)
        self._planted[id(event)] = stamp
        index = next(
            (i for i, e in enumerate(self.email_events) if self._moment(e, "created") < stamp),
            len(self.email_events),
        )
        self.email_events.insert(index, event)

    def plant_submission(self, form_id: str, row: dict[str, Any], at: datetime) -> None:
        """Test hook: serve ``row`` exactly as given (malformed on purpose) as a submission of
        form ``form_id`` at time ``at``, whatever its own ``submittedAt`` says."""
        if form_id not in self.forms:
            raise KeyError(f"no form {form_id}")
        stamp = to_ms(at)
        self._planted[id(row)] = stamp
        rows = self.submissions[form_id]
        index = next(
            (i for i, r in enumerate(rows) if self._moment(r, "submittedAt") < stamp), len(rows)
        )
        rows.insert(index, row)

    def _moment(self, record: dict[str, Any], name: str) -> int:
        """A marketing record's time in ms (a planted one's: where it was planted)."""
        planted = self._planted.get(id(record))
        if planted is not None:
            return planted
        value = record.get(name)
        return value if isinstance(value, int) else 0

    # ------------------------------------------------------------------- events
    def timeline_event(self, body: dict[str, Any]) -> dict[str, Any]:
        """One timeline event (template id, tokens, and an email or objectId); ids are unique."""
        template = body.get("eventTemplateId")
        tokens = body.get("tokens")
        if not template or not isinstance(tokens, dict):
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", "eventTemplateId and tokens are required."
            )
        if self.event_templates is not None and str(template) not in self.event_templates:
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", f"Event template {template} does not exist for this app."
            )
        object_id = body.get("objectId")
        email = body.get("email")
        if object_id is None and email:
            record = self._resolve_id("contacts", str(email), "email")
            object_id = record.id if record else None
        if object_id is None or str(object_id) not in self.objects["contacts"]:
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                "The event must name an existing contact by email or objectId.",
            )
        event_id = str(body.get("id") or uuid.uuid4())
        if event_id in self.timeline_events:
            raise HubSpotApiError(409, "CONFLICT", f"An event with id {event_id} already exists.")
        stamp = body.get("timestamp") or iso_ms(self.clock.now())
        event = {
            "id": event_id,
            "eventTemplateId": str(template),
            "objectId": str(object_id),
            "email": email,
            "tokens": tokens,
            "extraData": body.get("extraData"),
            "timestamp": stamp,
            "createdAt": iso_ms(self.clock.now()),
            "objectType": "contacts",
        }
        self.timeline_events[event_id] = event
        return event

    def behavioral_event(self, body: dict[str, Any]) -> None:
        """POST /events/v3/send: a custom behavioral event for a contact."""
        self._check_behavioral(body)
        self.behavioral_events.append(dict(body))

    def behavioral_event_batch(self, body: dict[str, Any]) -> None:
        """POST /events/v3/send/batch: all occurrences recorded, or none if one is invalid.

        The endpoint answers 204 with no body, so it has no per-input results to report a
        partial success with: an invalid input refuses the whole batch with its message.
        """
        inputs = self._check_batch(body.get("inputs"), BEHAVIORAL_BATCH_LIMIT)
        for item in inputs:
            self._check_behavioral(item)
        self.behavioral_events.extend(dict(item) for item in inputs)

    @staticmethod
    def _check_behavioral(body: dict[str, Any]) -> None:
        if not body.get("eventName"):
            raise HubSpotApiError(400, "VALIDATION_ERROR", "eventName is required.")
        if not (body.get("email") or body.get("objectId") or body.get("utk")):
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", "One of email, objectId or utk is required."
            )
        problem = _occurrence_problem(body)
        if problem is not None:
            raise HubSpotApiError(400, "VALIDATION_ERROR", problem)

    def email_events_page(self, params: dict[str, str]) -> dict[str, Any]:
        """GET /email/public/v1/events: newest first, ``offset``/``hasMore`` paging, filters."""
        limit = max(1, min(int(params.get("limit") or 100), 1000))
        start_ms = int(params.get("startTimestamp") or 0)
        end_ms = int(params.get("endTimestamp") or 2**62)
        kind = params.get("eventType")
        recipient = (params.get("recipient") or "").lower()
        campaign = params.get("campaignId")
        selected = [
            e
            for e in self.email_events
            if start_ms <= self._moment(e, "created") <= end_ms
            and (not kind or e.get("type") == kind)
            and (not recipient or str(e.get("recipient") or "").lower() == recipient)
            and (not campaign or str(e.get("emailCampaignId")) == campaign)
        ]
        offset = params.get("offset")
        start = int(offset, 16) if offset else 0
        page = selected[start : start + limit]
        more = start + limit < len(selected)
        return {"events": page, "hasMore": more, "offset": format(start + len(page), "x")}

    def forms_page(self, limit: int, after: str | None) -> dict[str, Any]:
        """GET /marketing/v3/forms/."""
        forms = list(self.forms.values())
        start = int(after) if after and after.isdigit() else 0
        page = forms[start : start + limit]
        body: dict[str, Any] = {"results": page}
        if start + limit < len(forms):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return body

    def submissions_page(self, form_id: str, limit: int, after: str | None) -> dict[str, Any]:
        """GET /form-integrations/v1/submissions/forms/{guid}: newest first, max 50 a page."""
        if form_id not in self.forms:
            raise HubSpotApiError(404, "OBJECT_NOT_FOUND", f"Form {form_id} does not exist.")
        limit = max(1, min(limit, 50))
        rows = self.submissions[form_id]
        start = int(after, 16) if after else 0
        page = rows[start : start + limit]
        body: dict[str, Any] = {"results": page}
        if start + limit < len(rows):
            body["paging"] = {"next": {"after": format(start + limit, "x")}}
        return body
