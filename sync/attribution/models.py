"""The nine attribution models: pure functions from touches, people and deals to credits.

Definitions (close to HubSpot's published ones):

- Counted touches of an opportunity: touches of the people in its *scope* (``scope``, the three
  mappings Marketo Measure offers): ``contact_roles`` (the default) counts the people with a
  (not deleted) contact role on it, or, when it has none, every person of its account;
  ``primary_contact_role`` only the person of its primary contact role (none: the opportunity
  counts no touch; HubSpot deal-contact associations carry no primary flag, so a HubSpot deal
  has none); ``account`` every person of its account, roles or not. Touches occur before the
  *end*: the end of the close day of a closed opportunity (a close date is a day, so a touch
  later that day counts), ``as_of`` (inclusive) for an open one; no earlier than
  ``lookback_days`` before the end (``None``: no limit), and of a counted kind
  (``counted_kinds``; ``None``: every kind). Converted leads and merged records count as their
  surviving person (see ``sync.attribution.graph``).
- Milestones: *first touch* = the earliest counted touch; *lead creation* = the last counted
  touch of the lead behind the opportunity at or before that lead was created (the lead behind
  it: the lead converted into this opportunity, else the primary contact role, else the
  earliest-created counted person); *opportunity creation* = the last counted touch at or before
  the opportunity was created; *closed won* = the last counted touch (at or before the end).
- Models: first touch, lead creation, last touch (= the closed-won milestone): 100% to that
  touch. Linear: equal shares. U-shaped: 40% first, 40% lead creation, 20% spread evenly over
  the other counted touches. W-shaped: 30% each to first, lead creation, opportunity creation,
  10% over the others. Full path: 22.5% to each of the four milestones, 10% over the others.
  Time decay: weight ``2 ** (-age_days / half_life_days)`` with the age measured back from the
  end, normalised. Custom: any ``PositionWeights`` (from YAML).
- Where milestones fall on one touch their shares add up; a touch is "other" when it carries no
  milestone share of the model. When no other touch remains, the spread share goes to the
  milestones in proportion to their shares; when a milestone is missing (no lead creation
  touch, no touch before the opportunity was created), the shares present are scaled up in
  proportion. A model with nothing to credit (no counted touches; no lead creation touch for
  the lead creation model) credits nothing: the opportunity is *unattributed* in that model.

Rounding: weights are integers (time-decay weights are ``2**52``-scaled and rounded), and both
the share (in millionths, ``SHARE_UNITS`` = 100%) and the amount (in cents) are split with
``sync.attribution.allocation.largest_remainder`` over touches in (time, touch key) order. So
each opportunity's credits sum to exactly 100% and to exactly its amount, and equal remainders
go to the earlier touch, then the smaller key.

Sourced vs influenced: the *sourced* campaign of an opportunity is the campaign of its lead
creation touch, else its primary campaign (``campaign_id``); the *influencing* campaigns are
those of its counted touches.
"""

from __future__ import annotations

import enum
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from operator import itemgetter
from typing import Any, NamedTuple

from sync.attribution.allocation import largest_remainder
from sync.attribution.graph import IdentityGraph
from sync.attribution.records import (
    AttributionOpportunity,
    AttributionPerson,
    AttributionRole,
    AttributionTouch,
    Dataset,
)

__all__ = [
    "ALGORITHM_VERSION",
    "DEFAULT_COUNTED_KINDS",
    "FULL_PATH_WEIGHTS",
    "SCOPE_LABELS",
    "SHARE_UNITS",
    "U_SHAPED_WEIGHTS",
    "W_SHAPED_WEIGHTS",
    "AttributionParams",
    "Attributor",
    "Credit",
    "Milestone",
    "Model",
    "OpportunityAttribution",
    "PositionWeights",
    "Scope",
    "attribute",
]

SHARE_UNITS = 1_000_000  # a credit's share in millionths of the opportunity: 1,000,000 = 100%
# Bump when a change to this module can change any credit: it is part of the run fingerprint.
ALGORITHM_VERSION = "2"  # 2: the whole close day counts

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_US = 86_400_000_000
_DECAY_SCALE = 2**52


class Model(enum.StrEnum):
    """The attribution models, by the names the CLI and the ledger use."""

    FIRST_TOUCH = "first_touch"
    LEAD_CREATION = "lead_creation"
    LAST_TOUCH = "last_touch"
    LINEAR = "linear"
    U_SHAPED = "u_shaped"
    W_SHAPED = "w_shaped"
    FULL_PATH = "full_path"
    TIME_DECAY = "time_decay"
    CUSTOM = "custom"


