"""Marketo activities as touches: the activity-type table, type resolution, and record parsing.

Standard Marketo activity types and the touch kind each becomes (ids are the same on every
instance; names are matched case-insensitively, ids win when given)::

    id   Marketo activity type           TouchKind           channel
    1    Visit Webpage                   page_view, or ad_click (*)             web
    2    Fill Out Form                   form_fill           web
    6    Send Email                      email_sent          email
    7    Email Delivered                 email_delivered     email
    8    Email Bounced                   email_bounce        email
    27   Email Bounced Soft              email_bounce        email
    9    Unsubscribe Email               email_unsubscribe   email
    10   Open Email                      email_open          email
    11   Click Email                     email_click         email
    22   Change Score                    score_change        scoring
    24   Add to List                     list_import         list
    104  Change Status in Progression    by the new program status (below)      program

(*) Marketo has no ad-click activity: a click on a paid ad arrives as a visit of the landing
page with the ad network's parameters. A visit whose query string ("Query Parameters" attribute
or the page URL) carries a click id (gclid, msclkid, fbclid, li_fat_id, ttclid) or a paid
``utm_medium`` (cpc, ppc, paid, paid_social, paidsocial, display) is an ``ad_click``.
"Click Link" (a click on a link of a tracked page) is not in the table: name it in
``activity_types`` to pull it as ``other``.

"Change Status in Progression" (program membership) carries the new status: "Registered" is
``webinar_registered``; "Attended" / "Attended On-demand" is ``webinar_attended`` for a webinar
program (the activity has a "Webinar URL", or the program's name says webinar) and
``event_attended`` otherwise; "Visited Booth" is ``event_attended``; "Downloaded" or
"Content Downloaded" is ``content_download``; other statuses are ``other``.

Any other type pulled (named in ``activity_types``) becomes ``other`` with its raw payload.

An activity that cannot be read is refused, never guessed at (``activity_time`` and
``activity_head`` raise ``RecordRejected`` with the raw activity, which the pull passes on as a
dead letter). Per Adobe's Swagger ``Activity`` definition an activity is an object with
``activityDate`` (an ISO 8601 date-time), ``activityTypeId`` and ``leadId`` (integers), and
``marketoGUID`` (its unique id; the integer ``id`` is the fallback of older instances). Codes:

    NOT_AN_OBJECT   the result item is not a JSON object
    BAD_DATE        activityDate missing or not an ISO 8601 date-time
    NO_ID           neither marketoGUID nor id
    BAD_TYPE        activityTypeId missing or not an integer
    BAD_LEAD_ID     leadId missing or not an integer
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO
from urllib.parse import parse_qsl

from connectors.base import Touch, TouchKind, source_reject
from connectors.errors import ConfigError, RecordRejected

__all__ = [
    "PROGRAM_STATUS_TYPE",
    "STANDARD_TYPES",
    "ActivityHead",
    "ActivityType",
    "activity_head",
    "activity_key",
    "activity_time",
    "bulk_csv_dates",
    "format_marketo_time",
    "kind_of",
    "parse_bulk_csv",
    "parse_marketo_time",
    "refuse_activity",
    "resolve_types",
    "to_touch",
]


@dataclass(frozen=True, slots=True)
class StandardType:
    """A standard activity type we map: its id, its kind (None: decided per record) and channel."""

    type_id: int
    kind: TouchKind | None
    channel: str


PROGRAM_STATUS_TYPE = "change status in progression"

STANDARD_TYPES: dict[str, StandardType] = {
    "visit webpage": StandardType(1, TouchKind.PAGE_VIEW, "web"),
    "fill out form": StandardType(2, TouchKind.FORM_FILL, "web"),
    "send email": StandardType(6, TouchKind.EMAIL_SENT, "email"),
    "email delivered": StandardType(7, TouchKind.EMAIL_DELIVERED, "email"),
    "email bounced": StandardType(8, TouchKind.EMAIL_BOUNCE, "email"),
    "email bounced soft": StandardType(27, TouchKind.EMAIL_BOUNCE, "email"),
    "unsubscribe email": StandardType(9, TouchKind.EMAIL_UNSUBSCRIBE, "email"),
    "open email": StandardType(10, TouchKind.EMAIL_OPEN, "email"),
    "click email": StandardType(11, TouchKind.EMAIL_CLICK, "email"),
    "change score": StandardType(22, TouchKind.SCORE_CHANGE, "scoring"),
    "add to list": StandardType(24, TouchKind.LIST_IMPORT, "list"),
    PROGRAM_STATUS_TYPE: StandardType(104, None, "program"),
}

_CLICK_IDS = frozenset({"gclid", "msclkid", "fbclid", "li_fat_id", "ttclid"})
_PAID_MEDIA = frozenset({"cpc", "ppc", "paid", "paid_social", "paidsocial", "display"})
_ATTENDED = frozenset({"attended", "attended on-demand", "attended on demand"})
_DOWNLOADED = frozenset({"downloaded", "content downloaded"})


@dataclass(frozen=True, slots=True)
class ActivityType:
    """An activity type of the instance (from ``/rest/v1/activities/types.json``)."""

    id: int
    name: str
    primary_attribute: str | None = None

    @property
    def standard(self) -> StandardType | None:
        """Our table's entry for this type, if it is one we map."""
        return STANDARD_TYPES.get(self.name.casefold())

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> ActivityType:
        """Build from one ``types.json`` result item."""
        primary = item.get("primaryAttribute")
        return cls(
            id=int(item["id"]),
            name=str(item["name"]),
            primary_attribute=str(primary["name"])
            if isinstance(primary, Mapping) and "name" in primary
            else None,
        )


