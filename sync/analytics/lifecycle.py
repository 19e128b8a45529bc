"""Lifecycle histories from dispositions: stage visits per person, time in stage, current stage.

A history is the person's stage changes in time order with repeats collapsed: a Salesforce
lead whose ``Status`` and closedloop's lifecycle field both say "MQL" at 09:00 entered MQL
once (with the first reason either change gives). The main line of the funnel is
Inquiry -> MQL -> SAL -> SQL -> Opportunity -> Customer; reaching a later main-line stage
counts as having passed the earlier ones (a lead converted straight from MQL still counts as an
SQL and a SAL).

Deals move their people along too (``deal_stage_events``): the people of an opportunity (its
contact roles, else everyone at its account, as attribution counts them) enter Opportunity when
it is created and Customer when it is won, whatever their own lead or contact status says.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sync.analytics.records import Deal, Event, EventKind, PersonFacts
from sync.mapping.model import Stage

__all__ = [
    "MAIN_LINE",
    "History",
    "StageVisit",
    "build_histories",
    "current_stages",
    "deal_stage_events",
    "reached_stages",
]

MAIN_LINE: tuple[Stage, ...] = (
    Stage.INQUIRY,
    Stage.MQL,
    Stage.SAL,
    Stage.SQL,
    Stage.OPPORTUNITY,
    Stage.CUSTOMER,
)
_RANK = {stage: rank for rank, stage in enumerate(MAIN_LINE)}


@dataclass(frozen=True, slots=True)
class StageVisit:
    """One stay in one stage: entered at, left at (None while still there), whose it was."""

    stage: Stage
    entered_at: datetime
    left_at: datetime | None = None
    owner: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class History:
    """A person's stage visits in time order."""

    person: str
    visits: tuple[StageVisit, ...]

    @property
    def current_stage(self) -> Stage | None:
        """The stage the person is in now."""
        return self.visits[-1].stage if self.visits else None

    def entered(self, stage: Stage) -> list[datetime]:
        """Every time the person entered ``stage`` (a recycled lead can be an MQL twice)."""
        return [v.entered_at for v in self.visits if v.stage is stage]

    def first_entered(self, stage: Stage) -> datetime | None:
        """When the person first entered ``stage``, if ever."""
        times = self.entered(stage)
        return times[0] if times else None

    def time_in_stage(self, stage: Stage, now: datetime) -> timedelta:
        """Total time spent in ``stage`` over every visit; an open visit counts up to ``now``."""
        total = timedelta(0)
        for visit in self.visits:
            if visit.stage is stage:
                total += (visit.left_at or now) - visit.entered_at
        return total

    @property
    def reached(self) -> frozenset[Stage]:
        """Every stage visited, plus the main-line stages before the furthest one reached."""
        return reached_stages(v.stage for v in self.visits)


def reached_stages(stages: Iterable[Stage]) -> frozenset[Stage]:
    """The stages visited plus the main-line stages implied by the furthest one."""
    seen = set(stages)
    furthest = max((_RANK[s] for s in seen if s in _RANK), default=-1)
    seen.update(MAIN_LINE[: furthest + 1])
    return frozenset(seen)


def build_histories(events: Iterable[Event]) -> dict[str, History]:
    """Each person's history from their stage-carrying events (tasks and owners are ignored)."""
    by_person: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        if event.stage is not None:
            by_person[event.person].append(event)
    histories: dict[str, History] = {}
    for person, changes in by_person.items():
        changes.sort(key=lambda e: (e.at, e.seq))
        visits: list[StageVisit] = []
        for change in changes:
            stage = change.stage
            assert stage is not None
            if visits and visits[-1].stage is stage:
                last = visits[-1]
                if not (last.reason or "").strip() and (change.reason or "").strip():
                    # Another field saying the same stage (a Lead's Status beside closedloop's
                    # lifecycle field) may be the one that carries the reason.
                    visits[-1] = StageVisit(
                        last.stage, last.entered_at, last.left_at, last.owner, change.reason
                    )
                continue
            if visits:
                last = visits[-1]
                visits[-1] = StageVisit(
                    last.stage, last.entered_at, change.at, last.owner, last.reason
                )
            visits.append(StageVisit(stage, change.at, None, change.owner, change.reason))
        histories[person] = History(person, tuple(visits))
    return histories


def current_stages(histories: Mapping[str, History]) -> dict[Stage, int]:
    """How many people are in each stage right now."""
    counts: dict[Stage, int] = defaultdict(int)
    for history in histories.values():
        stage = history.current_stage
        if stage is not None:
            counts[stage] += 1
    return dict(counts)


def deal_stage_events(deals: Iterable[Deal], people: Mapping[str, PersonFacts]) -> list[Event]:
    """The stage changes deals imply for their people: Opportunity at creation, Customer when won.

    A deal's people are its contact roles, else (no roles) every person at its account.
    """
    by_account: dict[str, list[str]] = defaultdict(list)
    for key, facts in people.items():
        if facts.account:
            by_account[facts.account].append(key)
    events: list[Event] = []
    for deal in deals:
        members = deal.contacts or (by_account.get(deal.account, []) if deal.account else [])
        label = deal.name or deal.key
        for person in dict.fromkeys(members):
            events.append(
                Event(
                    person, deal.created_at, EventKind.STATUS, Stage.OPPORTUNITY, label, deal.owner
                )
            )
            if deal.is_closed and deal.is_won and deal.close_date is not None:
                events.append(
                    Event(
                        person, deal.close_date, EventKind.STATUS, Stage.CUSTOMER, label, deal.owner
                    )
                )
    return events
