"""The lead funnel: how many people reached each stage, and conversion between stages.

Conversion is measured on *cohorts*, so rates never exceed 100%: a cohort is a set of people
(those who entered the funnel in a month, the members of a campaign, the people a channel
touched), and ``X -> Y`` is the share of the cohort's people who reached X that also reached
Y. Everyone known to the funnel has reached Inquiry (a touch or a CRM record is an inquiry).
A person belongs to every campaign that touched them, so campaign rows overlap by design.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sync.analytics.lifecycle import MAIN_LINE, History, reached_stages
from sync.analytics.periods import Period, month_key
from sync.analytics.records import CampaignInfo, Membership, PersonFacts
from sync.mapping.model import Stage

__all__ = [
    "FunnelRow",
    "FunnelStep",
    "cohort_by_campaign",
    "cohort_by_channel",
    "cohort_by_month",
    "entered_funnel_at",
    "funnel",
    "funnel_rows",
    "reached_by_person",
]


@dataclass(frozen=True, slots=True)
class FunnelStep:
    """One stage of a funnel: people who reached it and the share of the previous stage."""

    stage: Stage
    count: int
    conversion: float | None  # from the previous main-line stage; None for the first stage


@dataclass(frozen=True)
class FunnelRow:
    """The funnel of one cohort (a campaign, a channel, a month), plus its side exits."""

    group: str
    steps: tuple[FunnelStep, ...]
    recycled: int
    disqualified: int

    @property
    def size(self) -> int:
        """People in the cohort."""
        return self.steps[0].count if self.steps else 0

    def rate(self, stage: Stage) -> float | None:
        """Share of the cohort that reached ``stage`` (lead-to-customer when ``CUSTOMER``)."""
        if not self.size:
            return None
        return next(s.count for s in self.steps if s.stage is stage) / self.size


def reached_by_person(
    people: Iterable[str], histories: Mapping[str, History]
) -> dict[str, frozenset[Stage]]:
    """The stages each person reached; people without a history are inquiries."""
    inquiry = frozenset({Stage.INQUIRY})
    out: dict[str, frozenset[Stage]] = {}
    for person in people:
        history = histories.get(person)
        out[person] = history.reached | inquiry if history else inquiry
    return out


def funnel(reached: Iterable[frozenset[Stage]]) -> tuple[FunnelStep, ...]:
    """Counts per main-line stage and step-to-step conversion for one cohort."""
    counts = dict.fromkeys(MAIN_LINE, 0)
    closed: dict[frozenset[Stage], frozenset[Stage]] = {}  # few distinct sets: close each once
    for stages in reached:
        full = closed.get(stages)
        if full is None:
            full = closed[stages] = reached_stages(stages)
        for stage in full:
            if stage in counts:
                counts[stage] += 1
    steps: list[FunnelStep] = []
    previous: int | None = None
    for stage in MAIN_LINE:
        count = counts[stage]
        conversion = None if previous is None else (count / previous if previous else None)
        steps.append(FunnelStep(stage, count, conversion))
        previous = count
    return tuple(steps)


def funnel_rows(
    cohorts: Mapping[str, Iterable[str]], reached: Mapping[str, frozenset[Stage]]
) -> list[FunnelRow]:
    """One funnel per cohort (in the cohorts' order); unknown people count as inquiries."""
    inquiry = frozenset({Stage.INQUIRY})
    rows: list[FunnelRow] = []
    for group, members in cohorts.items():
        sets = [reached.get(person, inquiry) for person in dict.fromkeys(members)]
        rows.append(
            FunnelRow(
                group=group,
                steps=funnel(sets),
                recycled=sum(1 for s in sets if Stage.RECYCLED in s),
                disqualified=sum(1 for s in sets if Stage.DISQUALIFIED in s),
            )
        )
    return rows


def entered_funnel_at(
    people: Mapping[str, PersonFacts],
    histories: Mapping[str, History],
    memberships: Iterable[Membership],
) -> dict[str, datetime]:
    """When each person entered the funnel: their first touch, stage change or CRM creation."""
    first: dict[str, datetime] = {}

    def seen(person: str, when: datetime | None) -> None:
        if when is not None and (person not in first or when < first[person]):
            first[person] = when

    for membership in memberships:
        seen(membership.person, membership.first_at)
    for person, history in histories.items():
        if history.visits:
            seen(person, history.visits[0].entered_at)
    for person, facts in people.items():
        seen(person, facts.created_at)
    return first


def cohort_by_month(entered: Mapping[str, datetime], period: Period) -> dict[str, list[str]]:
    """People by the month they entered the funnel, for months inside ``period``, in order."""
    cohorts: dict[str, list[str]] = defaultdict(list)
    for person, when in entered.items():
        if period.contains(when):
            cohorts[month_key(when)].append(person)
    return {month: cohorts[month] for month in sorted(cohorts)}


def cohort_by_campaign(
    memberships: Iterable[Membership], period: Period, campaigns: Mapping[str, CampaignInfo]
) -> dict[str, list[str]]:
    """Members of each campaign first touched inside ``period``, keyed by campaign name."""
    cohorts: dict[str, list[str]] = defaultdict(list)
    for membership in memberships:
        campaign = membership.campaign
        if campaign is not None and period.contains(membership.first_at):
            info = campaigns.get(campaign)
            cohorts[info.name if info else campaign].append(membership.person)
    return dict(sorted(cohorts.items(), key=lambda kv: (-len(set(kv[1])), kv[0])))


def cohort_by_channel(
    memberships: Iterable[Membership], period: Period, campaigns: Mapping[str, CampaignInfo]
) -> dict[str, list[str]]:
    """People each channel touched inside ``period`` (channel of the campaign that did)."""
    cohorts: dict[str, list[str]] = defaultdict(list)
    for membership in memberships:
        if period.contains(membership.first_at):
            info = campaigns.get(membership.campaign) if membership.campaign else None
            channel = (info.channel if info else None) or membership.channel or "(no channel)"
            cohorts[channel].append(membership.person)
    return dict(sorted(cohorts.items(), key=lambda kv: (-len(set(kv[1])), kv[0])))
