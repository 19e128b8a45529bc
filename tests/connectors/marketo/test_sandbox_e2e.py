"""The Marketo connector against the sandbox's Marketo emulator over real loopback HTTP.

Done-means of issue 7: pulling the seeded six months of activity returns exactly the seeded
activities (count and keys) in at most 1.05x the minimum number of calls. The minimum is
computed from the emulator's own store, independent of the connector:

    1 identity token + 1 activity types + 1 paging token
    + per group of at most 10 activity types, the pages the server must serve
    + ceil(distinct leads / 300) lead lookups

The emulator (like Marketo) cuts activity pages on time slices, so a group needs at least one
page per slice, empty or not, plus one per further 300 activities in a slice. With one slice
covering the whole range, this is the plain ceil(activities in the group / 300).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from connectors.base import Cursor, Touch
from connectors.errors import AuthError, RateLimited
from connectors.marketo.auth import MAX_RENEWALS
from connectors.marketo.settings import MarketoSettings
from connectors.marketo.source import MarketoSource
from connectors.ratelimit import ManualClock
from connectors.testing import KitSpec, connector_battery, drain_touches
from sandbox import credentials
from sandbox.server import SandboxServer
from sync.cli.config_cmd import SANDBOX_CONFIG

SIX_MONTHS = timedelta(days=183)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def when(activity: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(activity["activityDate"].replace("Z", "+00:00"))


@pytest.fixture
def store(sandbox: SandboxServer) -> Iterator[Any]:
    """The emulator's store, its clock frozen at the world's now; tunables restored after."""
    store = sandbox.store("marketo")
    saved = {name: getattr(store, name) for name in ("page_slice", "daily_quota", "rate_max")}
    store.clock.advance(0)  # freezes the clock where it stands
    yield store
    for name, value in saved.items():
        setattr(store, name, value)


def settings_for(sandbox: SandboxServer, **overrides: Any) -> MarketoSettings:
    values: dict[str, Any] = {
        "base_url": sandbox.marketo_url,
        "client_id": credentials.MARKETO_CLIENT_ID,
        "client_secret": credentials.MARKETO_CLIENT_SECRET,
        "bulk_backfill_days": None,
    }
    values.update(overrides)
    return MarketoSettings.model_validate(values)


def seeded(store: Any, since: datetime, until: datetime) -> list[dict[str, Any]]:
    return [a for a in store.activities if since <= when(a) <= until]


def minimum_calls(store: Any, groups: list[list[int]], since: datetime, now: datetime) -> int:
    """The fewest calls the emulator allows for this pull (see the module docstring)."""
    slice_ms = int(store.page_slice.total_seconds() * 1000)
    pages = 0
    for group in groups:
        stamps = sorted(ms(when(a)) for a in store.activities if a["activityTypeId"] in group)
        start = ms(since)
        while True:
            end = min(start + slice_ms, ms(now) + 1)
            in_slice = sum(1 for s in stamps if start <= s < end)
            pages += max(1, math.ceil(in_slice / 300))
            if end > ms(now):
                break
            start = end
    leads = {a["leadId"] for a in seeded(store, since, now)}
    return 3 + pages + math.ceil(len(leads) / 300)


def type_groups(source: MarketoSource) -> list[list[int]]:
    ids = [t.id for t in source.selected_types()]
    return [ids[i : i + 10] for i in range(0, len(ids), 10)]


def assert_exactly_seeded(touches: list[Touch], store: Any, since: datetime, now: datetime) -> None:
    expected = {f"marketo:{a['marketoGUID']}" for a in seeded(store, since, now)}
    assert len(touches) == len(expected)
    assert {t.key for t in touches} == expected


@pytest.mark.parametrize("one_slice", [True, False], ids=["one-slice", "weekly-slices"])
def test_pulling_six_months_returns_exactly_the_seeded_activities_in_near_minimum_calls(
    sandbox: SandboxServer, store: Any, one_slice: bool
) -> None:
    assert sandbox.world is not None
    if one_slice:
        store.page_slice = timedelta(days=3650)
    now = store.clock.now()
    since = now - SIX_MONTHS
    assert len(seeded(store, since, now)) == len(sandbox.world.activities)
    with MarketoSource("marketo", settings_for(sandbox)) as source:
        sandbox.state.reset_counters()
        touches, cursor = drain_touches(source, Cursor(since.isoformat()), now)
        calls = sandbox.state.total_calls("marketo")
        minimum = minimum_calls(store, type_groups(source), since, now)
    assert_exactly_seeded(touches, store, since, now)
    assert calls <= 1.05 * minimum, sandbox.state.counts("marketo")
    leads = store.leads
    assert all(t.email == leads[int(t.person_ref or 0)]["email"].lower() for t in touches)
    assert cursor.value is not None
    assert cursor.value <= now.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_pulling_in_two_runs_from_the_cursor_loses_and_repeats_nothing(
    sandbox: SandboxServer, store: Any
) -> None:
    now = store.clock.now()
    since = now - SIX_MONTHS
    middle = now - timedelta(days=60)
    with MarketoSource("marketo", settings_for(sandbox)) as source:
        first, cursor = drain_touches(source, Cursor(since.isoformat()), middle)
        second, _ = drain_touches(source, cursor, now)
    keys = [t.key for t in first + second]
    assert len(keys) == len(set(keys))
    assert_exactly_seeded(first + second, store, since, now)


def test_a_pull_survives_expired_tokens_rate_limits_and_server_errors(
    sandbox: SandboxServer, store: Any
) -> None:
    now = store.clock.now()
    since = now - SIX_MONTHS
    sandbox.set_faults("marketo:expired_token=0.05,marketo:429=0.05,marketo:503=0.05", seed=7)
    clock = ManualClock(now)  # backoff and window waits pass instantly
    with MarketoSource("marketo", settings_for(sandbox, max_attempts=6), clock=clock) as source:
        touches, _ = drain_touches(source, Cursor(since.isoformat()), now)
    assert_exactly_seeded(touches, store, since, now)
    assert clock.sleeps  # the faults were waited out, not ignored


def test_a_pull_survives_tokens_refused_again_right_after_their_renewal(
    sandbox: SandboxServer, store: Any
) -> None:
    # Half the activity pages answer 602: many calls see two or more 602s in a row.
    now = store.clock.now()
    since = now - SIX_MONTHS
    sandbox.set_faults("marketo/activities:expired_token=0.5", seed=3)
    with MarketoSource("marketo", settings_for(sandbox)) as source:
        touches, _ = drain_touches(source, Cursor(since.isoformat()), now)
        renewals = source.client.auth.token_requests - 1
    assert_exactly_seeded(touches, store, since, now)
    assert renewals > sandbox.state.counts("marketo")["activities"] // 3


def test_a_token_refused_after_every_renewal_stops_the_pull_with_an_auth_error(
    sandbox: SandboxServer, store: Any
) -> None:
    now = store.clock.now()
    sandbox.set_faults("marketo/activities.pagingtoken:expired_token=1", seed=3)
    with (
        MarketoSource("marketo", settings_for(sandbox)) as source,
        pytest.raises(AuthError, match=f"renewing the access token {MAX_RENEWALS} times"),
    ):
        drain_touches(source, Cursor((now - SIX_MONTHS).isoformat()), now)
    assert sandbox.state.counts("marketo")["activities.pagingtoken"] == MAX_RENEWALS + 1


def test_daily_quota_exhaustion_stops_the_pull_until_midnight_in_chicago(
    sandbox: SandboxServer, store: Any
) -> None:
    store.daily_quota = 5
    now = store.clock.now()
    with (
        MarketoSource("marketo", settings_for(sandbox)) as source,
        pytest.raises(RateLimited) as caught,
    ):
        drain_touches(source, Cursor((now - SIX_MONTHS).isoformat()), now)
    resume = caught.value.resume_at
    assert resume is not None
    assert resume > datetime.now(UTC)
    local = resume.astimezone(ZoneInfo("America/Chicago"))
    assert (local.hour, local.minute, local.second) == (0, 0, 0)


def test_a_long_backfill_through_the_bulk_extract_returns_the_same_activities(
    sandbox: SandboxServer, store: Any
) -> None:
    now = store.clock.now()
    since = now - SIX_MONTHS
    settings = settings_for(sandbox, bulk_backfill_days=30, bulk_poll_interval_s=1)
    clock = ManualClock(now)
    with MarketoSource("marketo", settings, clock=clock) as source:
        touches, cursor = drain_touches(source, Cursor(since.isoformat()), now)
    assert_exactly_seeded(touches, store, since, now)
    counts = sandbox.state.counts("marketo")
    assert counts["export.create"] == math.ceil(183 / 31)
    assert "activities" not in counts
    assert cursor.value == now.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_backfill_through_lost_create_and_enqueue_answers_exports_each_window_once(
    sandbox: SandboxServer, store: Any
) -> None:
    # Marketo applies the create or enqueue, then the answer is lost (HTTP 502).
    now = store.clock.now()
    since = now - SIX_MONTHS
    sandbox.set_faults(
        "marketo/export.create:lost_response=0.3,marketo/export.enqueue:lost_response=0.3",
        seed=5,
    )
    settings = settings_for(sandbox, bulk_backfill_days=30, bulk_poll_interval_s=1, max_attempts=6)
    clock = ManualClock(now)
    with MarketoSource("marketo", settings, clock=clock) as source:
        touches, _ = drain_touches(source, Cursor(since.isoformat()), now)
    assert_exactly_seeded(touches, store, since, now)
    windows = math.ceil(183 / 31)
    statuses = [job["status"] for job in store.exports.values()]
    assert statuses.count("Completed") == windows  # one export per window, never two
    assert set(statuses) == {"Completed", "Canceled"}  # every stray of a lost create cancelled
    counts = sandbox.state.counts("marketo")
    assert counts["export.create"] > windows  # the faults did hit
    # Enqueues whose answer was lost had taken effect (the job's status said so): none repeated.
    assert counts["export.enqueue"] == windows


def test_lead_lookup_and_static_list_changes_against_the_sandbox(
    sandbox: SandboxServer, store: Any
) -> None:
    people = [p for p in store.leads.values() if p.get("email")][:3]
    emails = [p["email"].upper() for p in people]
    with MarketoSource("marketo", settings_for(sandbox)) as source:
        found = source.lookup_leads([*emails, "nobody@nowhere.example"])
        assert set(found) == {p["email"].lower() for p in people}
        lead = found[people[0]["email"].lower()]
        assert lead.company == people[0]["company"]
        list_id = min(store.lists)
        ids = [int(p["id"]) for p in people]
        added = source.add_to_list(list_id, [*ids, 999_999_999])
        assert set(added.changed) == set(ids)
        assert [r.code for r in added.skipped] == ["1004"]
        assert set(ids) <= store.members[list_id]
        removed = source.remove_from_list(list_id, ids)
        assert set(removed.changed) == set(ids)
        assert not set(ids) & store.members[list_id]


def test_check_passes_against_the_sandbox_and_fails_cleanly_with_a_wrong_secret(
    sandbox: SandboxServer, store: Any
) -> None:
    with MarketoSource("marketo", settings_for(sandbox)) as source:
        results = source.check()
    assert [r.name for r in results] == [
        "marketo.token",
        "marketo.activity_types",
        "marketo.daily_quota",
    ]
    assert all(r.ok for r in results)
    with MarketoSource("marketo", settings_for(sandbox, client_secret="wrong")) as source:
        bad = source.check()
    assert [(r.name, r.ok) for r in bad] == [("marketo.token", False)]


@pytest.fixture
def kit(sandbox: SandboxServer, store: Any) -> Iterator[KitSpec]:
    """The connector test kit's view of Marketo: good and bad credentials on the sandbox."""
    made: list[MarketoSource] = []
    # One page slice: the battery pulls twice in a row, and 2 x 66 calls would have to wait
    # out Marketo's 100-calls-per-20-s window (correct, but slow for a unit of the test suite).
    store.page_slice = timedelta(days=3650)

    def make(**overrides: Any) -> MarketoSource:
        source = MarketoSource("marketo", settings_for(sandbox, **overrides))
        made.append(source)
        return source

    yield KitSpec(
        make=make,
        make_unauthorised=lambda: make(client_secret="not-the-secret"),
        until=store.clock.now(),
    )
    for source in made:
        source.close()


TestMarketoBattery = connector_battery()


def test_a_first_pull_with_the_starter_configs_lookback_reads_the_whole_world_late_in_its_day(
    sandbox: SandboxServer, store: Any
) -> None:
    # The world ends at midnight (UTC); a pull measured from the wall clock may start as late as
    # the last second of that day and must still reach back to the world's first activity.
    assert sandbox.world is not None
    starter = yaml.safe_load(SANDBOX_CONFIG)["connections"]["marketo"]
    store.page_slice = timedelta(days=3650)
    last_second = sandbox.world.now + timedelta(days=1, seconds=-1)
    settings = settings_for(sandbox, initial_lookback_days=starter["initial_lookback_days"])
    with MarketoSource("marketo", settings) as source:
        touches, _ = drain_touches(source, Cursor(), last_second)
    assert len(touches) == len(sandbox.world.activities)
    assert {t.key for t in touches} == {f"marketo:{a['marketoGUID']}" for a in store.activities}
    assert min(t.occurred_at for t in touches) < last_second - timedelta(days=180)
