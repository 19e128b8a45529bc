"""Touches as HubSpot timeline events and custom behavioral events (optional sinks).

**Timeline events** (mapping target ``timeline_event``) are instances of an event template that
belongs to a *public* app: HubSpot's v3 timeline API only takes the OAuth access token of that
app installed in the portal (a private app token cannot send them, and the developer API key
only manages templates). They are created with ``POST /integrators/timeline/v3/events/batch/
create`` through the SDK's ``crm.timeline.events_api.create_batch``, 100 events per call: the
v3 reference states no batch size, so closedloop keeps to the limit HubSpot documents for the
v1 batch and for every CRM batch call.

Every event carries an ``id`` derived from the touch key (``event_id``), and HubSpot refuses a
second event with an id it holds (``409 CONFLICT``, "already exists"). So, unlike engagements,
re-sending is always safe, and the writer never needs to read before writing:

- ``201``: the events in ``results`` were created (created=True); an input missing from the
  answer (a multi-status answer with ``errors``) is sent again on its own to learn its fate;
- ``409``: some event already exists (a replay, or a crash between the call and the ledger
  commit): the chunk is sent again one event at a time; a single event's 409 means delivered
  (ok, created=False, the CRM id is the event id);
- ``400`` / ``404``: a record is invalid (an unknown template id, no such contact, a token the
  template lacks): the chunk is halved until the invalid events stand alone and are reported as
  failed with HubSpot's message, the rest written. When the first ten lone refusals of a push
  say the same thing and nothing was accepted (a template or event name the portal lacks: a
  mapping mistake, not bad records), the push stops with a ``ConfigError`` instead of spending
  two calls per event to dead-letter every touch (both writers);
- 5xx, a timeout, a dropped connection: the client repeats the call (``idempotent=True``: a
  repeat can only conflict, never duplicate), and a conflict then settles as above.

**Custom behavioral events** (target ``behavioral_event``, Marketing Hub Enterprise) go through
``POST /events/v3/send/batch`` (the SDK's ``events.send.batch_api``), 500 occurrences per call,
the batch size HubSpot's custom events guide documents. Before sending, each occurrence is held
to the limits HubSpot's custom event guides document (``occurrence_problem``: the event's fully
qualified name, at most 50 properties, property names, value lengths): one over them fails
alone with the limit it breaks and how to fix the mapping, instead of getting its whole batch
refused. When
the first ten such failures say the same thing and nothing was accepted (a property or event
name the mapping gets wrong), the push stops with a ``ConfigError`` before anything is sent.
The call answers 204 with no body, so it has no per-input results: closedloop takes a 400 as the
whole batch refused (nothing recorded) and halves it until the invalid occurrences stand alone,
reported as failed with HubSpot's message, the rest sent. HubSpot's reference says an occurrence
whose ``uuid`` the event already took within a year is rejected, but not how (an error for the
batch, or a silent drop); closedloop sends a deterministic ``uuid`` of the touch key and does
not rely on that, so this sink is **at-least-once**: the engine never re-sends a touch the ledger
confirmed, but a crash between a send and the ledger commit, or an answer lost in transit, can
send a batch twice. A call whose outcome is unknown is not repeated here; its touches are left
without a result, which the engine records as failed and tries again on the next run.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from connectors.base import DeliveryResult, RenderedTouch
from connectors.errors import ClosedloopError, ConfigError
from connectors.hubspot.client import CallError, HubSpotClient
from connectors.hubspot.engagements import chunks
from connectors.hubspot.errors import Failure

__all__ = [
    "BEHAVIORAL_BATCH_LIMIT",
    "BEHAVIORAL_EVENT",
    "TIMELINE_BATCH_LIMIT",
    "TIMELINE_EVENT",
    "BehavioralEventWriter",
    "TimelineEventWriter",
    "event_id",
    "occurrence_problem",
]

TIMELINE_EVENT = "timeline_event"
BEHAVIORAL_EVENT = "behavioral_event"
TIMELINE_BATCH_LIMIT = 100
BEHAVIORAL_BATCH_LIMIT = 500
TIMELINE_AUTH_REMEDY = (
    "HubSpot timeline events are created with the OAuth token of the public app that owns the "
    "event template: set auth.method: oauth with that app's client_id, client_secret and the "
    "refresh_token from installing it in this portal (a private app token cannot create them; "
    "the developer API key only manages event templates)"
)
# HubSpot's limits on one custom event occurrence; a request over any of them fails. Batch size,
# property count and value lengths (section Limits):
# https://developers.hubspot.com/docs/api-reference/legacy/events/send-event-data/guide
# Event and property names, and the longer values of url/referrer/link properties:
# https://developers.hubspot.com/docs/api-reference/legacy/events/define-events/guide
EVENT_PROPERTIES_MAX = 50
EVENT_NAME_MAX = 50  # the internal name of an event or of one of its properties
EVENT_VALUE_MAX = 256
EVENT_URL_VALUE_MAX = 1024  # for a property whose name has url, referrer or link in it
_URL_WORDS = ("url", "referrer", "link")
_PROPERTY_NAME = re.compile(rf"[a-z][a-z0-9_]{{0,{EVENT_NAME_MAX - 1}}}")
_EVENT_NAME = re.compile(rf"pe[0-9]+_[a-z][a-z0-9_]{{0,{EVENT_NAME_MAX - 1}}}")  # pe<HubID>_<name>
# A fixed namespace: the same touch key gives the same event id in every process and release.
_NAMESPACE = uuid.UUID("6f1c9a52-3c1e-5e0b-9d43-1c0a7e1b5c2d")


def event_id(key: str) -> str:
    """The event id of the touch ``key``: stable, so a re-send is refused, not duplicated."""
    return f"closedloop-{uuid.uuid5(_NAMESPACE, key)}"


def occurrence_problem(payload: Mapping[str, Any]) -> str | None:
    """Why HubSpot would refuse this custom event occurrence under its documented limits."""
    name = payload.get("eventName")
    if isinstance(name, str) and not _EVENT_NAME.fullmatch(name):
        return (
            f"event name {name!r} is not a custom event's fully qualified name, pe<HubID>_<name> "
            f"(the name at most {EVENT_NAME_MAX} lowercase letters, digits and underscores): set "
            "the mapping's event.name to the event's fullyQualifiedName"
        )
    properties = payload.get("properties") or {}
    if len(properties) > EVENT_PROPERTIES_MAX:
        return (
            f"{len(properties)} properties; HubSpot takes at most {EVENT_PROPERTIES_MAX} "
            "properties per custom event occurrence: map fewer fields in the mapping"
        )
    for prop, value in properties.items():
        if not _PROPERTY_NAME.fullmatch(prop):
            return (
                f"property name {prop!r} is not a custom event property's internal name (a "
                f"lowercase letter, then lowercase letters, digits and underscores, at most "
                f"{EVENT_NAME_MAX} characters): name the mapping's field after the event "
                "property's internal name"
            )
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        longer = any(word in prop for word in _URL_WORDS)
        limit = EVENT_URL_VALUE_MAX if longer else EVENT_VALUE_MAX
        if len(text) > limit:
            return (
                f"property {prop} holds {len(text)} characters; HubSpot takes at most {limit} "
                f"characters in a custom event property"
                + (" whose name has url, referrer or link in it" if longer else "")
                + ": shorten it in the mapping (a truncate transform)"
            )
    return None


def _text(value: Any) -> str:
    # Timeline tokens are strings in HubSpot's model (it answers numbers as "3").
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, default=str)


# Refusals alike, with nothing accepted yet, after which a push stops as a config error.
ALL_REFUSED_AFTER = 10


class _Refusals:
    """Stops a push whose every event HubSpot refuses with one message (an event template or
    event name the portal lacks): halving would spend about two calls per event to learn it,
    and every touch would be dead-lettered for what is one mistake in the mapping."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.accepted = False
        self.alike: Counter[str] = Counter()

    def refused(self, message: str) -> None:
        self.alike[message] += 1
        if not self.accepted and self.alike[message] >= ALL_REFUSED_AFTER:
            raise ConfigError(
                f"HubSpot's rules refused the first {ALL_REFUSED_AFTER} {self.what} alike and "
                f"none was accepted: {message}; check the mapping's event section (template id "
                "or event name) and fields against the portal; nothing more was sent"
            )