def resolve_types(
    wanted: Sequence[str | int] | None, available: Iterable[ActivityType]
) -> list[ActivityType]:
    """The instance's types to pull: ``wanted`` names/ids, or every standard type we map.

    Unknown names or ids are a ConfigError listing all of them and what the instance offers.
    """
    types = list(available)
    by_id = {t.id: t for t in types}
    by_name = {t.name.casefold(): t for t in types}
    if wanted is None:
        chosen = [t for t in types if t.standard is not None]
        if not chosen:
            raise ConfigError(
                "the Marketo instance reports none of the standard activity types closedloop "
                "maps; set activity_types to the names or ids to pull"
            )
        return sorted(chosen, key=lambda t: t.id)
    found: dict[int, ActivityType] = {}
    missing: list[str] = []
    for item in wanted:
        text = str(item).strip()
        match = by_id.get(int(text)) if text.isdigit() else by_name.get(text.casefold())
        if match is None:
            missing.append(repr(item))
        else:
            found[match.id] = match
    if missing:
        offered = ", ".join(sorted(t.name for t in types)[:40])
        raise ConfigError(
            f"activity_types names unknown Marketo activity types: {', '.join(missing)}; "
            f"this instance offers: {offered}"
        )
    return sorted(found.values(), key=lambda t: t.id)


