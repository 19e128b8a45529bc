"""Why sales said no (DOMAIN.md sections 2-3): disqualification and recycle reasons, grouped.

A *decision* is one entry of a person into the Disqualified or Recycled stage (a lead recycled
twice is two decisions), dated by that status change, with the reason the CRM gave with it (the
field named by the mapping's ``lifecycle.reason_field``, and for Salesforce the connection's
``lead_reason_fields``) and the rep who owned the person then (else the person's owner). A
reason left empty counts as ``(no reason given)``. Reasons are grouped regardless of case and
spacing ("No budget", "no  budget") and shown in their most frequent spelling.

Counting is per outcome: the share of a reason is its decisions over every decision of the
same outcome in the same group, ``(no reason given)`` included, so the shares of one group's
disqualification reasons add up to 100%. Groups: all decisions of the report's period, the
month of the decision (the trend), the campaign and the channel of the person's first touch,
the rep, and the rep groups of an experiment.

A reason *dominates* an outcome when more than half (``DOMINANT_SHARE``) of the decisions of
that outcome that give a reason give this one, and at least ``DOMINANT_MIN`` decisions give a
reason: a majority no other reason can match, over enough decisions not to be an accident of
two or three leads. The report's summary names a dominant reason and says when none dominates.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sync.analytics.lifecycle import History
from sync.analytics.records import CampaignInfo, Membership, PersonFacts
from sync.mapping.model import Stage

__all__ = [
    "DOMINANT_MIN",
    "DOMINANT_SHARE",
    "NO_REASON",
    "NO_TOUCH",
    "OUTCOMES",
    "Decision",
    "ReasonCount",
    "ReasonGap",
    "decision_after",
    "decisions",
    "dominant_reason",
    "first_touches",
    "reason_counts",
    "reason_gaps",
]

NO_REASON = "(no reason given)"
NO_TOUCH = "(no touch)"
NO_CAMPAIGN = "(no campaign)"
NO_CHANNEL = "(no channel)"
OUTCOMES: tuple[Stage, ...] = (Stage.DISQUALIFIED, Stage.RECYCLED)
DOMINANT_SHARE = 0.5
DOMINANT_MIN = 5


@dataclass(frozen=True, slots=True)
class Decision:
    """One disqualification or recycle of one person, with its reason."""

    person: str
    at: datetime
    outcome: Stage  # Stage.DISQUALIFIED or Stage.RECYCLED
    reason: str = NO_REASON
    rep: str | None = None

    @property
    def given(self) -> bool:
        """Whether the CRM gave a reason."""
        return self.reason != NO_REASON

    @property
    def crm(self) -> str | None:
        """The CRM connection of the person (the prefix of their key), if a CRM knows them."""
        prefix, sep, _ = self.person.partition(":")
        return prefix if sep and prefix != "email" else None


def _spaced(text: str | None) -> str:
    return " ".join((text or "").split())


def decisions(
    histories: Mapping[str, History], people: Mapping[str, PersonFacts] | None = None
) -> list[Decision]:
    """Every disqualification and recycle in the histories, in time order."""
    people = people or {}
    found: list[tuple[str, datetime, Stage, str, str | None]] = []
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    for person, history in histories.items():
        facts = people.get(person)
        for visit in history.visits:
            if visit.stage not in OUTCOMES:
                continue
            text = _spaced(visit.reason)
            if text:
                spellings[text.casefold()][text] += 1
            rep = visit.owner or (facts.owner if facts else None)
            found.append((person, visit.entered_at, visit.stage, text, rep))
    label = {
        key: min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        for key, counts in spellings.items()
    }
    out = [
        Decision(person, at, outcome, label[text.casefold()] if text else NO_REASON, rep)
        for person, at, outcome, text, rep in found
    ]
    out.sort(key=lambda d: (d.at, d.person))
    return out


@dataclass(frozen=True, slots=True)
class ReasonCount:
    """How many decisions of one outcome in one group gave one reason."""

    group: str
    outcome: Stage
    reason: str
    count: int
    total: int  # decisions of this outcome in this group

    @property
    def share(self) -> float:
        """Share of the group's decisions of this outcome."""
        return self.count / self.total if self.total else 0.0