def _no_contact(sink: str, touch: RenderedTouch) -> DeliveryResult:
    return DeliveryResult(
        touch.key,
        sink,
        False,
        error_code="NO_CONTACT",
        error_message=f"a HubSpot {touch.target} needs the contact; this touch has none",
    )


def _split(
    sink: str, touches: Sequence[RenderedTouch]
) -> tuple[dict[str, RenderedTouch], dict[str, DeliveryResult], list[RenderedTouch]]:
    """One touch per key (the first wins), the results of those without a contact, and the
    touches to send."""
    unique: dict[str, RenderedTouch] = {}
    for touch in touches:
        unique.setdefault(touch.key, touch)
    results = {t.key: _no_contact(sink, t) for t in unique.values() if not t.person_id}
    return unique, results, [t for t in unique.values() if t.person_id]


def _refused(sink: str, touch: RenderedTouch, failure: Failure) -> DeliveryResult:
    """A lone event HubSpot refused, with its message."""
    return DeliveryResult(
        touch.key,
        sink,
        False,
        error_code=failure.category or "VALIDATION_ERROR",
        error_message=failure.message,
    )


class TimelineEventWriter:
    """Writes rendered touches as timeline events of their template, keyed by the touch key."""

    def __init__(self, client: HubSpotClient, sink: str) -> None:
        self.client = client
        self.sink = sink
        self._refusals = _Refusals("timeline events")

    def push(self, touches: Sequence[RenderedTouch]) -> list[DeliveryResult]:
        """Create one event per distinct key (first wins); one result per key, in order."""
        if not self.client.uses_oauth:
            raise ConfigError(f"connection {self.sink!r}: {TIMELINE_AUTH_REMEDY}")
        unique, results, sendable = _split(self.sink, touches)
        self._refusals = _Refusals("timeline events")
        for chunk in chunks(sendable, TIMELINE_BATCH_LIMIT):
            self._send(chunk, results)
        return [results[key] for key in unique]

    def _input(self, touch: RenderedTouch) -> dict[str, Any]:
        body = {k: v for k, v in touch.payload.items() if v is not None}
        body["tokens"] = {
            str(k): _text(v) for k, v in (body.get("tokens") or {}).items() if v is not None
        }
        body["id"] = event_id(touch.key)
        body["objectId"] = str(touch.person_id)
        return body

    def _send(self, chunk: list[RenderedTouch], results: dict[str, DeliveryResult]) -> None:
        api = self.client.api("timeline_events")
        try:
            answer = self.client.call(
                "timeline events batch create",
                api.create_batch,
                {"inputs": [self._input(t) for t in chunk]},
                idempotent=True,  # the event ids make a repeat conflict, never duplicate
                raw_failures=True,
            )
        except CallError as exc:
            failure = exc.failure
            if failure.status not in (400, 404, 409):
                raise exc.error from None
            if len(chunk) == 1:
                touch = chunk[0]
                if failure.status == 409:
                    results[touch.key] = self._ok(touch.key, False)
                    self._refusals.accepted = True
                else:
                    self._refusals.refused(failure.message)
                    results[touch.key] = _refused(self.sink, touch, failure)
                return
            if failure.status == 409:
                # Which events exist is not said: each alone answers created or conflict.
                for touch in chunk:
                    self._send([touch], results)
                return
            # A 400 does not name the record: halve until the invalid ones stand alone.
            middle = len(chunk) // 2
            self._send(chunk[:middle], results)
            self._send(chunk[middle:], results)
            return
        created = {str(r.get("id")) for r in answer.get("results") or []}
        if created:
            self._refusals.accepted = True
        for touch in chunk:
            if event_id(touch.key) in created:
                results[touch.key] = self._ok(touch.key, True)
            elif len(chunk) > 1:
                self._send([touch], results)
            else:
                results[touch.key] = DeliveryResult(
                    touch.key,
                    self.sink,
                    False,
                    error_code="NOT_CREATED",
                    error_message="HubSpot answered the batch without this event or an error",
                )

    def _ok(self, key: str, created: bool) -> DeliveryResult:
        return DeliveryResult(key, self.sink, True, crm_id=event_id(key), created=created)


