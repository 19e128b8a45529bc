"""The Marketo emulator's store: one instance's leads, activities, lists and exports.

``MarketoStore`` holds the data (seeded from the world or entered by tests) and answers each
read and export request with Marketo's JSON (``marketo_errors``: ``MarketoError`` carries
Marketo's string codes, ``HttpError`` its few HTTP-level errors). Its access tokens and call
limits are ``marketo_limits.CallLimits``. The HTTP side, what Marketo does around every call, is
``sandbox.marketo``.
"""

from __future__ import annotations

import base64
import bisect
import csv
import hashlib
import io
import itertools
import json
import threading
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.hubspot_clock import StoreClock, to_ms
from sandbox.marketo_errors import HttpError, MarketoError
from sandbox.marketo_limits import MARKETO_TZ, SCOPE, CallLimits
from sandbox.marketo_schema import ACTIVITY_TYPES, KIND_TO_TYPE, LEAD_FIELDS
from sandbox.world import World

__all__ = [
    "EXPORT_COLUMNS",
    "SCOPE",
    "HttpError",
    "MarketoError",
    "MarketoStore",
    "encode_token",
    "parse_ids",
    "parse_time",
]

# Limits below: Adobe's Marketo Engage developer docs and Swagger (docs/vendor-behaviour.md).
# https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/activities
MAX_TYPES_PER_CALL = 10
MAX_PAGE = 300
MAX_LEAD_IDS = 30
# https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/leads
MAX_FILTER_MATCHES = 1000
# Get Leads by Filter Type: the standard fields that may be a filterType (plus custom string,
# email and integer fields, of which the sandbox has none); other known fields are 1011.
FILTER_TYPES = frozenset({"email", "id", "sfdcLeadId"})
# From 2026-12-30, activities filtered by a static list of 10,000+ leads fail with 1003.
LIST_FILTER_MAX_LEADS = 10_000
LIST_FILTER_LIMIT_FROM = datetime(2026, 12, 30, tzinfo=UTC)
# Get Export Activity Jobs filters on these (the docs spell the status Canceled and Cancelled).
_JOB_STATUSES = frozenset(
    {"created", "queued", "processing", "canceled", "cancelled", "completed", "failed"}
)
EXPORT_COLUMNS = (
    "marketoGUID",
    "leadId",
    "activityDate",
    "activityTypeId",
    "campaignId",
    "primaryAttributeValueId",
    "primaryAttributeValue",
    "attributes",
)


_EVENT_CHANNELS = ("webinar", "event", "trade_show")


def _asset_time(moment: datetime) -> str:
    # The asset API writes times as 2015-05-21T22:45:13Z+0000.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ+0000")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise MarketoError("1003", f"Invalid value '{text}' for {name}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def encode_token(since_ms: int, skip: int) -> str:
    raw = f"{since_ms}:{skip}".encode()
    return base64.b32encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> tuple[int, int]:
    try:
        padded = token + "=" * (-len(token) % 8)
        since, skip = base64.b32decode(padded).decode().split(":")
        return int(since), int(skip)
    except (ValueError, UnicodeDecodeError):
        raise MarketoError("1003", "Invalid value for nextPageToken") from None


def parse_ids(raw: str | None, name: str) -> list[int]:
    if not raw:
        return []
    try:
        return [int(v) for v in raw.split(",") if v.strip()]
    except ValueError:
        raise MarketoError("1003", f"Invalid value for {name}: '{raw}'") from None


def _batch_size(params: dict[str, str]) -> int:
    raw = params.get("batchSize") or str(MAX_PAGE)
    if not raw.isdigit():
        raise MarketoError("1003", f"Invalid value '{raw}' for batchSize")
    return int(raw)


def _page(items: list[Any], params: dict[str, str]) -> tuple[list[Any], dict[str, Any]]:
    """One page of a position-paged result (``batchSize`` at most 300, ``nextPageToken``)."""
    start = _decode_token(params["nextPageToken"])[1] if params.get("nextPageToken") else 0
    batch = min(_batch_size(params), MAX_PAGE)
    body: dict[str, Any] = {}
    if start + batch < len(items):
        body["moreResult"] = True
        body["nextPageToken"] = encode_token(0, start + batch)
    return items[start : start + batch], body


