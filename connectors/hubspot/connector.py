"""The HubSpot connector: a ``Crm`` (engagements, contacts, change pulls) and an ``ActivitySource``.

``HubSpotConnector`` composes the parts, each owning one thing:

- ``client``: the SDK wiring, limits, retries and error translation (``client.py``, ``errors.py``);
- ``engagements``: exactly-once timeline writes keyed by the touch key (``engagements.py``);
- ``timeline`` / ``behavioral``: the optional event sinks (mapping targets ``timeline_event``,
  ``behavioral_event``; ``events.py``);
- ``people``: contacts by e-mail, upserts, lifecycle values (``identity.py``); the mapped
  person fields of existing contacts, read with property history and batch-updated
  (``personfields.py``);
- ``changes``: windowed change pulls under the search cap (``changes.py``);
- ``marketing``: e-mail events and form submissions as touches (``marketing.py``);
- ``check.py``: ``closedloop check hubspot [--fix]``.

Nothing vendor-typed leaves this package: every SDK and urllib3 exception becomes a closedloop
error in ``HubSpotClient.call``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from connectors.base import (
    CheckResult,
    Cursor,
    DeliveryResult,
    KeyedRecord,
    ListChange,
    OptOutResult,
    Page,
    Person,
    PersonSnapshot,
    PersonUpdate,
    RenderedTouch,
    Touch,
)
from connectors.errors import RecordRejected
from connectors.hubspot.changes import STREAMS, ChangePuller
from connectors.hubspot.check import TOUCH_KEY_SPEC, create_property, run_checks
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.engagements import ENGAGEMENT_TYPES, EngagementWriter
from connectors.hubspot.events import (
    BEHAVIORAL_EVENT,
    TIMELINE_EVENT,
    BehavioralEventWriter,
    TimelineEventWriter,
)
from connectors.hubspot.history import HISTORY_STREAMS
from connectors.hubspot.identity import Lifecycle, PeopleDirectory
from connectors.hubspot.marketing import MarketingSource
from connectors.hubspot.optout import check_owner, check_subscription, opt_out
from connectors.hubspot.personfields import read_fields, update_fields
from connectors.hubspot.schema import describe_fields
from connectors.hubspot.settings import HubSpotSettings
from connectors.ratelimit import Clock

__all__ = ["HubSpotConnector"]

# Record ids per list-membership call; HubSpot documents no lower cap, and recycle runs are small.
LIST_CHUNK = 1_000


class HubSpotConnector:
    """One HubSpot portal as closedloop sees it, named ``connection_name`` in touch keys."""

    # Change streams of property history, pulled by the dispositions pipeline before people.
    history_streams = tuple(HISTORY_STREAMS)
    # Every stream pull_changes accepts (pipelines skip the ones a CRM does not have).
    change_streams = tuple(STREAMS)

    def __init__(
        self,
        connection_name: str,
        settings: HubSpotSettings,
        *,
        clock: Clock | None = None,
        lifecycle: Lifecycle | None = None,
    ) -> None:
        self.name = connection_name
        self.settings = settings
        self.client = HubSpotClient(settings, clock=clock)
        self.engagements = EngagementWriter(
            self.client,
            connection_name,
            settings.touch_key_property,
            settings.search_settle_seconds,
            self._create_key_property,
        )
        self.timeline = TimelineEventWriter(self.client, connection_name)
        self.behavioral = BehavioralEventWriter(self.client, connection_name)
        self.people = PeopleDirectory(self.client, connection_name, lifecycle)
        self.changes = ChangePuller(self.client, connection_name)
        self.marketing = MarketingSource(self.client, connection_name, settings)

    @property
    def calls(self) -> int:
        """HTTP calls this connector has made (429 answers and retries included)."""
        return self.client.calls

    def include_reason_fields(self, names: Sequence[str]) -> None:
        """Also pull these contact properties (a mapping's ``lifecycle.reason_field`` /
        ``reason_fields``) with each contact and from property history, so the dispositions
        pipeline records why sales disqualified or recycled."""
        wanted = (*self.changes.reason_properties, *names)
        self.changes.reason_properties = tuple(dict.fromkeys(wanted))

    def use_lifecycle(self, lifecycle: Lifecycle | None) -> None:
        """Translate shared stage names through this mapping lifecycle in ``create_people``."""
        self.people.lifecycle = lifecycle

    def _create_key_property(self, object_type: str) -> None:
        """Create the touch-key property on ``object_type`` as ``check --fix`` would (the
        engagement writer calls this when HubSpot refuses notes for lacking it)."""
        create_property(self.client, object_type, self.settings.touch_key_property, TOUCH_KEY_SPEC)

    def close(self) -> None:
        """Release the HTTP connections."""
        self.client.close()

    def describe_fields(self, objects: Iterable[str]) -> dict[str, list[dict[str, Any]] | None]:
        """The portal's own properties of ``objects`` (see ``schema``), for mapping checks."""
        return describe_fields(self.client, objects)

    def __enter__(self) -> HubSpotConnector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- checks -------------------------------------------------------------------------------

    def check(self) -> list[CheckResult]:
        """Token, scopes and the custom properties (the touch key among them); never raises."""
        return run_checks(self.client, self.settings.touch_key_property)

    def check_and_fix(self) -> list[CheckResult]:
        """Like ``check``, creating the missing custom properties first."""
        return run_checks(self.client, self.settings.touch_key_property, fix=True)

    # -- Crm ----------------------------------------------------------------------------------

    def resolve_people(self, emails: Sequence[str]) -> dict[str, Person]:
        """Contacts by lower-cased e-mail (100 per call) with their primary company."""
        return self.people.resolve(emails)

    def create_people(self, people: Sequence[Person]) -> list[Person]:
        """Create (or update) contacts by e-mail through batch upsert (100 per call); those
        HubSpot refuses are in ``last_rejections`` afterwards."""
        return self.people.create(people)

    def read_person_fields(
        self, people: Sequence[Person], fields: Sequence[str], history: Sequence[str] = ()
    ) -> dict[str, PersonSnapshot]:
        """The current ``fields`` of these contacts by id, with the property-history time of
        each ``history`` field (``personfields``)."""
        ids = [p.external_id for p in people if p.external_id]
        return read_fields(self.client, ids, fields, history) if ids else {}

    def update_people(self, updates: Sequence[PersonUpdate]) -> list[RecordRejected]:
        """Write property values on existing contacts (batch update, 100 per call); returns
        the refusals keyed by e-mail."""
        _, refused, _ = update_fields(self.client, updates)
        return refused

    def opt_out(self, people: Sequence[Person], subscription: str = "all") -> list[OptOutResult]:
        """Unsubscribe the people from all email or one subscription type; never subscribes
        anyone (``optout.opt_out``)."""
        return opt_out(self.client, people, subscription)

    def check_owner(self, kind: str, value: str) -> CheckResult:
        """Whether the mapping's owner of created contacts exists (``kind``: hubspot_owner_id,
        the one HubSpot has)."""
        assert kind == "hubspot_owner_id", kind
        return check_owner(self.client, value)

    def check_opt_out(self, subscription: str) -> CheckResult:
        """Whether the mapping's opt-out subscription type exists."""
        return check_subscription(self.client, subscription)

    @property
    def last_rejections(self) -> list[RecordRejected]:
        """The people the last ``create_people`` could not write, keyed by e-mail."""
        return self.people.last_rejections

    def push_touches(self, touches: Sequence[RenderedTouch]) -> list[DeliveryResult]:
        """Write each touch to its target: engagements and timeline events exactly once per
        touch key, behavioral events at least once (see ``engagements`` and ``events``)."""
        writers = {TIMELINE_EVENT: self.timeline.push, BEHAVIORAL_EVENT: self.behavioral.push}
        groups: dict[str, list[RenderedTouch]] = {}
        for touch in touches:
            sink = touch.target if touch.target in writers else "engagement"
            groups.setdefault(sink, []).append(touch)
        if len(groups) == 1 and "engagement" in groups:
            return self.engagements.push(touches)
        by_key: dict[str, DeliveryResult] = {}
        # Behavioral events last: they are the one sink a re-send can duplicate, so nothing
        # raised after them may discard their results.
        for sink in ("engagement", TIMELINE_EVENT, BEHAVIORAL_EVENT):
            if sink in groups:
                push = writers.get(sink, self.engagements.push)
                by_key.update((r.key, r) for r in push(groups[sink]))
        order = dict.fromkeys(t.key for t in touches)
        return [by_key[key] for key in order if key in by_key]

    # -- KeyedSink: what the portal holds per touch key ----------------------------------------

    def keyed_targets(self, targets: Iterable[str]) -> list[str]:
        """The targets written as engagements (timeline and behavioral events carry no key)."""
        return sorted({t for t in targets if t.lower() in ENGAGEMENT_TYPES})

    def scan_keyed(self, target: str) -> Iterator[list[KeyedRecord]]:
        """Engagements of ``target`` carrying a touch key, newest first (200 per search)."""
        object_type = ENGAGEMENT_TYPES[target.lower()]
        return self.engagements.scan(object_type, target)

    def pull_changes(self, stream: str, cursor: Cursor, until: datetime) -> Iterator[Page[Any]]:
        """Records of ``stream`` (people, accounts, opportunities, contact_roles, owners,
        people_history, opportunity_history)."""
        return self.changes.pull(stream, cursor, until)

    def add_to_list(self, list_id: str, record_ids: Sequence[str]) -> ListChange[str]:
        """Add contacts to a MANUAL or SNAPSHOT list (``PUT /crm/v3/lists/{id}/memberships/add``).

        Adding a member again is a no-op in HubSpot, so the call is retried like a read. Ids
        HubSpot reports missing (no such record) come back as skipped; ids already on the list
        are neither changed nor skipped.
        """
        api = self.client.api("list_memberships")
        unique = list(dict.fromkeys(str(i) for i in record_ids))
        changed: list[str] = []
        skipped: list[RecordRejected] = []
        for start in range(0, len(unique), LIST_CHUNK):
            chunk = unique[start : start + LIST_CHUNK]
            body = self.client.call(
                "list membership add", api.add, str(list_id), chunk, idempotent=True
            )
            changed.extend(str(i) for i in body.get("recordsIdsAdded") or [])
            for missing in body.get("recordIdsMissing") or []:
                skipped.append(
                    RecordRejected(
                        f"HubSpot has no contact {missing} to add to list {list_id}",
                        code="missing",
                        key=str(missing),
                    )
                )
        return ListChange[str](changed, skipped)

    # -- ActivitySource -----------------------------------------------------------------------

    def pull_touches(self, cursor: Cursor, until: datetime) -> Iterator[Page[Touch]]:
        """Marketing e-mail events and form submissions as touches (see ``marketing``)."""
        return self.marketing.pull(cursor, until)
