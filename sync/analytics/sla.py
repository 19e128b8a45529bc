"""Speed of follow-up (DOMAIN.md section 4): MQL hand-off -> first sales action, and breaches;
and the time spent in each later stage that has an agreed target.

A *hand-off* is every entry into the MQL stage (a recycled lead that scores again is handed
off again). The *first sales action* is the person's first later event that is a logged task
(call, e-mail, meeting) or a status change to anything but MQL (Working, Recycled,
Disqualified, Converted, an unmapped status ...); owner reassignments do not count. An action
at the very time of the hand-off is a response of 0 seconds.

A later stage with a target (``lifecycle.sla.SAL: 3d``: accepted leads are qualified or
rejected within three days) is measured the same way from each entry into it, but its clock
stops only when the person moves on to another stage (SAL -> SQL, Disqualified, Recycled ...):
working the lead is what the stage is for, so tasks do not stop it. A stage no CRM agrees a
target for is not measured. Each measured entry ends in one of four states:

- ``met``: answered within the target (or answered, when no target applies)
- ``breached``: answered, but later than the target
- ``waiting``: not answered yet, still within the target (or no target applies)
- ``overdue``: not answered and the target has passed: a breach still running

Targets are per CRM and stage (``SlaTargets.by_crm``: each CRM's mapping ``lifecycle.sla``),
so a Salesforce hand-off is held to the Salesforce mapping's MQL target and a HubSpot one to the
HubSpot mapping's. ``analytics.sla`` overrides the MQL target explicitly: a rep's own, else
their team's, else ``analytics.sla.default`` (for every CRM), else the CRM's mapping.
"""

from __future__ import annotations

import enum
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sync.analytics.records import Event, EventKind, PersonFacts
from sync.mapping.model import Stage

__all__ = [
    "SlaCase",
    "SlaGroup",
    "SlaStatus",
    "SlaTargets",
    "crm_of",
    "percentile",
    "sla_cases",
    "sla_summary",
]


class SlaStatus(enum.StrEnum):
    """Where one hand-off stands against its SLA."""

    MET = "met"
    BREACHED = "breached"
    WAITING = "waiting"
    OVERDUE = "overdue"