class Milestone(enum.StrEnum):
    """The touches that mark a step of the buying journey."""

    FIRST_TOUCH = "first_touch"
    LEAD_CREATION = "lead_creation"
    OPPORTUNITY_CREATION = "opportunity_creation"
    CLOSED_WON = "closed_won"


@dataclass(frozen=True, slots=True)
class PositionWeights:
    """Shares of a position-based model in millionths: one per milestone plus the spread share."""

    first_touch: int = 0
    lead_creation: int = 0
    opportunity_creation: int = 0
    closed_won: int = 0
    others: int = 0

    def __post_init__(self) -> None:
        values = (
            self.first_touch,
            self.lead_creation,
            self.opportunity_creation,
            self.closed_won,
            self.others,
        )
        if any(v < 0 for v in values) or sum(values) != SHARE_UNITS:
            raise ValueError(
                f"position weights must be non-negative and add up to 100%, got {values} "
                f"millionths (sum {sum(values)})"
            )

    @classmethod
    def from_percent(cls, **percents: Decimal | float | int | str) -> PositionWeights:
        """Weights given in percent (``first_touch=40, lead_creation=40, others=20``)."""
        units = {}
        for name, value in percents.items():
            scaled = Decimal(str(value)) * (SHARE_UNITS // 100)
            if scaled != scaled.to_integral_value():
                raise ValueError(f"{name}: at most 4 decimal places of a percent, got {value}")
            units[name] = int(scaled)
        return cls(**units)

    def of(self, milestone: Milestone) -> int:
        """The share of one milestone."""
        return int(getattr(self, _MILESTONE_NAMES[milestone]))


_MILESTONE_NAMES = {m: m.value for m in Milestone}

U_SHAPED_WEIGHTS = PositionWeights(first_touch=400_000, lead_creation=400_000, others=200_000)
W_SHAPED_WEIGHTS = PositionWeights(
    first_touch=300_000, lead_creation=300_000, opportunity_creation=300_000, others=100_000
)
FULL_PATH_WEIGHTS = PositionWeights(
    first_touch=225_000,
    lead_creation=225_000,
    opportunity_creation=225_000,
    closed_won=225_000,
    others=100_000,
)
_SINGLE_TOUCH = {
    Model.FIRST_TOUCH: Milestone.FIRST_TOUCH,
    Model.LEAD_CREATION: Milestone.LEAD_CREATION,
    Model.LAST_TOUCH: Milestone.CLOSED_WON,
}
_POSITION = {
    Model.U_SHAPED: U_SHAPED_WEIGHTS,
    Model.W_SHAPED: W_SHAPED_WEIGHTS,
    Model.FULL_PATH: FULL_PATH_WEIGHTS,
}

# Engagement that says something about intent. Sends and deliveries are ours, not the buyer's;
# bounces, unsubscribes and score changes are no buying signal.
DEFAULT_COUNTED_KINDS = frozenset(
    {
        "email_open",
        "email_click",
        "form_fill",
        "page_view",
        "webinar_registered",
        "webinar_attended",
        "event_attended",
        "content_download",
        "ad_click",
        "list_import",
    }
)


class Scope(enum.StrEnum):
    """Whose touches count for an opportunity (Marketo Measure's three mapping methods)."""

    CONTACT_ROLES = "contact_roles"  # its contact roles, else (none) its account's people
    PRIMARY_CONTACT_ROLE = "primary_contact_role"  # its primary contact role only
    ACCOUNT = "account"  # everyone at its account


SCOPE_LABELS = {
    Scope.CONTACT_ROLES: "people with a contact role on the deal (everyone at the account "
    "when it has none)",
    Scope.PRIMARY_CONTACT_ROLE: "the deal's primary contact role only",
    Scope.ACCOUNT: "everyone at the deal's account",
}


@dataclass(frozen=True)
class AttributionParams:
    """What a run counts and how: scope, lookback, counted kinds, half-life, custom weights."""

    lookback_days: int | None = 365
    counted_kinds: frozenset[str] | None = DEFAULT_COUNTED_KINDS
    half_life_days: float = 7.0
    custom: PositionWeights | None = None
    scope: Scope = Scope.CONTACT_ROLES

    def __post_init__(self) -> None:
        if self.scope not in tuple(Scope):
            raise ValueError(
                f"unknown attribution scope {self.scope!r}; choose from "
                f"{', '.join(s.value for s in Scope)}"
            )
        object.__setattr__(self, "scope", Scope(self.scope))
        if self.lookback_days is not None and self.lookback_days <= 0:
            raise ValueError("lookback_days must be positive (or None for no limit)")
        if not self.half_life_days > 0:
            raise ValueError("half_life_days must be positive")

    def describe(self) -> dict[str, Any]:
        """The parameters as plain, ordered JSON data (stored with a run, part of its hash)."""
        custom = self.custom
        return {
            "scope": self.scope.value,
            "lookback_days": self.lookback_days,
            "counted_kinds": sorted(self.counted_kinds) if self.counted_kinds is not None else None,
            "half_life_days": self.half_life_days,
            "custom": None
            if custom is None
            else {m.value: custom.of(m) for m in Milestone} | {"others": custom.others},
        }


class Credit(NamedTuple):
    """The part of one opportunity one model gives one touch.

    A named tuple, not a dataclass: a run over a million touches makes about as many credits,
    and a tuple is made several times faster than a frozen instance."""

    model: str
    opportunity_id: str
    touch_key: str
    person_id: str
    occurred_at: datetime
    campaign: str | None
    channel: str | None
    share_units: int  # millionths of the opportunity (SHARE_UNITS = 100%)
    amount_cents: int
    milestones: tuple[str, ...] = ()

    @property
    def share(self) -> Decimal:
        """The share as an exact fraction of 1 (``Decimal('0.05')`` is 5%)."""
        return Decimal(self.share_units).scaleb(-6)

    @property
    def amount(self) -> Decimal:
        """The credited amount, exact to the cent."""
        return Decimal(self.amount_cents).scaleb(-2)


@dataclass(frozen=True, slots=True)
class OpportunityAttribution:
    """One opportunity's credits under each model run, with its milestones and sourcing."""

    opportunity: AttributionOpportunity
    counted_touches: int
    lead_person_id: str | None
    milestones: Mapping[str, str]  # milestone -> touch key
    sourced_campaign: str | None
    sourced_by: str | None  # "lead_creation" or "primary_campaign"
    influencing_campaigns: tuple[str, ...]
    credits: Mapping[str, list[Credit]] = field(default_factory=dict)

    def attributed(self, model: str) -> bool:
        """Whether ``model`` credited any touch of this opportunity."""
        return bool(self.credits.get(model))


# (time in microseconds since the epoch, touch key, canonical person id, touch)
_Entry = tuple[int, str, str, AttributionTouch]
_ORDER = itemgetter(0, 1)
_TIME = itemgetter(0)


def _us(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _cents(amount: Decimal | None) -> int:
    if amount is None:
        return 0
    return int((amount * 100).to_integral_value(rounding=ROUND_HALF_EVEN))


class Attributor:
    """Attribution over one dataset: touches are grouped per person once, then each opportunity
    is attributed under any number of models from the same counted touches."""

    def __init__(
        self,
        dataset: Dataset,
        params: AttributionParams | None = None,
        as_of: datetime | None = None,
        *,
        graph: IdentityGraph | None = None,
    ) -> None:
        """``graph``: the identity graph of ``dataset.people`` when the caller has built it."""
        self.params = params or AttributionParams()
        self.as_of = as_of if as_of is not None else datetime.now(UTC)
        self._as_of_us = _us(self.as_of)
        self._lookback_us = (
            None if self.params.lookback_days is None else self.params.lookback_days * _DAY_US
        )
        self.graph = graph if graph is not None else IdentityGraph(dataset.people)
        self.opportunities = sorted(dataset.opportunities, key=lambda o: o.id)
        canonical = self.graph.canonical
        known = self.graph.canonical_ids
        kinds = self.params.counted_kinds
        per_person: dict[str, list[_Entry]] = {}
        epoch = _EPOCH
        for touch in dataset.touches:
            if kinds is not None and touch.kind not in kinds:
                continue
            root = known.get(touch.person_id) or canonical(touch.person_id)
            since = touch.occurred_at - epoch  # _us inlined: once per touch
            at = (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds
            entry = (at, touch.key, root, touch)
            bucket = per_person.get(root)
            if bucket is None:
                per_person[root] = [entry]
            else:
                bucket.append(entry)
        self._times: dict[str, list[int]] = {}
        for root, bucket in per_person.items():
            bucket.sort(key=_ORDER)
            self._times[root] = [entry[0] for entry in bucket]
        self._touches = per_person
        self._roles: dict[str, list[tuple[str, bool]]] = {}
        for role in dataset.roles:
            if not role.deleted:
                self._roles.setdefault(role.opportunity_id, []).append(
                    (canonical(role.person_id), role.is_primary)
                )
        self._lead_of: dict[str, str] = {}
        for person in sorted(dataset.people, key=lambda p: p.id):
            if person.converted_opportunity_id:
                self._lead_of.setdefault(person.converted_opportunity_id, canonical(person.id))

    def people_of(self, opportunity: AttributionOpportunity) -> list[str]:
        """The canonical people whose touches count, by ``params.scope``."""
        scope = self.params.scope
        account = (
            self.graph.by_account.get(opportunity.account_id, []) if opportunity.account_id else []
        )
        if scope is Scope.ACCOUNT:
            return list(account)
        roles = self._roles.get(opportunity.id) or []
        nodes = self.graph.nodes
        if scope is Scope.PRIMARY_CONTACT_ROLE:
            roles = [(p, primary) for p, primary in roles if primary]
            if not roles:
                return []
        if roles:
            return sorted(
                {p for p, _ in roles if p not in nodes or not nodes[p].deleted},
            )
        return list(account)

    def end_of(self, opportunity: AttributionOpportunity) -> int:
        """The end of the counting window in microseconds, exclusive: the midnight (UTC) after
        the close date of a closed opportunity, else just after ``as_of``."""
        if opportunity.is_closed and opportunity.close_date is not None:
            closed = opportunity.close_date
            if closed.tzinfo is not None:
                closed = closed.astimezone(UTC)
            day = closed.date() + timedelta(days=1)
            return _us(datetime.combine(day, time(), tzinfo=UTC))
        return self._as_of_us + 1

    def counted(self, opportunity: AttributionOpportunity) -> list[_Entry]:
        """The counted touches of an opportunity in (time, key) order."""
        end = self.end_of(opportunity)
        # The lookback runs back from the close day's start (or ``as_of``), days inclusive.
        anchor = end - _DAY_US if opportunity.is_closed and opportunity.close_date else end - 1
        start = None if self._lookback_us is None else anchor - self._lookback_us
        people = self.people_of(opportunity)
        entries: list[_Entry] = []
        for person in people:
            bucket = self._touches.get(person)
            if not bucket:
                continue
            times = self._times[person]
            high = bisect_left(times, end)
            low = 0 if start is None else bisect_left(times, start, 0, high)
            if low < high:
                entries.extend(bucket[low:high])
        if len(people) > 1:
            entries.sort(key=_ORDER)
        return entries

    def _lead_person(self, opportunity: AttributionOpportunity, people: list[str]) -> str | None:
        lead = self._lead_of.get(opportunity.id)
        if lead is not None:
            return lead
        primaries = sorted(p for p, primary in self._roles.get(opportunity.id, ()) if primary)
        if primaries:
            return primaries[0]
        nodes = self.graph.nodes
        created = [(nodes[p].created_at, p) for p in people if p in nodes and nodes[p].created_at]
        return min(created)[1] if created else None

    def _milestones(
        self, opportunity: AttributionOpportunity, entries: list[_Entry], lead: str | None
    ) -> dict[Milestone, int]:
        found = {Milestone.FIRST_TOUCH: 0, Milestone.CLOSED_WON: len(entries) - 1}
        node = self.graph.nodes.get(lead) if lead is not None else None
        if node is not None and node.created_at is not None:
            created = _us(node.created_at)
            for index in range(len(entries) - 1, -1, -1):
                entry = entries[index]
                if entry[2] == lead and entry[0] <= created:
                    found[Milestone.LEAD_CREATION] = index
                    break
        if opportunity.created_at is not None:
            index = bisect_right(entries, _us(opportunity.created_at), key=_TIME) - 1
            if index >= 0:
                found[Milestone.OPPORTUNITY_CREATION] = index
        return found

    def _weights(
        self,
        model: Model,
        entries: list[_Entry],
        milestones: dict[Milestone, int],
    ) -> list[int] | None:
        count = len(entries)
        if model in (Model.FIRST_TOUCH, Model.LEAD_CREATION, Model.LAST_TOUCH):
            milestone = _SINGLE_TOUCH[model]
            if milestone not in milestones:
                return None
            weights = [0] * count
            weights[milestones[milestone]] = 1
            return weights
        if model is Model.LINEAR:
            return [1] * count
        if model is Model.TIME_DECAY:
            half_life_us = self.params.half_life_days * _DAY_US
            newest = entries[-1][0]
            # Relative to the newest touch, so the largest weight is exactly 2**52.
            return [
                round(_DECAY_SCALE * 2.0 ** (-(newest - entry[0]) / half_life_us))
                for entry in entries
            ]
        if model is Model.CUSTOM:
            if self.params.custom is None:
                raise ValueError(
                    "the custom model needs weights: set attribution.custom in closedloop.yaml"
                )
            return _position_weights(self.params.custom, milestones, count)
        return _position_weights(_POSITION[model], milestones, count)

    def attribute(
        self, opportunity: AttributionOpportunity, models: Iterable[Model | str]
    ) -> OpportunityAttribution:
        """Attribute one opportunity under each of ``models``."""
        people = self.people_of(opportunity)
        entries = self.counted(opportunity)
        lead = self._lead_person(opportunity, people)
        credits: dict[str, list[Credit]] = {}
        chosen = [Model(m) for m in models]
        if not entries:
            return OpportunityAttribution(
                opportunity=opportunity,
                counted_touches=0,
                lead_person_id=lead,
                milestones={},
                sourced_campaign=opportunity.campaign_id,
                sourced_by="primary_campaign" if opportunity.campaign_id else None,
                influencing_campaigns=(),
                credits={m.value: [] for m in chosen},
            )
        milestones = self._milestones(opportunity, entries, lead)
        labels: dict[int, tuple[str, ...]] = {}
        for milestone, index in milestones.items():
            labels[index] = (*labels.get(index, ()), _MILESTONE_NAMES[milestone])
        cents = _cents(opportunity.amount)
        make = tuple.__new__
        label = labels.get
        for model in chosen:
            name = model.value
            weights = self._weights(model, entries, milestones)
            if weights is None or not any(weights):
                credits[name] = []
                continue
            shares = largest_remainder(SHARE_UNITS, weights)
            amounts = largest_remainder(cents, weights) if cents else [0] * len(weights)
            # ``tuple.__new__`` makes each Credit without the Python-level ``__new__``: a run
            # makes about as many credits as there are touches.
            credits[name] = [
                make(Credit, (name, opportunity.id, key, person, touch.occurred_at,
                              touch.campaign, touch.channel, share, amount, label(index, ())))
                for index, ((_, key, person, touch), weight, share, amount) in enumerate(
                    zip(entries, weights, shares, amounts, strict=True)
                )
                if weight
            ]  # fmt: skip
        lead_touch = milestones.get(Milestone.LEAD_CREATION)
        lead_campaign = entries[lead_touch][3].campaign if lead_touch is not None else None
        if lead_campaign:
            sourced, sourced_by = lead_campaign, "lead_creation"
        elif opportunity.campaign_id:
            sourced, sourced_by = opportunity.campaign_id, "primary_campaign"
        else:
            sourced, sourced_by = None, None
        return OpportunityAttribution(
            opportunity=opportunity,
            counted_touches=len(entries),
            lead_person_id=lead,
            milestones={_MILESTONE_NAMES[m]: entries[i][1] for m, i in milestones.items()},
            sourced_campaign=sourced,
            sourced_by=sourced_by,
            influencing_campaigns=tuple(
                sorted({e[3].campaign for e in entries if e[3].campaign is not None})
            ),
            credits=credits,
        )

    def attribute_all(self, models: Sequence[Model | str]) -> Iterator[OpportunityAttribution]:
        """Attribute every opportunity of the dataset (in id order) under each of ``models``."""
        for opportunity in self.opportunities:
            yield self.attribute(opportunity, models)


def _position_weights(
    shares: PositionWeights, milestones: dict[Milestone, int], count: int
) -> list[int]:
    """Integer weights of a position-based model (see the module docstring for the rules)."""
    weights = [0] * count
    for milestone, index in milestones.items():
        weights[index] += shares.of(milestone)
    others = count - sum(1 for w in weights if w)
    if others and shares.others:
        return [w * others if w else shares.others for w in weights]
    return weights


def attribute(
    model: Model | str,
    opportunity: AttributionOpportunity,
    touches: Iterable[AttributionTouch],
    people: Iterable[AttributionPerson],
    contact_roles: Iterable[AttributionRole],
    *,
    params: AttributionParams | None = None,
    as_of: datetime | None = None,
) -> list[Credit]:
    """The credits one model gives the touches of one opportunity (``as_of``: now by default)."""
    dataset = Dataset(
        touches=list(touches),
        people=list(people),
        opportunities=[opportunity],
        roles=list(contact_roles),
    )
    result = Attributor(dataset, params, as_of).attribute(opportunity, [model])
    return result.credits[Model(model).value]