def parse_marketo_time(value: str) -> datetime:
    """A Marketo timestamp ("2024-05-01T10:00:00Z", "...+0000") as an aware UTC datetime."""
    moment = datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_marketo_time(moment: datetime) -> str:
    """An aware datetime in the ISO form Marketo accepts and returns ("...T10:00:00Z")."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _own_id(activity: Mapping[str, Any]) -> str | None:
    for name in ("marketoGUID", "id"):
        value = activity.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


def refuse_activity(source: str, activity: Any, code: str, reason: str) -> RecordRejected:
    """The dead letter of an unreadable activity: keyed by its id when it has one."""
    payload = activity if isinstance(activity, Mapping) else {"activity": activity}
    own = _own_id(activity) if isinstance(activity, Mapping) else None
    named = f"Marketo activity {own}" if own else "a Marketo activity"
    return source_reject(source, code, f"{named} {reason}", payload, own)


def activity_key(activity: Mapping[str, Any]) -> str:
    """The stable id of an activity: its marketoGUID, else its integer id."""
    own = _own_id(activity)
    if own is None:
        raise RecordRejected("Marketo activity has neither marketoGUID nor id", code="NO_ID")
    return own


def activity_time(source: str, activity: Any) -> datetime:
    """When an activity happened, or RecordRejected (NOT_AN_OBJECT, BAD_DATE)."""
    if not isinstance(activity, Mapping):
        raise refuse_activity(source, activity, "NOT_AN_OBJECT", "is not a JSON object")
    value = activity.get("activityDate")
    if not isinstance(value, str) or not value.strip():
        raise refuse_activity(source, activity, "BAD_DATE", "has no activityDate")
    try:
        return parse_marketo_time(value)
    except ValueError:
        shown = value if len(value) <= 40 else value[:37] + "..."
        raise refuse_activity(
            source, activity, "BAD_DATE", f"has an unreadable activityDate {shown!r}"
        ) from None


@dataclass(frozen=True, slots=True)
class ActivityHead:
    """What every activity must carry to become a touch: its id, type and lead."""

    key: str
    type_id: int
    lead_id: int


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 30:
        return int(value)
    return None


def activity_head(source: str, activity: Mapping[str, Any]) -> ActivityHead:
    """The id, type and lead of an activity, or RecordRejected (NO_ID, BAD_TYPE, BAD_LEAD_ID)."""
    own = _own_id(activity)
    if own is None:
        raise refuse_activity(source, activity, "NO_ID", "has neither marketoGUID nor id")
    type_id = _integer(activity.get("activityTypeId"))
    if type_id is None:
        raise refuse_activity(source, activity, "BAD_TYPE", "has no integer activityTypeId")
    lead_id = _integer(activity.get("leadId"))
    if lead_id is None:
        raise refuse_activity(source, activity, "BAD_LEAD_ID", "has no integer leadId")
    return ActivityHead(own, type_id, lead_id)


def _attributes(activity: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    items = activity.get("attributes")
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping) and "name" in item:
            values[str(item["name"])] = item.get("value")
    return values


def _is_paid_click(attributes: Mapping[str, Any], primary_value: str | None) -> bool:
    queries = [str(attributes.get("Query Parameters") or "")]
    for url in (attributes.get("Webpage URL"), primary_value):
        if isinstance(url, str) and "?" in url:
            queries.append(url.split("?", 1)[1])
    for query in queries:
        params = {k.casefold(): v.casefold() for k, v in parse_qsl(query)}
        if _CLICK_IDS & params.keys() or params.get("utm_medium") in _PAID_MEDIA:
            return True
    return False


def kind_of(
    activity_type: ActivityType, attributes: Mapping[str, Any], primary_value: str | None
) -> TouchKind:
    """The touch kind of one activity (program status changes look at the new status)."""
    standard = activity_type.standard
    if standard is None:
        return TouchKind.OTHER
    if standard.kind is TouchKind.PAGE_VIEW and _is_paid_click(attributes, primary_value):
        return TouchKind.AD_CLICK
    if standard.kind is not None:
        return standard.kind
    status = str(attributes.get("New Status") or attributes.get("new_status") or "").casefold()
    if status == "registered":
        return TouchKind.WEBINAR_REGISTERED
    if status in _ATTENDED:
        webinar = "Webinar URL" in attributes or "webinar" in (primary_value or "").casefold()
        return TouchKind.WEBINAR_ATTENDED if webinar else TouchKind.EVENT_ATTENDED
    if status == "visited booth":
        return TouchKind.EVENT_ATTENDED
    if status in _DOWNLOADED:
        return TouchKind.CONTENT_DOWNLOAD
    return TouchKind.OTHER


def to_touch(
    source: str,
    activity: Mapping[str, Any],
    activity_type: ActivityType,
    email: str | None,
) -> Touch:
    """One Marketo activity as a Touch; the raw activity is kept as pulled.

    RecordRejected (with the raw activity) when it lacks what every activity must carry.
    """
    occurred_at = activity_time(source, activity)
    head = activity_head(source, activity)
    attributes = _attributes(activity)
    primary = activity.get("primaryAttributeValue")
    primary_value = None if primary in (None, "") else str(primary)
    standard = activity_type.standard
    campaign = activity.get("campaignId")
    extra: dict[str, Any] = {"activity_type": activity_type.name, **attributes}
    if activity.get("primaryAttributeValueId") not in (None, ""):
        extra["primary_attribute_value_id"] = activity["primaryAttributeValueId"]
    return Touch(
        source=source,
        source_id=head.key,
        kind=kind_of(activity_type, attributes, primary_value),
        occurred_at=occurred_at,
        email=email,
        person_ref=str(head.lead_id),
        campaign=None if campaign in (None, "") else str(campaign),
        channel=standard.channel if standard else None,
        asset=primary_value,
        attributes=extra,
        raw=dict(activity),
    )


_BULK_INT_FIELDS = ("leadId", "activityTypeId", "campaignId", "primaryAttributeValueId")


def parse_bulk_csv(content: bytes | BinaryIO) -> Iterator[dict[str, Any]]:
    """Rows of a bulk activity export (CSV, the bytes or a file of them) as dicts shaped like
    REST activities, read row by row: a file is never held whole in memory.

    The export's ``attributes`` column holds the secondary attributes as a JSON object (or, in
    older exports, a list of name/value pairs); both become the REST ``attributes`` list. A byte
    that is not UTF-8 spoils only its own value (kept as a lone surrogate, which the ledger stores
    as U+FFFD, and as an escape in the raw payload), never the file. A quoted value may hold
    commas, quotes and line breaks (``newline=""``: the csv module splits the records).
    """
    stream = io.BytesIO(content) if isinstance(content, bytes) else content
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        yield from (_bulk_activity(row) for row in csv.DictReader(text))
    finally:
        text.detach()  # the caller's file stays open


def bulk_csv_dates(file: BinaryIO) -> Iterator[datetime | None]:
    """The ``activityDate`` of every row of a bulk export file (None: unreadable), without
    building the rows: a cheap pass, e.g. to learn whether the file is in time order."""
    text = io.TextIOWrapper(file, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        reader = csv.reader(text)
        header = next(reader, [])
        if "activityDate" not in header:
            return
        column = header.index("activityDate")
        for row in reader:
            try:
                yield parse_marketo_time(row[column])
            except (IndexError, ValueError):
                yield None
    finally:
        text.detach()


def _bulk_activity(row: Mapping[str | Any, Any]) -> dict[str, Any]:
    """One bulk export row as a REST-shaped activity (integers, ``attributes`` as a list)."""
    activity: dict[str, Any] = {k: v for k, v in row.items() if k is not None}
    for name in _BULK_INT_FIELDS:
        value = activity.get(name)
        if value not in (None, ""):
            with contextlib.suppress(ValueError):
                activity[name] = int(str(value))
        elif name in activity:
            activity[name] = None
    raw_attributes = activity.get("attributes")
    parsed: Any = None
    if raw_attributes not in (None, ""):
        try:
            parsed = json.loads(str(raw_attributes))
        except ValueError:
            parsed = None
    if isinstance(parsed, dict):
        activity["attributes"] = [{"name": k, "value": v} for k, v in parsed.items()]
    elif isinstance(parsed, list):
        activity["attributes"] = parsed
    else:
        activity["attributes"] = []
    return activity
