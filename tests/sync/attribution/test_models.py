"""The nine models on hand-built journeys: the expected share of every touch is spelled out."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import ContactRole, Opportunity, Person, PersonKind, Touch, TouchKind
from sync.attribution import (
    SHARE_UNITS,
    AttributionOpportunity,
    AttributionParams,
    AttributionPerson,
    AttributionRole,
    AttributionTouch,
    Attributor,
    Dataset,
    Model,
    PositionWeights,
    attribute,
    from_connector_records,
)
from sync.attribution.allocation import largest_remainder

T0 = datetime(2026, 1, 1, tzinfo=UTC)
AS_OF = datetime(2026, 12, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def pct(*values: float) -> list[int]:
    """Percentages as share units (millionths)."""
    return [round(v * SHARE_UNITS / 100) for v in values]


def touches(person: str, *days: float, kind: str = "form_fill") -> list[AttributionTouch]:
    return [
        AttributionTouch(f"t{n}", person, day(d), kind, campaign=f"c{n}")
        for n, d in enumerate(days, start=1)
    ]


def five_touch_journey() -> tuple[
    AttributionOpportunity, list[AttributionTouch], list[AttributionPerson]
]:
    """Ann: touches on days 1..5, her lead created on day 2, the deal created day 4, won day 10."""
    people = [AttributionPerson("ann", account_id="acme", created_at=day(2), is_lead=True)]
    opp = AttributionOpportunity(
        "opp", "acme", Decimal("1000.00"), day(4), day(10), is_closed=True, is_won=True
    )
    return opp, touches("ann", 1, 2, 3, 4, 5), people


def shares(model: Model, **extra: object) -> list[tuple[str, int]]:
    opp, ts, people = five_touch_journey()
    credits = attribute(model, opp, ts, people, [], as_of=AS_OF, **extra)  # type: ignore[arg-type]
    return [(c.touch_key, c.share_units) for c in credits]


def test_first_touch_gives_everything_to_the_earliest_touch() -> None:
    assert shares(Model.FIRST_TOUCH) == [("t1", SHARE_UNITS)]


def test_lead_creation_gives_everything_to_the_touch_that_created_the_lead() -> None:
    assert shares(Model.LEAD_CREATION) == [("t2", SHARE_UNITS)]


def test_last_touch_gives_everything_to_the_last_touch_before_the_close() -> None:
    assert shares(Model.LAST_TOUCH) == [("t5", SHARE_UNITS)]


def test_linear_splits_evenly() -> None:
    assert shares(Model.LINEAR) == list(
        zip(["t1", "t2", "t3", "t4", "t5"], pct(20, 20, 20, 20, 20), strict=True)
    )


def test_u_shaped_gives_40_40_and_spreads_20_over_the_other_three() -> None:
    # 20% / 3 = 6.6667%: the two earlier "other" touches get the extra millionth each.
    assert shares(Model.U_SHAPED) == [
        ("t1", 400_000),
        ("t2", 400_000),
        ("t3", 66_667),
        ("t4", 66_667),
        ("t5", 66_666),
    ]


def test_w_shaped_gives_30_30_30_and_spreads_10_over_the_other_two() -> None:
    assert shares(Model.W_SHAPED) == list(
        zip(["t1", "t2", "t3", "t4", "t5"], pct(30, 30, 5, 30, 5), strict=True)
    )


def test_full_path_gives_22_5_to_four_milestones_and_10_to_the_one_other_touch() -> None:
    assert shares(Model.FULL_PATH) == list(
        zip(["t1", "t2", "t3", "t4", "t5"], pct(22.5, 22.5, 10, 22.5, 22.5), strict=True)
    )


def test_time_decay_halves_the_weight_every_half_life_before_the_close() -> None:
    people = [AttributionPerson("ann", account_id="acme", created_at=day(0))]
    opp = AttributionOpportunity("opp", "acme", Decimal("700.00"), day(0), day(14), is_closed=True)
    # Ages 14, 7 and 0 days with a 7-day half-life: weights 1/4, 1/2, 1 -> 1/7, 2/7, 4/7.
    ts = touches("ann", 0, 7, 14)
    credits = attribute(Model.TIME_DECAY, opp, ts, people, [], as_of=AS_OF)
    assert [c.share_units for c in credits] == [142_857, 285_714, 571_429]
    assert [c.amount for c in credits] == [Decimal("100.00"), Decimal("200.00"), Decimal("400.00")]


def test_time_decay_uses_the_configured_half_life() -> None:
    people = [AttributionPerson("ann", account_id="acme")]
    opp = AttributionOpportunity("opp", "acme", None, day(0), day(14), is_closed=True)
    params = AttributionParams(half_life_days=14)
    credits = attribute(Model.TIME_DECAY, opp, touches("ann", 0, 14), people, [], params=params)
    # Ages 14 and 0 with a 14-day half-life: weights 1/2 and 1.
    assert [c.share_units for c in credits] == [333_333, 666_667]


def test_custom_weights_apply_per_milestone_and_to_the_others() -> None:
    custom = PositionWeights.from_percent(
        first_touch=10, lead_creation=20, opportunity_creation=30, closed_won=35, others=5
    )
    got = shares(Model.CUSTOM, params=AttributionParams(custom=custom))
    assert got == list(zip(["t1", "t2", "t3", "t4", "t5"], pct(10, 20, 5, 30, 35), strict=True))


def test_the_custom_model_without_weights_is_refused() -> None:
    with pytest.raises(ValueError, match="custom model needs weights"):
        shares(Model.CUSTOM)


def test_custom_weights_must_add_up_to_100() -> None:
    with pytest.raises(ValueError, match="add up to 100%"):
        PositionWeights.from_percent(first_touch=50, others=40)


def test_milestones_on_the_same_touch_add_up() -> None:
    # One person, created by the first touch; the deal is created right after: t1 is first
    # touch, lead creation and opportunity creation at once; t2 and t3 are the others.
    people = [AttributionPerson("ann", account_id="acme", created_at=day(1))]
    opp = AttributionOpportunity("opp", "acme", Decimal("90.00"), day(1.5), day(9), is_closed=True)
    ts = touches("ann", 1, 3, 5)
    credits = attribute(Model.W_SHAPED, opp, ts, people, [], as_of=AS_OF)
    assert [(c.touch_key, c.share_units) for c in credits] == [
        ("t1", 900_000),
        ("t2", 50_000),
        ("t3", 50_000),
    ]
    assert credits[0].milestones == ("first_touch", "lead_creation", "opportunity_creation")
    assert [c.amount for c in credits] == [Decimal("81.00"), Decimal("4.50"), Decimal("4.50")]


def test_with_no_other_touches_the_spread_goes_to_the_milestones_in_proportion() -> None:
    # Two touches: t1 first + lead creation (40 + 40), t2 has no U-shaped milestone, so it is
    # "other" and takes the 20%. With one touch only, it takes all 100%.
    people = [AttributionPerson("ann", account_id="acme", created_at=day(1))]
    opp = AttributionOpportunity("opp", "acme", Decimal("10.00"), day(2), day(9), is_closed=True)
    two = attribute(Model.U_SHAPED, opp, touches("ann", 1, 3), people, [], as_of=AS_OF)
    assert [c.share_units for c in two] == pct(80, 20)
    # W-shaped with three touches that are all milestones: 30/30/30 scaled to 100.
    people = [AttributionPerson("ann", account_id="acme", created_at=day(2))]
    opp = AttributionOpportunity("opp", "acme", Decimal("10.00"), day(3), day(9), is_closed=True)
    three = attribute(Model.W_SHAPED, opp, touches("ann", 1, 2, 3), people, [], as_of=AS_OF)
    assert [c.share_units for c in three] == [333_334, 333_333, 333_333]
    assert [c.amount for c in three] == [Decimal("3.34"), Decimal("3.33"), Decimal("3.33")]


def test_a_missing_milestone_scales_the_others_up_in_proportion() -> None:
    # Ann was created before any touch: no lead creation touch. U-shaped keeps 40 for the
    # first touch and 20 spread over t2 and t3, scaled to 100%: 66.67 / 16.67 / 16.67.
    people = [AttributionPerson("ann", account_id="acme", created_at=day(-30))]
    opp = AttributionOpportunity("opp", "acme", Decimal("30.00"), day(4), day(9), is_closed=True)
    ts = touches("ann", 1, 2, 3)
    credits = attribute(Model.U_SHAPED, opp, ts, people, [], as_of=AS_OF)
    assert [c.share_units for c in credits] == [666_667, 166_667, 166_666]
    assert attribute(Model.LEAD_CREATION, opp, ts, people, [], as_of=AS_OF) == []


def test_touches_after_the_close_day_do_not_count_and_the_whole_close_day_does() -> None:
    # A close date is a day (Salesforce CloseDate): a touch at 00:01 or 23:59 that day counts,
    # one at midnight after it does not.
    people = [AttributionPerson("ann", account_id="acme")]
    opp = AttributionOpportunity("opp", "acme", None, day(0), day(10), is_closed=True)
    ts = touches("ann", 5, 10, 10.001, 10 + 86_399 / 86_400, 11)
    credits = attribute(Model.LINEAR, opp, ts, people, [], as_of=AS_OF)
    assert [c.touch_key for c in credits] == ["t1", "t2", "t3", "t4"]
    # A close time during the day (HubSpot's closedate) still counts the whole day.
    later = AttributionOpportunity("opp", "acme", None, day(0), day(10.5), is_closed=True)
    credits = attribute(Model.LINEAR, later, ts, people, [], as_of=AS_OF)
    assert [c.touch_key for c in credits] == ["t1", "t2", "t3", "t4"]


def _scoped(scope: str, *, primary: bool = True) -> list[str]:
    """Whose touches the linear model credits on a deal of acme with two contact roles."""
    people = [
        AttributionPerson("ann", account_id="acme"),
        AttributionPerson("bob", account_id="acme"),
        AttributionPerson("cat", account_id="acme"),
    ]
    ts = [
        AttributionTouch("a", "ann", day(1), "form_fill"),
        AttributionTouch("b", "bob", day(2), "form_fill"),
        AttributionTouch("c", "cat", day(3), "form_fill"),
    ]
    roles = [AttributionRole("opp", "ann", is_primary=primary), AttributionRole("opp", "bob")]
    opp = AttributionOpportunity("opp", "acme", Decimal(300), day(0), day(10), is_closed=True)
    params = AttributionParams(scope=scope)  # type: ignore[arg-type]
    credits = attribute(Model.LINEAR, opp, ts, people, roles, params=params, as_of=AS_OF)
    return [c.person_id for c in credits]


def test_scope_chooses_whose_touches_count() -> None:
    assert _scoped("contact_roles") == ["ann", "bob"]
    assert _scoped("primary_contact_role") == ["ann"]
    assert _scoped("account") == ["ann", "bob", "cat"]
    # Roles but no primary one (every HubSpot deal): the primary scope counts nobody.
    assert _scoped("primary_contact_role", primary=False) == []
    with pytest.raises(ValueError, match="scope"):
        AttributionParams(scope="everyone")  # type: ignore[arg-type]


def test_open_opportunities_count_touches_up_to_as_of() -> None:
    people = [AttributionPerson("ann", account_id="acme")]
    # Close date in the past but still open: the window ends at as_of, not at the close date.
    opp = AttributionOpportunity("opp", "acme", None, day(0), day(10), is_closed=False)
    ts = touches("ann", 5, 20, 40)
    credits = attribute(Model.LAST_TOUCH, opp, ts, people, [], as_of=day(30))
    assert [c.touch_key for c in credits] == ["t2"]


def test_the_lookback_boundary_is_inclusive() -> None:
    people = [AttributionPerson("ann", account_id="acme")]
    opp = AttributionOpportunity("opp", "acme", None, day(0), day(100), is_closed=True)
    params = AttributionParams(lookback_days=30)
    # Exactly 30 days before the close counts; one second earlier does not.
    ts = [
        AttributionTouch("early", "ann", day(70) - timedelta(seconds=1), "form_fill"),
        AttributionTouch("edge", "ann", day(70), "form_fill"),
        AttributionTouch("late", "ann", day(99), "form_fill"),
    ]
    credits = attribute(Model.LINEAR, opp, ts, people, [], params=params)
    assert [c.touch_key for c in credits] == ["edge", "late"]


def test_only_counted_kinds_count() -> None:
    people = [AttributionPerson("ann", account_id="acme")]
    opp = AttributionOpportunity("opp", "acme", None, day(0), day(10), is_closed=True)
    ts = [
        AttributionTouch("sent", "ann", day(1), "email_sent"),
        AttributionTouch("click", "ann", day(2), "email_click"),
    ]
    assert [c.touch_key for c in attribute(Model.LINEAR, opp, ts, people, [])] == ["click"]
    everything = AttributionParams(counted_kinds=None)
    got = attribute(Model.LINEAR, opp, ts, people, [], params=everything)
    assert [c.touch_key for c in got] == ["sent", "click"]


def test_contact_roles_come_first_and_the_account_is_the_fallback() -> None:
    people = [
        AttributionPerson("ann", account_id="acme"),
        AttributionPerson("bob", account_id="acme"),
        AttributionPerson("eve", account_id="other"),
    ]
    ts = [
        AttributionTouch("a1", "ann", day(1), "form_fill"),
        AttributionTouch("b1", "bob", day(2), "form_fill"),
        AttributionTouch("e1", "eve", day(3), "form_fill"),
    ]
    opp = AttributionOpportunity("opp", "acme", None, day(0), day(10), is_closed=True)
    with_role = attribute(Model.LINEAR, opp, ts, people, [AttributionRole("opp", "bob")])
    assert [c.touch_key for c in with_role] == ["b1"]
    without = attribute(Model.LINEAR, opp, ts, people, [])
    assert [c.touch_key for c in without] == ["a1", "b1"]
    deleted_role = [AttributionRole("opp", "bob", deleted=True)]
    assert [c.touch_key for c in attribute(Model.LINEAR, opp, ts, people, deleted_role)] == [
        "a1",
        "b1",
    ]


def test_a_converted_lead_and_a_merged_duplicate_count_as_their_contact() -> None:
    people = [
        AttributionPerson(
            "lead-1", created_at=day(2), is_lead=True, converted_to="contact-1",
            converted_opportunity_id="opp",
        ),
        AttributionPerson("contact-1", account_id="acme", created_at=day(6)),
        AttributionPerson("dup-1", is_lead=True, merged_into="contact-1", deleted=True),
    ]  # fmt: skip
    ts = [
        AttributionTouch("l1", "lead-1", day(1), "ad_click", campaign="ads"),
        AttributionTouch("l2", "lead-1", day(2), "form_fill", campaign="ebook"),
        AttributionTouch("d1", "dup-1", day(3), "webinar_attended", campaign="webinar"),
        AttributionTouch("c1", "contact-1", day(7), "email_click", campaign="nurture"),
    ]
    opp = AttributionOpportunity("opp", "acme", Decimal("100.00"), day(6), day(9), is_closed=True)
    dataset = Dataset(ts, people, [opp], [AttributionRole("opp", "contact-1", is_primary=True)])
    result = Attributor(dataset, as_of=AS_OF).attribute(opp, [Model.W_SHAPED])
    # The lead was created on day 2 (the lead's own creation, not the contact's): l2 created it.
    assert result.milestones == {
        "first_touch": "l1", "lead_creation": "l2", "opportunity_creation": "d1", "closed_won": "c1"
    }  # fmt: skip
    assert [(c.touch_key, c.share_units) for c in result.credits["w_shaped"]] == [
        ("l1", 300_000), ("l2", 300_000), ("d1", 300_000), ("c1", 100_000)
    ]  # fmt: skip
    assert {c.person_id for c in result.credits["w_shaped"]} == {"contact-1"}
    assert (result.sourced_campaign, result.sourced_by) == ("ebook", "lead_creation")
    assert result.influencing_campaigns == ("ads", "ebook", "nurture", "webinar")


def test_without_a_lead_creation_touch_the_primary_campaign_is_the_source() -> None:
    people = [AttributionPerson("ann", account_id="acme", created_at=day(-100))]
    opp = AttributionOpportunity(
        "opp", "acme", Decimal("5.00"), day(0), day(10), is_closed=True, campaign_id="expo"
    )
    result = Attributor(Dataset(touches("ann", 1), people, [opp], []), as_of=AS_OF).attribute(
        opp, [Model.LINEAR]
    )
    assert (result.sourced_campaign, result.sourced_by) == ("expo", "primary_campaign")


def test_an_opportunity_without_counted_touches_is_unattributed_in_every_model() -> None:
    people = [AttributionPerson("ann", account_id="acme")]
    opp = AttributionOpportunity("opp", "acme", Decimal("5.00"), day(0), day(10), is_closed=True)
    result = Attributor(Dataset([], people, [opp], []), as_of=AS_OF).attribute(opp, list(Model))
    assert all(not result.attributed(m) for m in Model)


def test_amounts_add_up_to_the_cent_and_ties_go_to_the_earlier_touch() -> None:
    people = [AttributionPerson("ann", account_id="acme")]
    opp = AttributionOpportunity("opp", "acme", Decimal("100.00"), day(0), day(10), is_closed=True)
    credits = attribute(Model.LINEAR, opp, touches("ann", 1, 2, 3), people, [])
    assert [c.amount for c in credits] == [Decimal("33.34"), Decimal("33.33"), Decimal("33.33")]
    # Same instant: the smaller touch key wins the tie.
    same = [AttributionTouch(k, "ann", day(1), "form_fill") for k in ("b", "a", "c")]
    credits = attribute(Model.LINEAR, opp, same, people, [])
    assert [(c.touch_key, c.amount) for c in credits] == [
        ("a", Decimal("33.34")), ("b", Decimal("33.33")), ("c", Decimal("33.33"))
    ]  # fmt: skip


def test_connector_records_are_linked_by_person_ref_then_by_email() -> None:
    people = [
        Person("sf", "003A", PersonKind.CONTACT, "ann@acme.example", account_id="acme"),
        Person("sf", "00QB", PersonKind.LEAD, "bob@acme.example", account_id="acme"),
    ]
    raw = [
        Touch("mkto", "1", TouchKind.FORM_FILL, day(1), "someone@else.example", person_ref="003A"),
        Touch("mkto", "2", TouchKind.EMAIL_CLICK, day(2), "BOB@acme.example"),
        Touch("mkto", "3", TouchKind.EMAIL_CLICK, day(3), "stranger@nowhere.example"),
    ]
    opp = Opportunity("sf", "006", "Deal", "acme", "Closed Won", Decimal(10), is_closed=True,
                      is_won=True, close_date=day(10), created_at=day(0))  # fmt: skip
    dataset = from_connector_records(raw, people, [opp], [ContactRole("sf", "r", "006", "003A")])
    assert [(t.key, t.person_id) for t in dataset.touches] == [
        ("mkto:1", "003A"),
        ("mkto:2", "00QB"),
    ]
    assert dataset.unlinked_touches == 1
    result = Attributor(dataset, as_of=AS_OF).attribute(dataset.opportunities[0], ["linear"])
    assert [c.touch_key for c in result.credits["linear"]] == ["mkto:1"]


def test_largest_remainder_is_exact_and_gives_nothing_to_zero_weights() -> None:
    assert largest_remainder(100, [1, 1, 1]) == [34, 33, 33]
    assert largest_remainder(10, [0, 3, 0, 1]) == [0, 8, 0, 2]
    assert largest_remainder(-100, [1, 1, 1]) == [-34, -33, -33]
    with pytest.raises(ValueError, match="positive"):
        largest_remainder(5, [0, 0])


# --- properties -------------------------------------------------------------------------------

_touch_days = st.lists(st.integers(min_value=0, max_value=400 * 24), min_size=1, max_size=25)


@st.composite
def journeys(draw: st.DrawFn) -> tuple[Dataset, AttributionOpportunity]:
    hours = draw(_touch_days)
    people_ids = ["ann", "bob", "cat"]
    people = [
        AttributionPerson(
            p, account_id="acme", created_at=T0 + timedelta(hours=draw(st.integers(0, 400 * 24)))
        )
        for p in people_ids
    ]
    ts = [
        AttributionTouch(
            f"k{n:03d}",
            draw(st.sampled_from(people_ids)),
            T0 + timedelta(hours=h),
            draw(st.sampled_from(["form_fill", "email_click", "email_sent"])),
            campaign=draw(st.sampled_from([None, "c1", "c2"])),
        )
        for n, h in enumerate(hours)
    ]
    cents = draw(st.integers(min_value=0, max_value=10**12))
    created = T0 + timedelta(hours=draw(st.integers(0, 400 * 24)))
    close = created + timedelta(hours=draw(st.integers(0, 200 * 24)))
    opp = AttributionOpportunity(
        "opp", "acme", Decimal(cents).scaleb(-2), created, close, is_closed=draw(st.booleans())
    )
    roles = [
        AttributionRole("opp", p) for p in draw(st.lists(st.sampled_from(people_ids), max_size=2))
    ]
    return Dataset(ts, people, [opp], roles), opp


_PARAMS = AttributionParams(
    lookback_days=90,
    custom=PositionWeights.from_percent(first_touch=25, closed_won=25, others=50),
)


@settings(max_examples=60, deadline=None)
@given(journeys())
def test_credits_of_every_model_sum_to_exactly_100_percent_and_the_amount(
    case: tuple[Dataset, AttributionOpportunity],
) -> None:
    dataset, opp = case
    result = Attributor(dataset, _PARAMS, AS_OF).attribute(opp, list(Model))
    cents = int((opp.amount or 0) * 100)
    for model, credits in result.credits.items():
        if credits:
            assert sum(c.share_units for c in credits) == SHARE_UNITS, model
            assert sum(c.amount_cents for c in credits) == cents, model
            assert all(c.share_units >= 0 for c in credits)


@settings(max_examples=60, deadline=None)
@given(journeys())
def test_every_credited_touch_is_inside_the_window(
    case: tuple[Dataset, AttributionOpportunity],
) -> None:
    dataset, opp = case
    if opp.is_closed and opp.close_date:  # the whole close day counts; 90 days back from it
        day = datetime.combine(opp.close_date.astimezone(UTC).date(), time(), tzinfo=UTC)
        start, end = day - timedelta(days=90), day + timedelta(days=1)
    else:  # up to as_of itself
        start, end = AS_OF - timedelta(days=90), AS_OF + timedelta(microseconds=1)
    result = Attributor(dataset, _PARAMS, AS_OF).attribute(opp, list(Model))
    for credits in result.credits.values():
        for credit in credits:
            assert start <= credit.occurred_at < end


@settings(max_examples=40, deadline=None)
@given(journeys(), st.randoms(use_true_random=False))
def test_credits_do_not_depend_on_the_order_of_the_inputs(
    case: tuple[Dataset, AttributionOpportunity], rng: object
) -> None:
    dataset, opp = case
    shuffled = Dataset(list(dataset.touches), list(dataset.people), [opp], list(dataset.roles))
    for items in (shuffled.touches, shuffled.people, shuffled.roles):
        rng.shuffle(items)  # type: ignore[attr-defined]
    first = Attributor(dataset, _PARAMS, AS_OF).attribute(opp, list(Model))
    second = Attributor(shuffled, _PARAMS, AS_OF).attribute(opp, list(Model))
    assert first.credits == second.credits
