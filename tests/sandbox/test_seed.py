"""The seed generator builds the same believable company from the same seed."""

from __future__ import annotations

import dataclasses
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest

from connectors.base import TouchKind
from connectors.errors import ConfigError
from sandbox.seed import (
    CAMPAIGN_CHANNELS,
    DISQUALIFY_REASONS,
    FREE_MAIL_DOMAINS,
    LEAD_STATUSES,
    LIFECYCLE_STAGES,
    MQL_THRESHOLD,
    OPPORTUNITY_STAGES,
    RECYCLE_REASONS,
    generate,
    world_now,
)
from sandbox.world import World


@pytest.fixture(scope="module")
def world() -> World:
    return generate(42)


def _per_person(world: World) -> list[int]:
    counts = Counter(a.person_id for a in world.activities)
    return sorted((counts.get(p.id, 0) for p in world.people), reverse=True)


def _relative(value: Any, now: datetime) -> Any:
    """``value`` with every datetime replaced by its distance from ``now``."""
    if isinstance(value, datetime):
        return value - now
    if isinstance(value, dict):
        return {key: _relative(item, now) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_relative(item, now) for item in value]
    return value


def test_same_seed_builds_an_identical_world(world: World) -> None:
    assert generate(42, now=world.now) == world


def test_a_world_without_a_now_ends_at_the_start_of_today_utc() -> None:
    before = world_now()
    built = generate(1, size=20)
    assert built.now in (before, world_now())  # the day may turn during the test
    assert built.now.time() == time(0)
    assert built.now.tzinfo == UTC
    late = datetime(2027, 2, 28, 23, 30, 5, tzinfo=UTC)
    assert world_now(late) == datetime(2027, 2, 28, tzinfo=UTC)


@pytest.mark.parametrize(
    "later",
    [timedelta(days=1), timedelta(days=365), timedelta(days=3 * 365 + 77)],
    ids=["a-day-later", "a-year-later", "years-and-a-leap-day-later"],
)
def test_a_world_holds_the_same_company_relative_to_its_now_on_any_day(later: timedelta) -> None:
    today = generate(42, now=world_now())
    other = generate(42, now=today.now + later)
    assert other.now == today.now + later
    assert _relative(dataclasses.asdict(other), other.now) == _relative(
        dataclasses.asdict(today), today.now
    )


def test_different_seeds_build_different_companies(world: World) -> None:
    other = generate(43)
    assert {p.email for p in other.people} != {p.email for p in world.people}
    assert [a.name for a in other.accounts] != [a.name for a in world.accounts]


def test_generation_does_not_touch_the_global_random_state() -> None:
    import random

    random.seed(5)
    expected = random.random()
    random.seed(5)
    generate(3, size=50)
    assert random.random() == expected


def test_demo_size_is_a_small_company(world: World) -> None:
    assert 35 <= len(world.accounts) <= 50
    assert 550 <= len(world.people) <= 700
    assert 4_000 <= len(world.activities) <= 9_000
    assert len(world.owners) == 8


def test_an_integer_size_scales_people_and_activities() -> None:
    small = generate(1, size=200)
    assert 190 <= len(small.people) <= 220
    assert 5 * len(small.people) <= len(small.activities) <= 16 * len(small.people)
    assert len(small.accounts) < len(generate(1).accounts)


@pytest.mark.parametrize("size", ["huge", 3, "-5"])
def test_a_bad_size_is_a_config_error(size: str | int) -> None:
    with pytest.raises(ConfigError, match="size"):
        generate(1, size=size)


def test_a_naive_now_is_rejected() -> None:
    with pytest.raises(ConfigError, match="timezone"):
        generate(1, size=20, now=datetime(2026, 1, 1))  # noqa: DTZ001 - the case under test


def test_activities_span_six_months_before_now() -> None:
    now = datetime(2025, 3, 15, 12, tzinfo=UTC)
    world = generate(9, size=300, now=now)
    first = min(a.occurred_at for a in world.activities)
    last = max(a.occurred_at for a in world.activities)
    assert last <= now
    assert first >= now - timedelta(days=183)
    assert last - first > timedelta(days=170)


