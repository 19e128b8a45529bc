"""Unreadable Marketo activities are refused, one by one, while the pull reads on.

Against the Marketo emulator over loopback HTTP, with malformed activities planted by its test
hook (``MarketoStore.plant_activity``): what Marketo's Swagger ``Activity`` requires
(``activityDate`` a date-time, ``activityTypeId`` and ``leadId`` integers, ``marketoGUID`` or
``id``) decides what is refused, through the REST activity pages and the bulk export alike.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from connectors.base import Cursor, Touch
from connectors.errors import RecordRejected
from connectors.marketo.activities import parse_bulk_csv
from connectors.marketo.settings import MarketoSettings
from connectors.marketo.source import MarketoSource
from sandbox import credentials
from sandbox.server import SandboxServer

GOOD = 40


def _settings(server: SandboxServer, path: str) -> MarketoSettings:
    return MarketoSettings.model_validate(
        {
            "base_url": server.marketo_url,
            "client_id": credentials.MARKETO_CLIENT_ID,
            "client_secret": credentials.MARKETO_CLIENT_SECRET,
            "bulk_backfill_days": None if path == "rest" else 1,
            "bulk_poll_interval_s": 0.01,
            "initial_lookback_days": 3,
        }
    )


class Instance:
    """An empty Marketo instance with ``GOOD`` activities of one lead over the last two days."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.store = server.store("marketo")
        self.now = self.store.clock.advance(0)  # frozen: the pull's until is exact
        with self.store.lock:
            self.lead = self.store.add_lead({"email": "ann@poison.example"}, self.now)
            start = self.now - timedelta(days=2)
            made = [
                self.store.add_activity(self.lead, 10, start + timedelta(minutes=n))
                for n in range(GOOD)
            ]
        self.good = [f"marketo:{a['marketoGUID']}" for a in made]

    def activity(self, **fields: Any) -> dict[str, Any]:
        """A well-formed REST activity, then ``fields`` changed (None removes a field)."""
        record: dict[str, Any] = {
            "id": 77_000_001,
            "marketoGUID": "guid-poison",
            "leadId": self.lead,
            "activityDate": "2026-01-01T00:00:00Z",
            "activityTypeId": 10,
            "primaryAttributeValueId": 5,
            "primaryAttributeValue": "Newsletter",
            "attributes": [],
        }
        record.update(fields)
        return {k: v for k, v in record.items() if v is not None}

    def plant(self, activity: Any, minutes_ago: int) -> None:
        with self.store.lock:
            self.store.plant_activity(activity, self.now - timedelta(minutes=minutes_ago))

    def pull(
        self, path: str, cursor: Cursor | None = None, until: datetime | None = None
    ) -> tuple[list[Touch], list[RecordRejected], Cursor]:
        touches: list[Touch] = []
        rejects: list[RecordRejected] = []
        last = cursor or Cursor()
        with MarketoSource("marketo", _settings(self.server, path)) as source:
            for page in source.pull_touches(last, until or self.now):
                touches.extend(page.records)
                rejects.extend(page.rejects)
                last = page.cursor
        return touches, rejects, last


@pytest.fixture
def instance(sandbox_factory: Callable[..., SandboxServer]) -> Instance:
    return Instance(sandbox_factory(seed=None))


def _dated(instance: Instance, minutes_ago: int) -> str:
    moment = instance.now - timedelta(minutes=minutes_ago)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("path", ["rest", "bulk"])