@dataclass(frozen=True)
class SlaTargets:
    """Response-time targets: each CRM's per stage, and MQL overrides per rep, team, default."""

    default: timedelta | None = None  # the MQL target of every CRM (analytics.sla.default)
    teams: Mapping[str, timedelta] = field(default_factory=dict)
    reps: Mapping[str, timedelta] = field(default_factory=dict)
    # CRM connection -> stage -> target (the CRM's mapping lifecycle.sla)
    by_crm: Mapping[str, Mapping[Stage, timedelta]] = field(default_factory=dict)

    def target(
        self,
        rep: str | None,
        team: str | None,
        *,
        crm: str | None = None,
        stage: Stage = Stage.MQL,
    ) -> timedelta | None:
        """The target of an entry into ``stage`` of ``crm``, handled by a rep in a team."""
        if stage is Stage.MQL:
            if rep is not None and rep in self.reps:
                return self.reps[rep]
            if team is not None and team in self.teams:
                return self.teams[team]
            if self.default is not None:
                return self.default
        return self.by_crm.get(crm or "", {}).get(stage)

    def origin(self, crm: str, stage: Stage) -> str:
        """Where the target of ``stage`` on ``crm`` (for a rep without their own) comes from."""
        if stage is Stage.MQL and self.default is not None:
            return "analytics.sla.default"
        if stage in self.by_crm.get(crm, {}):
            return f"lifecycle.sla.{stage}"
        return "none"

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The stages measured: MQL always, any other stage some CRM has a target for."""
        found = {stage for targets in self.by_crm.values() for stage in targets}
        return tuple(s for s in Stage if s is Stage.MQL or s in found)

    @property
    def any(self) -> bool:
        """Whether any target is agreed at all."""
        return bool(self.default or self.teams or self.reps or any(self.by_crm.values()))


@dataclass(frozen=True, slots=True)
class SlaCase:
    """One hand-off of one person to sales and how fast it was answered."""

    person: str
    handed_off_at: datetime
    rep: str | None
    team: str | None
    source: str | None
    target: timedelta | None
    first_action_at: datetime | None
    status: SlaStatus
    email: str | None = None
    stage: Stage = Stage.MQL  # the stage entered at ``handed_off_at``
    crm: str | None = None  # the CRM connection of the person

    @property
    def response(self) -> timedelta | None:
        """Time from hand-off to the first sales action (None while unanswered)."""
        if self.first_action_at is None:
            return None
        return self.first_action_at - self.handed_off_at

    @property
    def is_breach(self) -> bool:
        """Whether the SLA was (or is being) broken."""
        return self.status in (SlaStatus.BREACHED, SlaStatus.OVERDUE)

    def overdue_by(self, now: datetime) -> timedelta | None:
        """How far past the target the response is (or, unanswered, is by ``now``)."""
        if self.target is None:
            return None
        took = self.response if self.response is not None else now - self.handed_off_at
        late = took - self.target
        return late if late > timedelta(0) else None


def _is_action(event: Event) -> bool:
    if event.kind is EventKind.TASK:
        return True
    return event.kind is EventKind.STATUS and event.stage is not Stage.MQL


def _leaves(event: Event, stage: Stage) -> bool:
    """Whether ``event`` moves a person out of ``stage`` (a later stage's clock stops)."""
    return event.kind is EventKind.STATUS and event.stage is not None and event.stage is not stage


def _status(target: timedelta | None, took: timedelta, answered: bool) -> SlaStatus:
    if answered:
        return SlaStatus.BREACHED if target is not None and took > target else SlaStatus.MET
    return SlaStatus.OVERDUE if target is not None and took > target else SlaStatus.WAITING


# Stages at or past the hand-off: reaching MQL from one of these (another field saying MQL
# late, a status set back to an MQL value) is not a new hand-off; from nurture, it is.
_HANDED_OFF = frozenset({Stage.MQL, Stage.SAL, Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER})


def crm_of(person: str) -> str | None:
    """The CRM connection of a person key (``salesforce:00Q...``); None for e-mail-only keys."""
    crm, sep, _ = person.partition(":")
    return crm if sep and crm != "email" else None


@dataclass
class _Clock:
    at: datetime
    rep: str | None


def sla_cases(
    events: Iterable[Event],
    people: Mapping[str, PersonFacts],
    targets: SlaTargets,
    now: datetime,
    team_of: Callable[[str | None], str | None] = lambda _rep: None,
    *,
    stages: Iterable[Stage] | None = None,
) -> list[SlaCase]:
    """Every entry into a measured stage (``stages``, default ``targets.stages``: MQL and the
    stages with a target) with its answer and SLA status, in entry order."""
    measured = tuple(stages) if stages is not None else targets.stages
    by_person: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_person[event.person].append(event)
    cases: list[SlaCase] = []
    for person, stream in by_person.items():
        # A task logged at the very instant of the hand-off answers it (a 0-second response),
        # whichever of the two rows the ledger stored first.
        stream.sort(key=lambda e: (e.at, e.kind is EventKind.TASK, e.seq))
        facts = people.get(person)
        crm = crm_of(person)

        current: Stage | None = None
        open_: dict[Stage, _Clock] = {}
        ended: list[tuple[Stage, _Clock, datetime | None]] = []
        for event in stream:
            for stage, clock in list(open_.items()):
                answered = _is_action(event) if stage is Stage.MQL else _leaves(event, stage)
                if answered:
                    ended.append((stage, clock, event.at))
                    del open_[stage]
            entered = event.stage
            if (
                entered is not None
                and entered in measured
                and entered not in open_
                and (entered is Stage.MQL or entered in targets.by_crm.get(crm or "", {}))
            ):
                new = current not in _HANDED_OFF if entered is Stage.MQL else current is not entered
                if new:
                    open_[entered] = _Clock(
                        event.at, event.owner or (facts.owner if facts else None)
                    )
            if entered is not None:
                current = entered
        ended.extend((stage, clock, None) for stage, clock in open_.items())
        cases.extend(
            _case(
                person,
                facts,
                clock.at,
                clock.rep,
                action_at=action_at,
                targets=targets,
                team_of=team_of,
                now=now,
                stage=stage,
                crm=crm,
            )
            for stage, clock, action_at in ended
        )
    cases.sort(key=lambda c: (c.handed_off_at, c.person, list(Stage).index(c.stage)))
    return cases


def _case(
    person: str,
    facts: PersonFacts | None,
    handed_off_at: datetime,
    rep: str | None,
    *,
    action_at: datetime | None,
    targets: SlaTargets,
    team_of: Callable[[str | None], str | None],
    now: datetime | None = None,
    stage: Stage = Stage.MQL,
    crm: str | None = None,
) -> SlaCase:
    team = team_of(rep)
    target = targets.target(rep, team, crm=crm, stage=stage)
    end = action_at if action_at is not None else now
    assert end is not None
    return SlaCase(
        person=person,
        handed_off_at=handed_off_at,
        rep=rep,
        team=team,
        source=facts.source if facts else None,
        target=target,
        first_action_at=action_at,
        status=_status(target, end - handed_off_at, action_at is not None),
        email=facts.email if facts else None,
        stage=stage,
        crm=crm,
    )


@dataclass(frozen=True, slots=True)
class SlaGroup:
    """SLA results of one rep, team or source."""

    group: str
    handed_off: int
    answered: int
    met: int
    breached: int
    waiting: int
    overdue: int
    median_hours: float | None  # of answered hand-offs
    p90_hours: float | None

    @property
    def breach_rate(self) -> float | None:
        """Share of hand-offs whose SLA was or is being broken (None when there are none)."""
        decided = self.met + self.breached + self.overdue
        return (self.breached + self.overdue) / decided if decided else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def sla_summary(
    cases: Iterable[SlaCase], key: Callable[[SlaCase], str | None], unknown: str = "(none)"
) -> list[SlaGroup]:
    """SLA results grouped by ``key`` (rep, team, source ...), worst breach rate first."""
    groups: dict[str, list[SlaCase]] = defaultdict(list)
    for case in cases:
        groups[key(case) or unknown].append(case)
    out: list[SlaGroup] = []
    for name, members in groups.items():
        hours = [c.response.total_seconds() / 3600 for c in members if c.response is not None]
        counts = dict.fromkeys(SlaStatus, 0)
        for case in members:
            counts[case.status] += 1
        out.append(
            SlaGroup(
                group=name,
                handed_off=len(members),
                answered=len(hours),
                met=counts[SlaStatus.MET],
                breached=counts[SlaStatus.BREACHED],
                waiting=counts[SlaStatus.WAITING],
                overdue=counts[SlaStatus.OVERDUE],
                median_hours=statistics.median(hours) if hours else None,
                p90_hours=percentile(hours, 90),
            )
        )
    out.sort(key=lambda g: (-(g.breach_rate or 0.0), -g.handed_off, g.group))
    return out