def test_activity_kinds_are_touch_kinds_and_ids_follow_time(world: World) -> None:
    kinds = {a.kind for a in world.activities}
    assert kinds <= {k.value for k in TouchKind}
    assert {"email_sent", "email_open", "email_click", "page_view", "form_fill"} <= kinds
    assert {"webinar_registered", "webinar_attended", "event_attended"} <= kinds
    assert {"content_download", "ad_click", "list_import", "score_change"} <= kinds
    ids = [a.id for a in world.activities]
    assert ids == list(range(1, len(ids) + 1))
    times = [a.occurred_at for a in world.activities]
    assert times == sorted(times)
    people = {p.id for p in world.people}
    assert all(a.person_id in people for a in world.activities)


def test_the_email_funnel_narrows_from_sent_to_clicks(world: World) -> None:
    kinds = Counter(a.kind for a in world.activities)
    assert kinds["email_sent"] > kinds["email_delivered"] > kinds["email_open"]
    assert kinds["email_open"] > kinds["email_click"] > 0
    assert kinds["email_open"] < 0.5 * kinds["email_sent"]
    assert kinds["webinar_attended"] < kinds["webinar_registered"]


def test_touches_per_person_are_heavy_tailed(world: World) -> None:
    counts = _per_person(world)
    top = counts[: len(counts) // 20]
    assert sum(top) > 0.25 * sum(counts)
    assert statistics.median(counts) <= 4 < statistics.mean(counts)
    assert max(counts) >= 10 * statistics.median(counts)


def test_people_include_free_mail_converted_duplicates_and_marketing_only(world: World) -> None:
    by_id = {p.id: p for p in world.people}
    free = [p for p in world.people if p.email.split("@")[1] in FREE_MAIL_DOMAINS]
    assert 0.10 <= len(free) / len(world.people) <= 0.20
    converted = [p for p in world.people if p.converted_at is not None]
    assert len(converted) >= 10
    assert all(p.crm_kind == "contact" and p.account_id for p in converted)
    assert all(p.lead_status == "Closed - Converted" for p in converted)
    duplicates = [p for p in world.people if p.duplicate_of]
    assert len(duplicates) >= 5
    originals = {p.id: by_id[p.duplicate_of] for p in duplicates if p.duplicate_of in by_id}
    assert len(originals) == len(duplicates)
    assert all(originals[p.id].last_name == p.last_name for p in duplicates)
    same_email = [p for p in duplicates if originals[p.id].email == p.email]
    assert 0 < len(same_email) < len(duplicates)
    assert {p.crm_kind for p in world.people} == {"lead", "contact", "none"}
    assert len({p.email for p in world.people}) == len(world.people) - len(same_email)


def test_statuses_and_stages_use_the_published_vocabularies(world: World) -> None:
    assert {p.lead_status for p in world.people} <= {*LEAD_STATUSES, ""}
    assert {p.lifecycle_stage for p in world.people} <= set(LIFECYCLE_STAGES)
    assert {o.stage for o in world.opportunities} <= set(OPPORTUNITY_STAGES)
    owners = {owner_id for owner_id, _, _ in world.owners}
    assert {p.owner_id for p in world.people} <= owners
    assert {o.owner_id for o in world.opportunities} <= owners


def test_mql_crossings_follow_the_score_threshold(world: World) -> None:
    crossings = [a for a in world.activities if a.kind == "score_change"]
    assert len(crossings) >= 0.05 * len(world.people)
    for activity in crossings:
        assert int(activity.attributes["old_score"]) < MQL_THRESHOLD
        assert int(activity.attributes["new_score"]) >= MQL_THRESHOLD
    mql_events = {
        (e.object_id, e.changed_at)
        for e in world.status_events
        if e.field == "lifecycle_stage" and e.new_value == "mql"
    }
    assert mql_events == {(a.person_id, a.occurred_at) for a in crossings}


def test_reps_follow_up_after_hours_to_days_and_some_breach_the_sla(world: World) -> None:
    converted_before = {p.id: p.converted_at for p in world.people if p.converted_at is not None}
    mql_at = {
        e.object_id: e.changed_at
        for e in world.status_events
        if e.field == "lifecycle_stage" and e.new_value == "mql"
        # contacts converted long before becoming an MQL have no lead for a rep to work
        if converted_before.get(e.object_id, e.changed_at) >= e.changed_at
    }
    delays = [
        e.changed_at - mql_at[e.object_id]
        for e in world.status_events
        if e.field == "lead_status" and e.new_value == "Working - Contacted"
        if e.object_id in mql_at
    ]
    assert len(delays) >= 20
    breaches = [d for d in delays if d > timedelta(hours=24)]
    assert 0 < len(breaches) < len(delays) / 2
    assert all(d > timedelta(0) for d in delays)


def test_recycled_and_disqualified_leads_carry_reasons(world: World) -> None:
    events = [e for e in world.status_events if e.field == "lead_status"]
    recycled = [e for e in events if e.new_value == "Recycled"]
    disqualified = [e for e in events if e.new_value == "Disqualified"]
    assert recycled
    assert disqualified
    assert {e.reason for e in recycled} <= set(RECYCLE_REASONS)
    assert {e.reason for e in disqualified} <= set(DISQUALIFY_REASONS)
    people = {p.id: p for p in world.people}
    assert all(people[e.object_id].disqualified_reason == e.reason for e in disqualified)


def test_opportunities_have_plausible_amounts_win_rate_and_stage_history() -> None:
    worlds = [generate(seed) for seed in (1, 2, 3)]
    opps = [o for w in worlds for o in w.opportunities]
    closed = [o for o in opps if o.is_closed]
    won = [o for o in closed if o.is_won]
    assert 0.15 <= len(won) / len(closed) <= 0.40
    assert all(o.stage == "Closed Won" for o in won)
    assert all(o.amount > Decimal(0) for o in opps)
    amounts = sorted(o.amount for o in opps)
    assert amounts[-1] > 3 * statistics.median(amounts)  # a long right tail
    for w in worlds:
        history: dict[str, list[str | None]] = defaultdict(list)
        for e in w.status_events:
            if e.object_type == "opportunity":
                history[e.object_id] += [e.old_value, e.new_value]
        for opp in w.opportunities:
            assert history[opp.id][0] is None
            assert history[opp.id][-1] == opp.stage


def test_contact_roles_have_one_primary_and_some_opportunities_have_none(world: World) -> None:
    roles: dict[str, list[bool]] = defaultdict(list)
    people = {p.id: p for p in world.people}
    for role in world.contact_roles:
        roles[role.opportunity_id].append(role.is_primary)
        assert people[role.person_id].crm_kind == "contact"
    assert all(1 <= len(flags) <= 3 and flags.count(True) == 1 for flags in roles.values())
    assert len(roles) < len(world.opportunities)


def test_campaigns_cover_every_channel_with_costs(world: World) -> None:
    assert {c.channel for c in world.campaigns} == set(CAMPAIGN_CHANNELS)
    assert all(c.actual_cost > 0 and c.budgeted_cost > 0 for c in world.campaigns)
    touched = {a.campaign_id for a in world.activities}
    assert {c.id for c in world.campaigns} <= touched


def test_the_most_expensive_campaign_produces_little_revenue(world: World) -> None:
    expo = max(world.campaigns, key=lambda c: c.actual_cost)
    attendees = {a.person_id for a in world.activities if a.campaign_id == expo.id}
    assert len(attendees) >= 10
    people = {p.id: p for p in world.people}
    assert not any(people[pid].converted_at for pid in attendees)
    sourced = sum(
        (o.amount for o in world.opportunities if o.is_won and o.campaign_id == expo.id),
        Decimal(0),
    )
    assert sourced < expo.actual_cost / 10