class MarketoStore(CallLimits):
    """One emulated Marketo instance: leads, activities, static lists, exports, tokens, limits.

    Tests may change ``rate_max``/``rate_window_s`` (606), ``daily_quota`` (607),
    ``max_concurrent`` (615), ``token_lifetime_s`` (602), ``page_slice`` (activity pages) and
    the bulk export limits (``export_queue_limit``, ``export_max_processing``,
    ``export_daily_bytes``).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clock = StoreClock()
        self.token_lifetime_s = 3600.0
        self.rate_max = 100
        self.rate_window_s = 20.0
        self.daily_quota = 50_000
        self.max_concurrent = 10
        self.page_slice = timedelta(days=7)
        self.export_queue_limit = 10
        self.export_max_processing = 2
        self.export_daily_bytes = 500 * 1024 * 1024
        self._guard = threading.Lock()
        self._tokens: dict[str, float] = {}
        self._current: str | None = None
        self._calls: deque[float] = deque()
        self._daily = 0
        self.in_flight = 0
        self._requests = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        """Forget every lead, activity, list, export and token."""
        with self.lock:
            self.leads: dict[int, dict[str, Any]] = {}
            self._by_email: dict[str, list[int]] = {}
            self.activities: list[dict[str, Any]] = []
            self._dates: list[int] = []
            self.lists: dict[int, dict[str, Any]] = {}
            self.members: dict[int, set[int]] = {}
            self.exports: dict[str, dict[str, Any]] = {}
            self._exported: dict[str, int] = {}  # Central-time day -> bytes of files finished
            self.lead_ids: dict[str, int] = {}
            self.program_ids: dict[str, int] = {}
            # Program id -> the asset API's program (GET /rest/asset/v1/programs.json).
            self.programs: dict[int, dict[str, Any]] = {}
            self._next_lead = 1000
            self._next_activity = 500_000
        with self._guard:
            self._tokens.clear()
            self._current = None
            self._calls.clear()
            self._daily = 0

    # -------------------------------------------------------------- data entry
    def add_lead(self, fields: dict[str, Any], created: datetime | None = None) -> int:
        """Create a lead (ids are ints, as in Marketo) and return its id."""
        moment = created or self.clock.now()
        self._next_lead += 1
        lead_id = self._next_lead
        lead = {"id": lead_id, **fields, "createdAt": _iso(moment), "updatedAt": _iso(moment)}
        self.leads[lead_id] = lead
        email = str(fields.get("email") or "").lower()
        if email:
            self._by_email.setdefault(email, []).append(lead_id)
        return lead_id

    def add_activity(
        self,
        lead_id: int,
        type_id: int,
        when: datetime | None = None,
        *,
        primary: tuple[int, str] = (0, ""),
        attributes: dict[str, Any] | None = None,
        campaign_id: int | None = None,
    ) -> dict[str, Any]:
        """Record one activity (at the store clock's now unless ``when``) and return it."""
        moment = when or self.clock.now()
        self._next_activity += 1
        activity: dict[str, Any] = {
            "id": self._next_activity,
            "marketoGUID": str(self._next_activity),
            "leadId": lead_id,
            "activityDate": _iso(moment),
            "activityTypeId": type_id,
            "primaryAttributeValueId": primary[0],
            "primaryAttributeValue": primary[1],
            "attributes": [{"name": k, "value": v} for k, v in (attributes or {}).items()],
        }
        if campaign_id is not None:
            activity["campaignId"] = campaign_id
        stamp = to_ms(moment)
        at = bisect.bisect_right(self._dates, stamp)
        self._dates.insert(at, stamp)
        self.activities.insert(at, activity)
        return activity

    def clear_activities(self) -> None:
        """Forget every activity and export, keeping leads and lists (benchmarks run several
        scenarios on the same leads)."""
        with self.lock:
            self.activities.clear()
            self._dates.clear()
            self.exports.clear()
            self._exported.clear()

    def plant_activity(self, activity: Any, at: datetime) -> None:
        """Test hook: serve ``activity`` exactly as given (malformed on purpose: no marketoGUID,
        an unreadable activityDate, a NUL in a value ...) among the activities of time ``at``.

        The store never makes such a record itself. It is read by type like any other
        (``activityTypeId``, when it has a readable one, else by every request) and placed at
        ``at`` whatever its own ``activityDate`` says, so it comes in order with its neighbours.
        Callers hold ``lock``.
        """
        stamp = to_ms(at)
        index = bisect.bisect_right(self._dates, stamp)
        self._dates.insert(index, stamp)
        self.activities.insert(index, activity)

    def add_list(self, name: str, program: str = "") -> int:
        """Create a static list and return its id."""
        list_id = 1000 + len(self.lists) + 1
        stamp = _iso(self.clock.now())
        self.lists[list_id] = {
            "id": list_id,
            "name": name,
            "description": "",
            "programName": program,
            "workspaceName": "Default",
            "createdAt": stamp,
            "updatedAt": stamp,
        }
        self.members[list_id] = set()
        return list_id

    def load_world(self, world: World) -> None:
        """Replace the content with ``world``: people as leads, activities, programs, lists."""
        self.reset()
        self.clock.rebase(world.now)
        with self.lock:
            for campaign in world.campaigns:
                program_id = 2000 + len(self.program_ids) + 1
                self.program_ids[campaign.id] = program_id
                self.programs[program_id] = {
                    "id": program_id,
                    "name": campaign.name,
                    "description": "",
                    "createdAt": _asset_time(campaign.start_date),
                    "updatedAt": _asset_time(campaign.start_date),
                    "url": f"https://app-sandbox.marketo.com/#PG{program_id}A1",
                    "type": "event" if campaign.channel in _EVENT_CHANNELS else "program",
                    "channel": campaign.channel,
                    "folder": {"type": "Folder", "value": 19, "folderName": "Marketing"},
                    "status": "",
                    "workspace": "Default",
                }
            originals: dict[str, int] = {}
            for person in world.people:
                email = person.email.lower()
                if person.duplicate_of is not None and email in originals:
                    self.lead_ids[person.id] = originals[email]
                    continue
                lead_id = self.add_lead(
                    {
                        "email": person.email,
                        "firstName": person.first_name,
                        "lastName": person.last_name,
                        "company": person.company,
                        "title": person.title,
                        "leadScore": person.score,
                        "leadSource": person.lead_source,
                        "leadStatus": person.lead_status,
                    },
                    person.created_at,
                )
                self.leads[lead_id]["updatedAt"] = _iso(person.updated_at)
                self.lead_ids[person.id] = lead_id
                originals.setdefault(email, lead_id)
            self._load_activities(world)

    def _load_activities(self, world: World) -> None:
        names = {c.id: c.name for c in world.campaigns}
        assets: dict[tuple[int, str], int] = {}
        lists: dict[str, int] = {"nurture": self.add_list("Nurture - Recycled Leads")}
        for activity in sorted(world.activities, key=lambda a: (a.occurred_at, a.id)):
            lead_id = self.lead_ids.get(activity.person_id)
            if lead_id is None:
                continue
            type_id = KIND_TO_TYPE.get(activity.kind, 46)
            program = self.program_ids.get(activity.campaign_id or "")
            attributes: dict[str, Any] = {
                k: v for k, v in activity.attributes.items() if k != "status"
            }
            if type_id == 104 and program is not None:
                primary = (program, names[activity.campaign_id or ""])
                attributes["New Status"] = activity.attributes.get("status", "Registered")
                attributes["Success"] = activity.kind != "webinar_registered"
            else:
                asset_id = assets.setdefault((type_id, activity.asset), 3000 + len(assets) + 1)
                primary = (asset_id, activity.asset)
            if type_id == 46:
                attributes["Description"] = activity.kind
            self.add_activity(
                lead_id,
                type_id,
                activity.occurred_at,
                primary=primary,
                attributes=attributes,
                campaign_id=program,
            )
            if activity.campaign_id:
                name = names[activity.campaign_id]
                list_id = lists.get(name) or lists.setdefault(
                    name, self.add_list(f"{name} - Members", name)
                )
                self.members[list_id].add(lead_id)

    def dump(self) -> dict[str, Any]:
        """JSON-able state: leads, activity count by type, lists with members, exports."""
        with self.lock:
            by_type: dict[str, int] = {}
            for activity in self.activities:
                key = str(_field(activity, "activityTypeId"))
                by_type[key] = by_type.get(key, 0) + 1
            return {
                "leads": {str(k): dict(v) for k, v in self.leads.items()},
                "activities": len(self.activities),
                "activities_by_type": by_type,
                "lists": {
                    str(k): {**v, "members": sorted(self.members[k])} for k, v in self.lists.items()
                },
                "exports": {k: v["status"] for k, v in self.exports.items()},
                "world_ids": {"leads": dict(self.lead_ids), "programs": dict(self.program_ids)},
            }

    # ------------------------------------------------------------------- reads
    def activities_page(self, params: dict[str, str]) -> dict[str, Any]:
        """GET /rest/v1/activities.json: one time slice per page, at most 300 activities."""
        token = params.get("nextPageToken")
        if not token:
            raise MarketoError("701", "nextPageToken cannot be blank")
        wanted, lead_ids, members, batch = self._activity_filters(params)
        since_ms, skip = _decode_token(token)
        now_ms = to_ms(self.clock.now())
        end_ms = min(since_ms + int(self.page_slice.total_seconds() * 1000), now_ms + 1)
        found: list[dict[str, Any]] = []
        more_in_slice = False
        matched = 0
        lo = bisect.bisect_left(self._dates, since_ms)
        hi = bisect.bisect_left(self._dates, end_ms)
        for activity in itertools.islice(self.activities, lo, hi):
            if not _served(activity, wanted):
                continue
            if lead_ids and _field(activity, "leadId") not in lead_ids:
                continue
            if members is not None and _field(activity, "leadId") not in members:
                continue
            matched += 1
            if matched <= skip:
                continue
            if len(found) == batch:
                more_in_slice = True
                break
            found.append(activity)
        if more_in_slice:
            next_token, more = encode_token(since_ms, skip + batch), True
        else:
            next_token, more = encode_token(max(end_ms, since_ms), 0), end_ms <= now_ms
        body: dict[str, Any] = {"nextPageToken": next_token, "moreResult": more}
        if found:
            body["result"] = found
        return body

    def _activity_filters(
        self, params: dict[str, str]
    ) -> tuple[set[int], set[int], set[int] | None, int]:
        """Validated activity type ids, lead ids, list members and batch size of a page request."""
        type_ids = parse_ids(params.get("activityTypeIds"), "activityTypeIds")
        if not type_ids:
            raise MarketoError("701", "activityTypeIds cannot be blank")
        if len(type_ids) > MAX_TYPES_PER_CALL:
            raise MarketoError(
                "1003", f"Too many activityTypeIds: at most {MAX_TYPES_PER_CALL} are allowed"
            )
        unknown = [t for t in type_ids if t not in ACTIVITY_TYPES]
        if unknown:
            raise MarketoError("1003", f"Invalid activityTypeIds: {unknown}")
        lead_ids = set(parse_ids(params.get("leadIds"), "leadIds"))
        if len(lead_ids) > MAX_LEAD_IDS:
            raise MarketoError("1003", f"Too many leadIds: at most {MAX_LEAD_IDS} are allowed")
        batch = _batch_size(params)
        if not 1 <= batch <= MAX_PAGE:
            raise MarketoError("1003", f"Invalid batchSize {batch}: the maximum is {MAX_PAGE}")
        members: set[int] | None = None
        if params.get("listId"):
            list_id = parse_ids(params["listId"], "listId")[0]
            if list_id not in self.lists:
                raise MarketoError("1013", "Static list not found")
            members = self.members[list_id]
            if len(members) >= LIST_FILTER_MAX_LEADS and self.clock.now() >= LIST_FILTER_LIMIT_FROM:
                raise MarketoError(
                    "1003",
                    f"Static list {list_id} has {LIST_FILTER_MAX_LEADS} or more leads; "
                    "scope the call with leadIds instead of listId",
                )
        return set(type_ids), lead_ids, members, batch

    def leads_by_filter(self, params: dict[str, str]) -> dict[str, Any]:
        """GET /rest/v1/leads.json?filterType=&filterValues=&fields= (at most 300 values)."""
        filter_type = params.get("filterType")
        raw_values = params.get("filterValues")
        if not filter_type:
            raise MarketoError("701", "filterType cannot be blank")
        if not raw_values:
            raise MarketoError("701", "filterValues cannot be blank")
        values = [v.strip() for v in raw_values.split(",") if v.strip()]
        if len(values) > MAX_PAGE:
            raise MarketoError("1003", f"Too many filterValues: at most {MAX_PAGE} are allowed")
        fields = [f for f in (params.get("fields") or "").split(",") if f] or list(LEAD_FIELDS[:6])
        unknown = [f for f in fields if f not in LEAD_FIELDS]
        if unknown:
            raise MarketoError("1006", f"Field '{unknown[0]}' not found")
        if filter_type == "email":
            ids = [i for v in values for i in self._by_email.get(v.lower(), [])]
        elif filter_type == "id":
            ids = [int(v) for v in values if v.isdigit() and int(v) in self.leads]
        elif filter_type in FILTER_TYPES:
            wanted = set(values)
            ids = [i for i, lead in self.leads.items() if str(lead.get(filter_type)) in wanted]
        elif filter_type in LEAD_FIELDS:
            raise MarketoError("1011", f"Field '{filter_type}' not supported")
        else:
            raise MarketoError("1003", f"Invalid filterType '{filter_type}'")
        if len(ids) > MAX_FILTER_MATCHES:
            raise MarketoError("1003", "Too many results match the filter")
        page, body = _page(ids, params)
        body["result"] = [
            {"id": i, **{f: self.leads[i].get(f) for f in fields if f != "id"}} for i in page
        ]
        return body

    def sync_crm_campaigns(self, campaign_ids: dict[str, tuple[str, str]]) -> None:
        """Salesforce Campaign Sync: world campaign id -> (Salesforce campaign id, name) of the
        programs synced to a CRM campaign; the asset API then gives them sfdcId/sfdcName."""
        with self.lock:
            for world_id, (sfdc_id, sfdc_name) in campaign_ids.items():
                program = self.programs.get(self.program_ids.get(world_id, -1))
                if program is not None:
                    program["sfdcId"] = sfdc_id
                    program["sfdcName"] = sfdc_name

    def programs_page(self, params: dict[str, str]) -> dict[str, Any]:
        """GET /rest/asset/v1/programs.json: ``maxReturn`` (default 20, at most 200) programs
        from ``offset``; past the end, no result and the "no assets" warning."""
        try:
            limit = int(params.get("maxReturn") or 20)
            offset = int(params.get("offset") or 0)
        except ValueError:
            raise MarketoError("701", "maxReturn and offset must be whole numbers") from None
        if not 1 <= limit <= 200:
            raise MarketoError("701", "maxReturn cannot be larger than 200")
        page = [dict(p) for _id, p in sorted(self.programs.items())][offset : offset + limit]
        if not page:
            return {"warnings": ["No assets found for the given search criteria."]}
        return {"result": page}

    def lists_page(self, params: dict[str, str]) -> dict[str, Any]:
        """GET /rest/v1/lists.json with id/name filters."""
        ids = set(parse_ids(params.get("id"), "id"))
        names = {n for n in (params.get("name") or "").split(",") if n}
        result = [
            meta
            for list_id, meta in sorted(self.lists.items())
            if (not ids or list_id in ids) and (not names or meta["name"] in names)
        ]
        page, body = _page(result, params)
        body["result"] = page
        return body

    def change_list(self, list_id: int, lead_ids: list[int], *, add: bool) -> dict[str, Any]:
        """Add or remove leads (at most 300) on a static list; per-lead status and reasons."""
        if list_id not in self.lists:
            raise MarketoError("1013", "Static list not found")
        if not lead_ids:
            raise MarketoError("701", "input cannot be blank")
        if len(lead_ids) > MAX_PAGE:
            raise MarketoError("1003", f"Too many leads: at most {MAX_PAGE} per request")
        members = self.members[list_id]
        result: list[dict[str, Any]] = []
        for lead_id in lead_ids:
            if lead_id not in self.leads:
                result.append(self._skipped(lead_id, "1004", "Lead not found"))
            elif add:
                members.add(lead_id)
                result.append({"id": lead_id, "status": "added"})
            elif lead_id in members:
                members.discard(lead_id)
                result.append({"id": lead_id, "status": "removed"})
            else:
                result.append(self._skipped(lead_id, "1015", "Lead not in list"))
        return {"result": result}

    @staticmethod
    def _skipped(lead_id: int, code: str, message: str) -> dict[str, Any]:
        return {"id": lead_id, "status": "skipped", "reasons": [{"code": code, "message": message}]}

    def list_members(self, list_id: int, params: dict[str, str]) -> dict[str, Any]:
        """GET /rest/v1/lists/{id}/leads.json: members in id order, 300 a page at most."""
        if list_id not in self.lists:
            raise MarketoError("1013", "Static list not found")
        page, body = _page(sorted(self.members[list_id]), params)
        body["result"] = [{"id": i, "email": self.leads[i].get("email")} for i in page]
        return body

    # ------------------------------------------------------------------ exports
    def create_export(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /bulk/v1/activities/export/create.json (createdAt range of at most 31 days)."""
        spec = body.get("filter")
        if not isinstance(spec, dict) or not isinstance(spec.get("createdAt"), dict):
            raise MarketoError("1003", "createdAt filter is required")
        created = spec["createdAt"]
        start = parse_time(str(created.get("startAt", "")), "startAt")
        end = parse_time(str(created.get("endAt", "")), "endAt")
        if end < start:
            raise MarketoError("1003", "endAt must be after startAt")
        if end - start > timedelta(days=31):
            raise MarketoError("1003", "createdAt date range cannot exceed 31 days")
        type_ids = spec.get("activityTypeIds") or []
        if any(t not in ACTIVITY_TYPES for t in type_ids):
            raise MarketoError("1003", f"Invalid activityTypeIds: {type_ids}")
        fields = body.get("fields") or list(EXPORT_COLUMNS)
        bad = [f for f in fields if f not in EXPORT_COLUMNS and f != "actionResult"]
        if bad:
            raise MarketoError("1003", f"Invalid fields: {bad}")
        fmt = body.get("format", "CSV")
        if fmt not in ("CSV", "TSV", "SSV"):
            raise MarketoError("1003", f"Invalid format '{fmt}'")
        self._check_export_quota()
        export_id = str(uuid.uuid4())
        job = {
            "exportId": export_id,
            "format": fmt,
            "status": "Created",
            "createdAt": _iso(self.clock.now()),
            "_start": to_ms(start),
            "_end": to_ms(end),
            "_types": set(type_ids),
            "_fields": fields,
        }
        self.exports[export_id] = job
        return self._job(job)

    @staticmethod
    def _job(job: dict[str, Any]) -> dict[str, Any]:
        return {"result": [{k: v for k, v in job.items() if not k.startswith("_")}]}

    def _find_job(self, export_id: str) -> dict[str, Any]:
        job = self.exports.get(export_id)
        if job is None:
            raise MarketoError("1003", f"Export id {export_id} not found")
        return job

    def _exported_today(self) -> int:
        return self._exported.get(self._export_day(), 0)

    def _export_day(self) -> str:
        return self.clock.now().astimezone(MARKETO_TZ).date().isoformat()

    def _check_export_quota(self) -> None:
        if self._exported_today() >= self.export_daily_bytes:
            raise MarketoError("1029", "Export daily quota exceeded")

    def _count(self, *statuses: str) -> int:
        return sum(1 for j in self.exports.values() if j["status"] in statuses)

    def enqueue_export(self, export_id: str) -> dict[str, Any]:
        """POST .../{exportId}/enqueue.json: a Created job joins a queue of at most 10."""
        job = self._find_job(export_id)
        if job["status"] in ("Queued", "Processing"):
            raise MarketoError("1029", "Job already queued")
        if job["status"] != "Created":
            raise MarketoError("1003", f"Job is in {job['status']} state and cannot be enqueued")
        self._check_export_quota()
        if self._count("Queued", "Processing") >= self.export_queue_limit:
            raise MarketoError("1029", "Too many jobs in queue")
        job["status"] = "Queued"
        job["queuedAt"] = _iso(self.clock.now())
        return self._job(job)

    def export_status(self, export_id: str) -> dict[str, Any]:
        """GET .../{exportId}/status.json: each poll moves Queued -> Processing (when fewer
        than ``export_max_processing`` jobs process) -> Completed."""
        job = self._find_job(export_id)
        if job["status"] == "Queued":
            if self._count("Processing") < self.export_max_processing:
                job["status"] = "Processing"
                job["startedAt"] = _iso(self.clock.now())
        elif job["status"] == "Processing":
            content = self._render_file(job)
            job["status"] = "Completed"
            job["finishedAt"] = _iso(self.clock.now())
            job["fileSize"] = len(content)
            job["fileChecksum"] = "sha256:" + hashlib.sha256(content).hexdigest()
            job["_file"] = content
            day = self._export_day()
            self._exported[day] = self._exported.get(day, 0) + len(content)
        return self._job(job)

    def list_exports(self, params: dict[str, str]) -> dict[str, Any]:
        """GET /bulk/v1/activities/export.json: the jobs of the past 7 days, by ``status``."""
        wanted = {v.strip().casefold() for v in params.get("status", "").split(",") if v.strip()}
        if wanted - _JOB_STATUSES:
            raise MarketoError("1003", f"Invalid value for status: '{params['status']}'")
        if {"canceled", "cancelled"} & wanted:
            wanted |= {"canceled", "cancelled"}
        since = _iso(self.clock.now() - timedelta(days=7))
        jobs = [
            self._job(job)["result"][0]
            for job in self.exports.values()
            if job["createdAt"] >= since and (not wanted or job["status"].casefold() in wanted)
        ]
        page, body = _page(jobs, params)
        return {"result": page, **body}

    def cancel_export(self, export_id: str) -> dict[str, Any]:
        """POST .../{exportId}/cancel.json."""
        job = self._find_job(export_id)
        if job["status"] in ("Completed", "Failed"):
            raise MarketoError("1003", f"Job is {job['status']} and cannot be canceled")
        job["status"] = "Canceled"
        return self._job(job)

    def export_file(self, export_id: str) -> bytes:
        """GET .../{exportId}/file.json: the file of a Completed job (else a plain-text 404)."""
        job = self.exports.get(export_id)
        if job is None or job["status"] != "Completed":
            raise HttpError(404, f"Export file {export_id} not found")
        content: bytes = job["_file"]
        return content

    def _render_file(self, job: dict[str, Any]) -> bytes:
        delimiter = {"CSV": ",", "TSV": "\t", "SSV": ";"}[job["format"]]
        out = io.StringIO()
        writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
        fields: list[str] = job["_fields"]
        writer.writerow(fields)
        lo = bisect.bisect_left(self._dates, job["_start"])
        hi = bisect.bisect_right(self._dates, job["_end"])
        rows = 0
        for activity in itertools.islice(self.activities, lo, hi):
            if job["_types"] and not _served(activity, job["_types"]):
                continue
            row = []
            for name in fields:
                value = _field(activity, name, "")
                if name == "attributes":
                    value = json.dumps(value if value != "" else [])
                row.append("" if value is None else value)
            writer.writerow(row)
            rows += 1
        job["numberOfRecords"] = rows
        return out.getvalue().encode()


def _field(activity: Any, name: str, default: Any = None) -> Any:
    """A field of a stored activity (a planted one may be no object at all)."""
    return activity.get(name, default) if isinstance(activity, dict) else default


def _served(activity: Any, wanted: set[int]) -> bool:
    """Whether a request for the types ``wanted`` gets ``activity``: one of a planted activity
    whose type cannot be read goes to every request, so the client meets it."""
    type_id = _field(activity, "activityTypeId")
    if isinstance(type_id, int) and not isinstance(type_id, bool):
        return type_id in wanted
    return True
