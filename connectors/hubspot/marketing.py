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
Touch keys are stable: ``email:<event id>`` and ``form:<conversion id>``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import Cursor, Page, Touch, TouchKind
from connectors.errors import ConfigError
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
        submissions = self._submissions(forms, lo, hi)
        step = int(_WINDOW / timedelta(milliseconds=1))
        start = lo
        current = cursor
        while start <= hi:
            end = min(hi, start + step - 1)
            touches = self._email_events(start, end)
            touches += [t for t in submissions if start <= _ms(t.occurred_at) <= end]
            kept = [
                t
                for t in touches
                if not (
                    cursor.value is not None
                    and _ms(t.occurred_at) == lo
                    and t.key in cursor.boundary_keys
                )
            ]
            kept.sort(key=lambda t: (t.occurred_at, t.key))
            value = _iso_ms(end)
            at_end = frozenset(t.key for t in kept if _ms(t.occurred_at) == end)
            if value == current.value:
                current = Cursor(value, current.boundary_keys | at_end)
            else:
                current = Cursor(value, at_end)
            yield Page(kept, current)
            start = end + 1

    # -- e-mail events ------------------------------------------------------------------------

    def _email_events(self, lo: int, hi: int) -> list[Touch]:
        touches: list[Touch] = []
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
                touch = self._email_touch(event)
                if touch is not None:
                    touches.append(touch)
            offset = answer.get("offset")
            if not answer.get("hasMore") or not offset:
                return touches

    def _email_touch(self, event: Mapping[str, Any]) -> Touch | None:
        kind_name = str(event.get("type") or "")
        kind = EMAIL_KINDS.get(kind_name)
        created = event.get("created")
        if kind is None or kind_name not in self.event_types or not isinstance(created, int):
            return None
        recipient = event.get("recipient")
        campaign = event.get("emailCampaignId")
        attributes: dict[str, Any] = {"event_type": kind_name}
        for name in ("url", "category", "appName"):
            if event.get(name) is not None:
                attributes[name] = event[name]
        return Touch(
            source=self.source,
            source_id=f"email:{event.get('id')}",
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

    def _submissions(self, forms: Mapping[str, str], lo: int, hi: int) -> list[Touch]:
        touches: list[Touch] = []
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
                    submitted = row.get("submittedAt")
                    if not isinstance(submitted, int):
                        continue
                    if submitted < lo:
                        older = True  # newest first: the rest is older still
                        break
                    if submitted <= hi:
                        touches.append(self._form_touch(form_id, name, row, submitted))
                after = ((answer.get("paging") or {}).get("next") or {}).get("after")
                if older or not after:
                    break
        return touches

    def _form_touch(self, form_id: str, name: str, row: Mapping[str, Any], submitted: int) -> Touch:
        values = {
            str(v.get("name")): v.get("value")
            for v in row.get("values") or []
            if isinstance(v, Mapping)
        }
        email = values.get("email")
        return Touch(
            source=self.source,
            source_id=f"form:{row.get('conversionId')}",
            kind=TouchKind.FORM_FILL,
            occurred_at=datetime.fromtimestamp(submitted / 1000, UTC),
            email=email.strip().lower() if isinstance(email, str) and email.strip() else None,
            channel="web",
            asset=name,
            attributes={"form_id": form_id, "page_url": row.get("pageUrl")},
            raw=dict(row),
        )
