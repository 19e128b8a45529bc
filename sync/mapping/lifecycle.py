"""The shared lifecycle, compiled: CRM value -> stage, the MQL test, and SLA targets.

Pure functions for the dispositions pipeline (which stage did this status change reach?) and
analytics (was the hand-off answered within the SLA?). ``stage_for`` matches the CRM's values
exactly first and then ignoring case, because reports and exports often re-case picklist values.

Two value maps: ``stages`` for the status and deal stage fields, ``lifecycle_stages`` for the
optional ``lifecycle_field`` (HubSpot's lifecyclestage, recorded as the disposition field
``lifecycle_stage``). A mapping without a lifecycle field reads that field through ``stages``,
as files written before it existed expect.

Reasons: ``reason_field`` names one field for both sales decisions (Disqualified, Recycled);
``reason_fields`` names one per decision, for orgs that keep "why disqualified" and "why
recycled" apart. ``reason_fields_for`` resolves both into decision -> field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from connectors.base import Person, Touch
from sync.mapping.conditions import TouchesPredicate, compile_mql_condition
from sync.mapping.model import (
    REASON_OUTCOMES,
    Lifecycle,
    Mql,
    MqlCondition,
    Stage,
    parse_duration,
)

__all__ = [
    "LIFECYCLE_STAGE",
    "CompiledLifecycle",
    "MqlVerdict",
    "Stage",
    "compile_lifecycle",
    "describe_mql_condition",
    "reason_fields_for",
]


@dataclass(frozen=True)
class MqlVerdict:
    """Whether a person meets the MQL definition, and why in words (``why``)."""

    qualified: bool
    why: str


_Rule = tuple[str, TouchesPredicate]  # (the condition in words, its predicate)


@dataclass(frozen=True)
class _CompiledMql:
    score_at_least: float | None
    any_of: tuple[_Rule, ...]
    all_of: tuple[_Rule, ...]
    combine: str

    def __call__(self, person: Person, touches: Sequence[Touch], now: datetime) -> bool:
        return self.verdict(person, touches, now).qualified

    def verdict(self, person: Person, touches: Sequence[Touch], now: datetime) -> MqlVerdict:
        parts: list[str] = []
        score_ok = None
        if self.score_at_least is not None:
            score_ok = person.score is not None and person.score >= self.score_at_least
            shown = "no score" if person.score is None else f"score {person.score:g}"
            parts.append(f"{shown} {'>=' if score_ok else '<'} {self.score_at_least:g}")
        rules_ok = None
        if self.any_of or self.all_of:
            all_held = [(text, rule(person, touches, now)) for text, rule in self.all_of]
            any_held = [(text, rule(person, touches, now)) for text, rule in self.any_of]
            rules_ok = all(ok for _, ok in all_held) and (
                not any_held or any(ok for _, ok in any_held)
            )
            rules = [f"{text}: {_yes(ok)}" for text, ok in all_held]
            if any_held:
                rules.append(
                    "one of (" + "; ".join(f"{text}: {_yes(ok)}" for text, ok in any_held) + ")"
                )
            said = " and ".join(rules)
            parts.append(f"({said})" if parts and len(rules) > 1 else said)
        if score_ok is None:
            qualified = bool(rules_ok)
        elif rules_ok is None:
            qualified = score_ok
        else:
            qualified = (score_ok and rules_ok) if self.combine == "and" else (score_ok or rules_ok)
        why = f" {self.combine} ".join(parts)
        return MqlVerdict(qualified, f"{'MQL' if qualified else 'not MQL'}: {why}")


def _yes(ok: bool) -> str:
    return "yes" if ok else "no"


def describe_mql_condition(cond: MqlCondition) -> str:
    """One MQL condition in words: ``2+ webinar_attended/event_attended within 30 days``."""
    if cond.touched is not None:
        t = cond.touched
        text = f"{t.at_least}+ {'/'.join(t.kinds)}"
        if t.asset:
            text += f" on {t.asset}"
        if t.campaign:
            text += f" in {t.campaign}"
        if t.within_days:
            text += f" within {t.within_days} days"
        return text
    if cond.score_at_least is not None:
        return f"score >= {cond.score_at_least:g}"
    if cond.in_list is not None:
        return f"on list {cond.in_list}"
    value = "" if cond.op in ("exists", "missing") else f" {cond.value!r}"
    return f"{cond.field} {cond.op}{value}"


# The disposition field under which connectors record the lifecycle field's changes.
LIFECYCLE_STAGE = "lifecycle_stage"


@dataclass(frozen=True)
class _Lookup:
    exact: Mapping[str, Stage]
    folded: Mapping[str, Stage]

    @classmethod
    def of(cls, stages: Mapping[Stage, Sequence[str]]) -> _Lookup:
        exact: dict[str, Stage] = {}
        folded: dict[str, Stage] = {}
        for stage, values in stages.items():
            for value in values:
                exact.setdefault(value, stage)
                folded.setdefault(value.strip().casefold(), stage)
        return cls(exact, folded)

    def __call__(self, value: str) -> Stage | None:
        found = self.exact.get(value)
        return found if found is not None else self.folded.get(value.strip().casefold())


@dataclass(frozen=True)
class CompiledLifecycle:
    """Stage lookups, the MQL definition and SLA targets of one mapping."""

    status_field: str | None = None
    stage_field: str | None = None
    reason_field: str | None = None
    # Disqualified / Recycled -> the field carrying the reason of that decision.
    reason_fields: Mapping[Stage, str] = field(default_factory=dict)
    lifecycle_field: str | None = None
    values: Mapping[Stage, tuple[str, ...]] = field(default_factory=dict)
    lifecycle_stages: Mapping[Stage, tuple[str, ...]] = field(default_factory=dict)
    sla: Mapping[Stage, timedelta] = field(default_factory=dict)
    mql: _CompiledMql | None = None
    # What waits until a person is MQL: "create_people", "push_touches".
    mql_gate: frozenset[str] = frozenset()
    _lookup: _Lookup = field(default_factory=lambda: _Lookup.of({}))
    _lifecycle_lookup: _Lookup = field(default_factory=lambda: _Lookup.of({}))

    def stage_for(self, crm_value: str | None, field: str | None = None) -> Stage | None:
        """The shared stage a CRM value means, or None when it is not mapped.

        ``field`` names where the value comes from (a disposition's field or the CRM field):
        the lifecycle field's values go through ``lifecycle_stages``, all others through
        ``stages``.
        """
        if crm_value is None:
            return None
        if self.lifecycle_field is not None and field in (LIFECYCLE_STAGE, self.lifecycle_field):
            return self._lifecycle_lookup(crm_value)
        return self._lookup(crm_value)

    def crm_values(self, stage: Stage) -> tuple[str, ...]:
        """The status/stage values meaning ``stage`` (the first is the one closedloop writes)."""
        return self.values.get(stage, ())

    def lifecycle_values(self, stage: Stage) -> tuple[str, ...]:
        """The lifecycle field's values meaning ``stage`` (the first is the one written)."""
        return self.lifecycle_stages.get(stage, ())

    def is_recycled(self, crm_value: str | None) -> bool:
        """Whether a status sends the person back to nurture."""
        return self.stage_for(crm_value) is Stage.RECYCLED

    def is_disqualified(self, crm_value: str | None) -> bool:
        """Whether a status disqualifies the person (the reason is in ``reason_fields``)."""
        return self.stage_for(crm_value) is Stage.DISQUALIFIED

    @property
    def reason_field_names(self) -> tuple[str, ...]:
        """Every field that carries a reason, the disqualification's first."""
        return tuple(
            dict.fromkeys(self.reason_fields[s] for s in REASON_OUTCOMES if s in self.reason_fields)
        )

    def reason_outcomes(self, crm_field: str) -> tuple[Stage, ...]:
        """The decisions whose reason ``crm_field`` gives; a field the mapping does not name
        (a Salesforce connection's own ``lead_reason_fields``) gives the reason of both."""
        named = tuple(s for s in REASON_OUTCOMES if self.reason_fields.get(s) == crm_field)
        return named or REASON_OUTCOMES

    def sla_target(self, stage: Stage) -> timedelta | None:
        """Time allowed from entering ``stage`` to the first sales action, if agreed."""
        return self.sla.get(stage)

    def is_mql(self, person: Person, touches: Sequence[Touch], now: datetime | None = None) -> bool:
        """Whether ``person`` meets the MQL definition given their touches.

        ``now`` bounds ``within_days`` windows; it defaults to the latest touch (or the
        epoch when there are none), so the answer depends on the data alone.
        """
        return self.mql_verdict(person, touches, now).qualified

    def mql_verdict(
        self, person: Person, touches: Sequence[Touch], now: datetime | None = None
    ) -> MqlVerdict:
        """``is_mql`` with the reason in words (each condition and whether it held)."""
        if self.mql is None:
            return MqlVerdict(False, "not MQL: the mapping defines no MQL")
        if now is None:
            now = max((t.occurred_at for t in touches), default=datetime(1970, 1, 1, tzinfo=UTC))
        return self.mql.verdict(person, touches, now)

    def gates(self, what: str) -> bool:
        """Whether ``what`` ("create_people", "push_touches") waits until a person is MQL."""
        return what in self.mql_gate


def _compile_mql(mql: Mql) -> _CompiledMql:
    return _CompiledMql(
        score_at_least=mql.score_at_least,
        any_of=tuple((describe_mql_condition(c), compile_mql_condition(c)) for c in mql.any_of),
        all_of=tuple((describe_mql_condition(c), compile_mql_condition(c)) for c in mql.all_of),
        combine=mql.combine,
    )


def reason_fields_for(lifecycle: Lifecycle) -> dict[Stage, str]:
    """Disqualified / Recycled -> its reason field: ``reason_fields``, else ``reason_field``."""
    found: dict[Stage, str] = {}
    for outcome in REASON_OUTCOMES:
        name = lifecycle.reason_fields.get(outcome) or lifecycle.reason_field
        if name:
            found[outcome] = name
    return found


def compile_lifecycle(lifecycle: Lifecycle | None) -> CompiledLifecycle:
    """Compile the lifecycle section; a file without one gets an empty lifecycle."""
    if lifecycle is None:
        return CompiledLifecycle()
    return CompiledLifecycle(
        status_field=lifecycle.status_field,
        stage_field=lifecycle.stage_field,
        reason_field=lifecycle.reason_field,
        reason_fields=reason_fields_for(lifecycle),
        lifecycle_field=lifecycle.lifecycle_field,
        values={stage: tuple(values) for stage, values in lifecycle.stages.items()},
        lifecycle_stages={s: tuple(v) for s, v in lifecycle.lifecycle_stages.items()},
        sla={stage: parse_duration(text) for stage, text in lifecycle.sla.items()},
        mql=_compile_mql(lifecycle.mql) if lifecycle.mql else None,
        mql_gate=frozenset(lifecycle.mql_gate),
        _lookup=_Lookup.of(lifecycle.stages),
        _lifecycle_lookup=_Lookup.of(lifecycle.lifecycle_stages),
    )
