"""HubSpot as a marketing source (HubSpot -> Salesforce): e-mail events and form fills as touches.

None of these endpoints has a typed API in hubspot-api-client, so they go through
``HubSpotClient.request`` (the SDK's generic ``ApiClient.call_api``, on the same pool, auth and
limits as every other call):

- ``GET /email/public/v1/events``: marketing e-mail events (SENT, DELIVERED, OPEN, CLICK,
  BOUNCE, STATUSCHANGE = unsubscribe), filtered by ``startTimestamp``/``endTimestamp``, newest
  first, paged with ``offset``/``hasMore`` (1,000 per page). All types come in one stream and
  are filtered here: one call per 1,000 events instead of one per type.
- ``GET /marketing/v3/forms`` and ``GET /form-integrations/v1/submissions/forms/{guid}``: the
  portal's forms and each form's submissions (newest first, 50 a page, read until older than
  the range).

Page views are not offered: HubSpot's public API has no per-contact page-view feed (analytics
only report aggregates), so a HubSpot source cannot produce ``page_view`` touches.

Because both feeds come newest first, the range ``(cursor, until]`` is read in windows of
``_WINDOW`` (30 days), oldest window first; a window's touches are sorted by time (then key) and
yielded with the cursor at the window's end, so a stopped pull resumes at the last whole window.
Touch keys are stable: ``email:<event id>`` and ``form:<conversion id>``. A form fill carries
the contact fields the form asked for (firstname, lastname, company, jobtitle, phone, country)
as ``attributes["person"]``, for the mapping's people fields; e-mail events name only the
recipient.

A record that cannot be read never stops a pull: it goes into its window's ``Page.rejects``
(a dead letter of stage ``pull`` with the raw record) and the rest flows. HubSpot documents an
e-mail event as an object whose ``id`` (a string) and ``created`` (milliseconds since the
epoch) identify it, and a submission as an object with a ``conversionId`` and a ``submittedAt``
in milliseconds (https://developers.hubspot.com/docs/api-reference/legacy/email-analytics-v1/guide,
https://developers.hubspot.com/docs/api-reference/legacy/marketing/forms/v1/get-form-integrations-v1-submissions-forms-form_guid).
Codes: NOT_AN_OBJECT, NO_ID, BAD_DATE. Events of a type not pulled are passed over unread, and
so are events without a ``type``: HubSpot's UNBOUNCE events have none.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import Cursor, Page, Touch, TouchKind, source_reject
from connectors.errors import ConfigError, RecordRejected
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.identity import parse_hubspot_time
from connectors.hubspot.settings import HubSpotSettings

__all__ = ["EMAIL_KINDS", "MarketingSource"]

EMAIL_KINDS: dict[str, TouchKind] = {
    "SENT": TouchKind.EMAIL_SENT,
    "DELIVERED": TouchKind.EMAIL_DELIVERED,
    "OPEN": TouchKind.EMAIL_OPEN,
    "CLICK": TouchKind.EMAIL_CLICK,
    "BOUNCE": TouchKind.EMAIL_BOUNCE,
    "STATUSCHANGE": TouchKind.EMAIL_UNSUBSCRIBE,
}
# Reading window: a month of a busy portal's events is a few pages; a quiet one costs 1 call.
_WINDOW = timedelta(days=30)
_EVENTS_PAGE = 1000
_FORMS_PAGE = 50
_SUBMISSIONS_PAGE = 50
# A record refused at a known time (ms), or at none (its time is what cannot be read).
_Refusal = tuple[int | None, RecordRejected]


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _iso_ms(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class MarketingSource:
    """E-mail events and form submissions of one portal, pulled as touches."""

    def __init__(self, client: HubSpotClient, source: str, settings: HubSpotSettings) -> None:
        self.client = client
        self.source = source
        self.settings = settings
        self.event_types = frozenset(settings.email_event_types)

    def pull(self, cursor: Cursor, until: datetime) -> Iterator[Page[Touch]]:
        """Touches after ``cursor`` (minus its boundary keys) up to and including ``until``."""
        hi = _ms(until.astimezone(UTC))
        if cursor.value:
            moment = parse_hubspot_time(cursor.value)
            if moment is None:
                raise ConfigError(f"unreadable HubSpot cursor value {cursor.value!r}")
            lo = _ms(moment)
        else:
            lo = hi - self.settings.initial_lookback_days * 86_400_000
        if lo > hi:
            return
        forms = self._forms()
        submissions, refused_forms = self._submissions(forms, lo, hi)
        # Submissions whose time is unreadable go with the first window.
        undated = [r for when, r in refused_forms if when is None]
        step = int(_WINDOW / timedelta(milliseconds=1))
        start = lo
        current = cursor

        def seen_before(when: int, key: str | None) -> bool:
            return cursor.value is not None and when == lo and key in cursor.boundary_keys

        while start <= hi:
            end = min(hi, start + step - 1)
            touches, refused = self._email_events(start, end)
            touches += [t for t in submissions if start <= _ms(t.occurred_at) <= end]
            refused += [(w, r) for w, r in refused_forms if w is not None and start <= w <= end]
            kept = [t for t in touches if not seen_before(_ms(t.occurred_at), t.key)]
            kept.sort(key=lambda t: (t.occurred_at, t.key))
            rejects = [r for w, r in refused if w is None or not seen_before(w, r.key)]
            rejects += undated
            undated = []
            value = _iso_ms(end)
            at_end = frozenset(t.key for t in kept if _ms(t.occurred_at) == end) | frozenset(
                r.key for w, r in refused if w == end and r.key
            )
            if value == current.value:
                current = Cursor(value, current.boundary_keys | at_end)
            else:
                current = Cursor(value, at_end)
            yield Page(kept, current, rejects)
            start = end + 1

    # -- e-mail events ------------------------------------------------------------------------

    def _email_events(self, lo: int, hi: int) -> tuple[list[Touch], list[_Refusal]]:
        touches: list[Touch] = []
        refused: list[_Refusal] = []
        offset: str | None = None
        while True:
            query: list[tuple[str, Any]] = [
                ("startTimestamp", lo),
                ("endTimestamp", hi),
                ("limit", _EVENTS_PAGE),
            ]
            if offset:
                query.append(("offset", offset))
            answer = self.client.request(
                "email events", "GET", "/email/public/v1/events", query=query
            )
            for event in answer.get("events") or []:
                try:
                    touch = self._email_touch(event)
                except RecordRejected as exc:
                    created = event.get("created") if isinstance(event, Mapping) else None
                    refused.append((created if _is_ms(created) else None, exc))
                    continue
                if touch is not None:
                    touches.append(touch)
            offset = answer.get("offset")
            if not answer.get("hasMore") or not offset:
                return touches, refused

    def _email_touch(self, event: Any) -> Touch | None:
        """The touch of one e-mail event; None for a type not pulled; RecordRejected if the
        event cannot be read."""
        if not isinstance(event, Mapping):
            raise self._refuse("email", {"event": event}, None, "NOT_AN_OBJECT", "is no object")
        kind_name = event.get("type")
        kind = EMAIL_KINDS.get(kind_name) if isinstance(kind_name, str) else None
        if kind is None or kind_name not in self.event_types:
            return None
        event_id = _text_id(event.get("id"))
        if event_id is None:
            raise self._refuse("email", event, None, "NO_ID", "has no id")
        created = event.get("created")
        if not _is_ms(created):
            raise self._refuse(
                "email", event, event_id, "BAD_DATE", "has no created time in milliseconds"
            )
        assert isinstance(created, int)
        recipient = event.get("recipient")
        campaign = event.get("emailCampaignId")
        attributes: dict[str, Any] = {"event_type": kind_name}
        for name in ("url", "category", "appName"):
            if event.get(name) is not None:
                attributes[name] = event[name]
        return Touch(
            source=self.source,
            source_id=f"email:{event_id}",
            kind=kind,
            occurred_at=datetime.fromtimestamp(created / 1000, UTC),
            email=recipient.strip().lower() if isinstance(recipient, str) else None,
            campaign=str(campaign) if campaign is not None else None,
            channel="email",
            asset=str(event["url"]) if kind is TouchKind.EMAIL_CLICK and event.get("url") else None,
            attributes=attributes,
            raw=dict(event),
        )

    # -- forms --------------------------------------------------------------------------------

    def _forms(self) -> dict[str, str]:
        """Form GUID -> name, for the configured forms (or every form)."""
        forms: dict[str, str] = {}
        after: str | None = None
        while True:
            query: list[tuple[str, Any]] = [("limit", _FORMS_PAGE)]
            if after:
                query.append(("after", after))
            answer = self.client.request("forms list", "GET", "/marketing/v3/forms", query=query)
            for form in answer.get("results") or []:
                forms[str(form.get("id"))] = str(form.get("name") or form.get("id"))
            after = ((answer.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
        if self.settings.form_ids is not None:
            unknown = [f for f in self.settings.form_ids if f not in forms]
            if unknown:
                raise ConfigError(
                    f"HubSpot has no form {', '.join(unknown)}: fix form_ids (Marketing > Forms, "
                    "the GUID in the form's URL)"
                )
            return {f: forms[f] for f in self.settings.form_ids}
        return forms

    def _refuse(
        self, kind: str, record: Mapping[str, Any], own_id: str | None, code: str, what: str
    ) -> RecordRejected:
        noun = "e-mail event" if kind == "email" else "form submission"
        named = f"HubSpot {noun} {own_id}" if own_id else f"a HubSpot {noun}"
        source_id = f"{kind}:{own_id}" if own_id else None
        return source_reject(self.source, code, f"{named} {what}", record, source_id)

    def _submissions(
        self, forms: Mapping[str, str], lo: int, hi: int
    ) -> tuple[list[Touch], list[_Refusal]]:
        touches: list[Touch] = []
        refused: list[_Refusal] = []
        for form_id, name in forms.items():
            after: str | None = None
            while True:
                query: list[tuple[str, Any]] = [("limit", _SUBMISSIONS_PAGE)]
                if after:
                    query.append(("after", after))
                answer = self.client.request(
                    "form submissions",
                    "GET",
                    f"/form-integrations/v1/submissions/forms/{form_id}",
                    query=query,
                )
                older = False
                for row in answer.get("results") or []:
                    if not isinstance(row, Mapping):
                        record = {"form_id": form_id, "submission": row}
                        problem = "is no object"
                        refused.append(
                            (None, self._refuse("form", record, None, "NOT_AN_OBJECT", problem))
                        )
                        continue
                    submitted = row.get("submittedAt")
                    conversion = _text_id(row.get("conversionId"))
                    if not _is_ms(submitted):
                        problem = "has no submittedAt time in milliseconds"
                        refused.append(
                            (None, self._refuse("form", row, conversion, "BAD_DATE", problem))
                        )
                        continue
                    assert isinstance(submitted, int)
                    if submitted < lo:
                        older = True  # newest first: the rest is older still
                        break
                    if submitted > hi:
                        continue
                    if conversion is None:
                        rejected = self._refuse("form", row, None, "NO_ID", "has no conversionId")
                        refused.append((submitted, rejected))
                        continue
                    touches.append(self._form_touch(form_id, name, row, submitted, conversion))
                after = ((answer.get("paging") or {}).get("next") or {}).get("after")
                if older or not after:
                    break
        return touches, refused

    def _form_touch(
        self, form_id: str, name: str, row: Mapping[str, Any], submitted: int, conversion: str
    ) -> Touch:
        values = {
            str(v.get("name")): v.get("value")
            for v in row.get("values") or []
            if isinstance(v, Mapping)
        }
        email = values.get("email")
        # The form's contact fields (HubSpot contact property names) as the touch's person.
        person = {
            name: value.strip()
            for prop, name in _FORM_PERSON.items()
            if isinstance(value := values.get(prop), str) and value.strip()
        }
        attributes: dict[str, Any] = {"form_id": form_id, "page_url": row.get("pageUrl")}
        if person:
            person["updated_at"] = datetime.fromtimestamp(submitted / 1000, UTC).isoformat()
            attributes["person"] = person
        return Touch(
            source=self.source,
            source_id=f"form:{conversion}",
            kind=TouchKind.FORM_FILL,
            occurred_at=datetime.fromtimestamp(submitted / 1000, UTC),
            email=email.strip().lower() if isinstance(email, str) and email.strip() else None,
            channel="web",
            asset=name,
            attributes=attributes,
            raw=dict(row),
        )


# Form field (a HubSpot contact property) -> the person field a touch carries.
_FORM_PERSON = {
    "firstname": "first_name",
    "lastname": "last_name",
    "company": "company",
    "jobtitle": "title",
    "phone": "phone",
    "country": "country",
}


def _is_ms(value: Any) -> bool:
    """Whether ``value`` is a time in milliseconds HubSpot would send (an integer, not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _text_id(value: Any) -> str | None:
    """A record id as text, or None when there is none (missing, empty, not text or number)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text or None