def test_each_kind_of_unreadable_activity_is_refused_with_its_code_and_payload(
    instance: Instance, path: str
) -> None:
    # Each in its place in time (the unreadable date: where Marketo would list it).
    minutes_ago = {"BAD_DATE": 30, "NO_ID": 60, "BAD_TYPE": 50, "BAD_LEAD_ID": 40}
    planted = {
        "BAD_DATE": instance.activity(marketoGUID="g-date", activityDate="yesterday"),
        "NO_ID": instance.activity(marketoGUID=None, id=None, activityDate=_dated(instance, 60)),
        "BAD_TYPE": instance.activity(
            marketoGUID="g-type", activityTypeId="open", activityDate=_dated(instance, 50)
        ),
        "BAD_LEAD_ID": instance.activity(
            marketoGUID="g-lead", leadId=None, activityDate=_dated(instance, 40)
        ),
    }
    for code, activity in planted.items():
        instance.plant(activity, minutes_ago=minutes_ago[code])

    touches, rejects, cursor = instance.pull(path)

    assert sorted(t.key for t in touches) == sorted(instance.good)
    by_code = {r.code: r for r in rejects}
    assert sorted(by_code) == sorted(planted)
    assert len(rejects) == len(planted)
    for code, reject in by_code.items():
        expected = planted[code]
        payload = reject.payload or {}
        if path == "rest":
            assert payload == expected
        else:  # the bulk file carries the export's columns, as text
            assert payload.get("marketoGUID", "") == expected.get("marketoGUID", "")
    assert by_code["BAD_DATE"].key == "marketo:g-date"
    assert "'yesterday'" in str(by_code["BAD_DATE"])
    assert by_code["BAD_LEAD_ID"].key == "marketo:g-lead"
    no_id = by_code["NO_ID"].key or ""
    assert no_id.startswith("marketo:raw-")
    # REST pages are read up to the newest readable time (a refusal moves the cursor as a touch
    # would); a bulk export window is read whole, up to its end.
    assert cursor.value == (_dated(instance, 40) if path == "rest" else _dated(instance, 0))


def test_a_result_item_that_is_no_object_is_refused_and_the_page_read_on(
    instance: Instance,
) -> None:
    instance.plant("<activity/>", minutes_ago=90)

    touches, rejects, _ = instance.pull("rest")

    assert len(touches) == GOOD
    [reject] = rejects
    assert reject.code == "NOT_AN_OBJECT"
    assert reject.payload == {"activity": "<activity/>"}


def test_a_refused_activity_at_the_cursors_second_is_not_refused_again_by_the_next_pull(
    instance: Instance,
) -> None:
    at = instance.now - timedelta(minutes=5)
    instance.plant(
        instance.activity(marketoGUID="g-edge", leadId="n/a", activityDate=_dated(instance, 5)),
        minutes_ago=5,
    )

    _, first, cursor = instance.pull("rest", until=at)
    _, second, _ = instance.pull("rest", cursor=cursor)

    assert [r.key for r in first] == ["marketo:g-edge"]
    assert cursor.value == at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "marketo:g-edge" in cursor.boundary_keys
    assert second == []


def test_a_byte_that_is_not_utf8_in_a_bulk_export_spoils_only_its_own_value() -> None:
    content = (
        b"marketoGUID,leadId,activityDate,activityTypeId,primaryAttributeValue,attributes\n"
        b"g-1,7,2026-01-02T03:04:05Z,10,M\xfcller newsletter,{}\n"
        b"g-2,7,2026-01-02T03:04:06Z,10,Spring newsletter,{}\n"
    )

    rows = list(parse_bulk_csv(content))

    assert [r["marketoGUID"] for r in rows] == ["g-1", "g-2"]
    assert rows[0]["primaryAttributeValue"] == "M\udcfcller newsletter"
    assert rows[1]["primaryAttributeValue"] == "Spring newsletter"


def test_an_activity_dated_after_the_pull_but_listed_among_older_ones_hides_none_of_them(
    instance: Instance,
) -> None:
    # Marketo lists activities by time; one out of order must not end the read of its page.
    instance.plant(
        instance.activity(marketoGUID="g-future", activityDate="2999-01-01T00:00:00Z"),
        minutes_ago=60 * 48 - 10,  # after the 10th good one, before the 11th
    )

    touches, rejects, _ = instance.pull("rest")

    assert sorted(t.key for t in touches) == sorted(instance.good)
    assert rejects == []