def reason_counts(
    chosen: Iterable[Decision],
    key: Callable[[Decision], str | None],
    *,
    unknown: str = "(none)",
    groups: Sequence[str] | None = None,
) -> list[ReasonCount]:
    """Counts and shares per reason of each group ``key`` puts decisions in.

    Groups come in ``groups`` order when given (others are left out), else most decisions
    first; within a group, disqualifications before recycles, the most given reason first and
    ``(no reason given)`` last.
    """
    counts: dict[str, Counter[tuple[Stage, str]]] = defaultdict(Counter)
    for decision in chosen:
        counts[key(decision) or unknown][(decision.outcome, decision.reason)] += 1
    if groups is None:
        order = sorted(counts, key=lambda g: (-counts[g].total(), g))
    else:
        order = [g for g in dict.fromkeys(groups) if g in counts]
    rank = {outcome: i for i, outcome in enumerate(OUTCOMES)}
    rows: list[ReasonCount] = []
    for group in order:
        totals: Counter[Stage] = Counter()
        for (outcome, _reason), n in counts[group].items():
            totals[outcome] += n
        lines = sorted(
            counts[group].items(),
            key=lambda kv: (rank[kv[0][0]], kv[0][1] == NO_REASON, -kv[1], kv[0][1]),
        )
        rows.extend(
            ReasonCount(group, outcome, reason, n, totals[outcome])
            for (outcome, reason), n in lines
        )
    return rows


def dominant_reason(rows: Iterable[ReasonCount], outcome: Stage) -> ReasonCount | None:
    """The reason that dominates ``outcome`` in one group's rows (module docstring), if any."""
    given = [r for r in rows if r.outcome is outcome and r.reason != NO_REASON]
    explained = sum(r.count for r in given)
    if explained < DOMINANT_MIN:
        return None
    top = max(given, key=lambda r: (r.count, r.reason))
    return top if top.count > DOMINANT_SHARE * explained else None


def first_touches(
    memberships: Iterable[Membership], campaigns: Mapping[str, CampaignInfo]
) -> dict[str, tuple[str, str]]:
    """Each touched person's first touch as (campaign name, channel); the campaign's channel
    wins over the touch's own."""
    first: dict[str, Membership] = {}
    for membership in memberships:
        seen = first.get(membership.person)
        if seen is None or (membership.first_at, membership.campaign or "") < (
            seen.first_at,
            seen.campaign or "",
        ):
            first[membership.person] = membership
    out: dict[str, tuple[str, str]] = {}
    for person, membership in first.items():
        info = campaigns.get(membership.campaign) if membership.campaign else None
        name = info.name if info else membership.campaign or NO_CAMPAIGN
        channel = (info.channel if info else None) or membership.channel or NO_CHANNEL
        out[person] = (name, channel)
    return out


@dataclass(frozen=True, slots=True)
class ReasonGap:
    """Decisions of one CRM and outcome without a reason, and the fields that would carry it."""

    crm: str
    outcome: Stage
    missing: int
    total: int
    fields: tuple[str, ...]


def reason_gaps(chosen: Iterable[Decision], fields: Mapping[str, Sequence[str]]) -> list[ReasonGap]:
    """Per CRM and outcome, how many decisions gave no reason, with the CRM's reason fields."""
    missing: Counter[tuple[str, Stage]] = Counter()
    total: Counter[tuple[str, Stage]] = Counter()
    for decision in chosen:
        key = (decision.crm or "(no CRM)", decision.outcome)
        total[key] += 1
        if not decision.given:
            missing[key] += 1
    rank = {outcome: i for i, outcome in enumerate(OUTCOMES)}
    return [
        ReasonGap(crm, outcome, missing[(crm, outcome)], n, tuple(fields.get(crm, ())))
        for (crm, outcome), n in sorted(total.items(), key=lambda kv: (kv[0][0], rank[kv[0][1]]))
    ]


def decision_after(
    history: History | None, mine: Sequence[Decision], handed_off_at: datetime
) -> Decision | None:
    """What sales decided about a hand-off: the person's first disqualification or recycle at or
    after ``handed_off_at`` and before their next hand-off (``mine``: their decisions)."""
    later_mql = [at for at in (history.entered(Stage.MQL) if history else []) if at > handed_off_at]
    until = min(later_mql, default=None)
    for decision in mine:
        if decision.at >= handed_off_at and (until is None or decision.at < until):
            return decision
    return None