class BehavioralEventWriter:
    """Sends rendered touches as custom behavioral event occurrences, in batches."""

    def __init__(self, client: HubSpotClient, sink: str) -> None:
        self.client = client
        self.sink = sink
        self._refusals = _Refusals("behavioral events")

    def push(self, touches: Sequence[RenderedTouch]) -> list[DeliveryResult]:
        """Send one occurrence per distinct key; a touch whose outcome is unknown gets no result.

        A failure that is not about the records (auth, rate limit, outage) stops the sends: it
        is raised when nothing was sent yet, otherwise the results so far are returned so the
        engine confirms what was sent and never re-sends it.
        """
        unique, results, sendable = _split(self.sink, touches)
        self._refusals = _Refusals("behavioral events")
        for chunk in chunks(self._within_limits(sendable, results), BEHAVIORAL_BATCH_LIMIT):
            try:
                self._send(chunk, results)
            except ClosedloopError:
                if not any(r.ok for r in results.values()):
                    raise
                break
        return [results[key] for key in unique if key in results]

    def _within_limits(
        self, touches: list[RenderedTouch], results: dict[str, DeliveryResult]
    ) -> list[RenderedTouch]:
        """The touches within HubSpot's limits; each other one fails alone, with its reason."""
        within: list[RenderedTouch] = []
        for touch in touches:
            problem = occurrence_problem(touch.payload)
            if problem is None:
                within.append(touch)
                continue
            self._refusals.refused(problem)
            results[touch.key] = DeliveryResult(
                touch.key, self.sink, False, error_code="VALIDATION_ERROR", error_message=problem
            )
        return within

    def _input(self, touch: RenderedTouch) -> dict[str, Any]:
        body = {k: v for k, v in touch.payload.items() if v is not None}
        body["objectId"] = str(touch.person_id)
        body["uuid"] = str(uuid.uuid5(_NAMESPACE, touch.key))
        return body

    def _send(self, chunk: list[RenderedTouch], results: dict[str, DeliveryResult]) -> None:
        api = self.client.api("behavioral_events")
        try:
            self.client.call(
                "behavioral events batch send",
                api.send,
                {"inputs": [self._input(t) for t in chunk]},
                idempotent=False,  # a repeat's fate is not documented (see the module docstring)
                raw_failures=True,
            )
        except CallError as exc:
            failure = exc.failure
            if failure.status in (400, 404):
                if len(chunk) == 1:
                    touch = chunk[0]
                    self._refusals.refused(failure.message)
                    results[touch.key] = _refused(self.sink, touch, failure)
                    return
                # The batch was refused whole and the answer names no record: halve it.
                middle = len(chunk) // 2
                self._send(chunk[:middle], results)
                self._send(chunk[middle:], results)
                return
            if failure.applied_unknown:
                return  # maybe recorded: no results, the engine retries (at-least-once)
            raise exc.error from None
        self._refusals.accepted = True
        for touch in chunk:
            results[touch.key] = DeliveryResult(touch.key, self.sink, True, created=True)
