"""Compile a validated mapping into an immutable ``CompiledMapping`` of plain functions.

Applying a compiled mapping does no I/O and builds no pydantic or Jinja objects: per touch it
looks up the kind's precomputed plan, checks the filters, copies the constant fields and calls
one closure per computed field (see ``templates.py`` for how templates avoid Jinja's cost).

Rendering rules, in order, per CRM field: the origin (``value`` / ``source`` / ``template``),
then ``transforms``, then text is cut to the CRM field's length (unless a ``truncate`` transform
says otherwise), then a blank result (None or "") takes ``default``; a field still blank is left
out of the payload, or rejects the touch with a ``MappingError`` when ``required``. A computed
value the field's type or restricted picklist cannot take (``fieldtypes``: text into a date or
number field, a value outside a restricted picklist) rejects the touch with a ``MappingError``
naming the field, so it becomes a dead letter of stage ``map`` instead of a refused push.

HubSpot event targets (``timeline_event``, ``behavioral_event``) render their fields into the
event's ``tokens`` / ``properties`` and add the template id or event name, the touch time and,
for timeline events, ``extraData``; the key and person fields are not part of an event payload
(the connector derives the event id from the touch key and names the contact by id).
"""

# ruff: noqa: ARG001 - field functions share one (touch, person) signature, used or not

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from connectors.base import Person, PersonKind, RenderedTouch, Touch, TouchKind
from connectors.errors import MappingError
from sync.mapping.catalogue import FieldCatalogue, person_objects
from sync.mapping.conditions import (
    Predicate,
    compile_condition,
    compile_glob,
    compile_path,
)
from sync.mapping.digest import DigestPlan, digest_touches, is_digest
from sync.mapping.fieldtypes import checker
from sync.mapping.lifecycle import CompiledLifecycle, compile_lifecycle
from sync.mapping.members import MemberPlan, compile_members
from sync.mapping.model import (
    EventSpec,
    FieldRule,
    MappingFile,
    MapTransform,
    OptOut,
    Owner,
    TruncateTransform,
)
from sync.mapping.people import (
    PersonFieldPlan,
    PersonPlan,
    compile_person_rule,
    plan_person,
)
from sync.mapping.templates import (
    EMPTY_PERSON,
    compile_template,
    constant_text,
    make_environment,
)
from sync.mapping.transforms import chain, compile_transforms

__all__ = ["CompiledMapping", "EventPlan", "KindPlan", "compile_mapping"]

FieldFn = Callable[[Touch, Person], Any]

# CRM field types whose values are text and so are cut to the field's length.
_TEXT_TYPES = frozenset(
    {"string", "textarea", "combobox", "email", "phone", "url", "picklist", "enumeration"}
)


@dataclass(frozen=True, slots=True)
class EventPlan:
    """A HubSpot event target: which template or event, and the timeline event's extraData."""

    id_key: str  # eventTemplateId | eventName
    ident: str
    values_key: str  # tokens | properties
    time_key: str  # timestamp | occurredAt
    extra: KindPlan | None = None

    def payload(self, values: dict[str, Any], touch: Touch, person: Person) -> dict[str, Any]:
        """The event body (without the contact and the event id, which the connector adds)."""
        body: dict[str, Any] = {
            self.id_key: self.ident,
            self.values_key: values,
            self.time_key: touch.occurred_at.isoformat(),
        }
        if self.extra is not None:
            extra = _render_fields(self.extra, touch, person)
            if extra:
                body["extraData"] = extra
        return body


@dataclass(frozen=True, slots=True)
class KindPlan:
    """Everything needed to render one touch kind: target, constant fields, computed fields."""

    target: str
    constants: Mapping[str, Any]
    fields: tuple[tuple[str, FieldFn], ...]
    digest: KindPlan | None = None
    event: EventPlan | None = None


def _render_fields(plan: KindPlan, touch: Touch, person: Person) -> dict[str, Any]:
    payload = dict(plan.constants)
    for name, fn in plan.fields:
        value = fn(touch, person)
        if value is not None:
            payload[name] = value
    return payload


def _always(touch: Touch, person: Person) -> bool:
    return True


@dataclass(frozen=True)
class CompiledMapping:
    """A mapping file as pure functions: render touches, filter, digest, plan person fields."""

    name: str
    crm: str
    source: str
    target: str
    key_field: str
    person_field: str | None
    account_field: str | None
    timezone: str
    unknown_people: str
    create_defaults: Mapping[str, Any]
    lifecycle: CompiledLifecycle
    plans: Mapping[TouchKind, KindPlan]
    person_rules: tuple[PersonFieldPlan, ...]
    digests: Mapping[TouchKind, DigestPlan] = field(default_factory=dict)
    campaign_ok: Callable[[str | None], bool] | None = None
    rules_ok: Predicate = _always
    # Salesforce CampaignMember sync of delivered touches; None when not enabled.
    campaign_members: MemberPlan | None = None
    # The owner of people closedloop creates, and unsubscribes as CRM opt-outs (None: unset).
    owner: Owner | None = None
    opt_out: OptOut | None = None

    @property
    def kinds(self) -> frozenset[TouchKind]:
        """The touch kinds this mapping syncs."""
        return frozenset(self.plans)

    @property
    def event_targets(self) -> dict[str, set[str]]:
        """HubSpot event targets in use -> their template ids or event names."""
        found: dict[str, set[str]] = {}
        for plan in self.plans.values():
            if plan.event is not None:
                found.setdefault(plan.target, set()).add(plan.event.ident)
        return found

    def accepts(self, touch: Touch, person: Person | None = None) -> bool:
        """Whether the filters let ``touch`` through (kind, campaign, inclusion rules)."""
        if touch.kind not in self.plans:
            return False
        if self.campaign_ok is not None and not self.campaign_ok(touch.campaign):
            return False
        return self.rules_ok(touch, person or EMPTY_PERSON)

    def render(self, touch: Touch, person: Person | None = None) -> RenderedTouch | None:
        """The exact CRM payload for ``touch`` on ``person``'s timeline; None when filtered out.

        Raises MappingError when a required field is blank or a template uses a missing value.
        """
        plan = self.plans.get(touch.kind)
        if plan is None:
            return None
        if self.campaign_ok is not None and not self.campaign_ok(touch.campaign):
            return None
        who = EMPTY_PERSON if person is None else person
        if self.rules_ok is not _always and not self.rules_ok(touch, who):
            return None
        if plan.digest is not None and is_digest(touch):
            plan = plan.digest
        payload = dict(plan.constants)
        for name, fn in plan.fields:
            value = fn(touch, who)
            if value is not None:
                payload[name] = value
        if plan.event is not None:
            body = plan.event.payload(payload, touch, who)
            if person is None:
                return RenderedTouch(touch.key, plan.target, body)
            return RenderedTouch(
                touch.key, plan.target, body, person.external_id, person.account_id
            )
        payload[self.key_field] = touch.key
        if person is None:
            return RenderedTouch(touch.key, plan.target, payload)
        account_id = person.account_id
        if self.person_field is not None:
            payload[self.person_field] = person.external_id
        # Salesforce refuses a WhatId next to a Lead WhoId: accounts link to contacts only.
        if self.account_field is not None and account_id and person.kind is PersonKind.CONTACT:
            payload[self.account_field] = account_id
        return RenderedTouch(touch.key, plan.target, payload, person.external_id, account_id)

    def digest(self, touches: Iterable[Touch]) -> list[Touch]:
        """Roll up digest kinds per person per window (stable keys); others pass through."""
        if not self.digests:
            return sorted(touches, key=lambda t: (t.occurred_at, t.key))
        return digest_touches(touches, self.digests, ZoneInfo(self.timezone))

    def plan_person(
        self,
        source_person: Person,
        crm_person: Person | None,
        changed_at: Mapping[str, datetime] | None = None,
    ) -> PersonPlan:
        """Which person fields to write on which side, and whether to create, hold or update
        (``changed_at``: when each CRM field last changed, from the CRM's field history)."""
        return plan_person(
            self.crm, self.person_rules, self.unknown_people, self.create_defaults,
            source_person, crm_person, changed_at,
        )  # fmt: skip


def compile_mapping(model: MappingFile, catalogue: FieldCatalogue) -> CompiledMapping:
    """Compile a mapping validated against ``catalogue``, whose field lengths cut text and whose
    field types check computed values."""
    env = make_environment(model.timezone)
    ctx = _Context(model, catalogue, env)
    touches = model.touches
    excluded = set(model.filters.kinds.exclude)
    included = set(model.filters.kinds.include) or set(TouchKind)
    plans: dict[TouchKind, KindPlan] = {}
    digests: dict[TouchKind, DigestPlan] = {}
    for kind in TouchKind:
        if kind not in included or kind in excluded:
            continue
        rule = touches.kinds.get(kind)
        target = (rule.target if rule and rule.target else None) or touches.target
        fields: dict[str, FieldRule] = {}
        if target == touches.target:
            fields.update(touches.fields)
        if rule is not None:
            fields.update(rule.fields)
        spec = rule.event if rule is not None and rule.event is not None else None
        if spec is None and target == touches.target:
            spec = touches.event
        event = ctx.event(target, spec)
        plan = ctx.plan(target, fields, event)
        if rule is not None and rule.digest is not None:
            digest_fields = {**fields, **rule.digest.fields}
            plan = KindPlan(
                plan.target,
                plan.constants,
                plan.fields,
                ctx.plan(target, digest_fields, event),
                event,
            )
            digests[kind] = DigestPlan(
                rule.digest.window,
                rule.digest.max_items,
                compile_glob(rule.digest.immediate_assets),
            )
        plans[kind] = plan
    return CompiledMapping(
        name=model.name,
        crm=model.crm,
        source=model.source,
        target=touches.target,
        key_field=touches.key_field,
        person_field=touches.person_field,
        account_field=touches.account_field,
        timezone=model.timezone,
        unknown_people=model.people.unknown,
        create_defaults=dict(model.people.create_defaults),
        lifecycle=compile_lifecycle(model.lifecycle),
        plans=plans,
        person_rules=tuple(
            ctx.person_rule(name, rule) for name, rule in model.people.fields.items()
        ),
        digests=digests,
        campaign_ok=_campaign_filter(
            model.filters.campaigns.include, model.filters.campaigns.exclude
        ),
        rules_ok=_rules(model),
        campaign_members=compile_members(model.campaign_members),
        owner=model.people.owner,
        opt_out=model.opt_out if model.opt_out is not None and model.opt_out.enabled else None,
    )


def _campaign_filter(
    include: Sequence[str], exclude: Sequence[str]
) -> Callable[[str | None], bool] | None:
    if not include and not exclude:
        return None
    inc = compile_glob(include) if include else None
    exc = compile_glob(exclude)
    cache: dict[str | None, bool] = {}

    def ok(campaign: str | None) -> bool:
        found = cache.get(campaign)
        if found is None:
            found = (inc is None or inc(campaign)) and not exc(campaign)
            if len(cache) < 10_000:  # campaigns are few; bound the memo anyway
                cache[campaign] = found
        return found

    return ok


def _rules(model: MappingFile) -> Predicate:
    rules = model.filters.rules
    if rules is None:
        return _always
    preds = tuple(compile_condition(c) for c in rules.conditions)
    if rules.match == "all":
        return lambda t, p: all(pred(t, p) for pred in preds)
    return lambda t, p: any(pred(t, p) for pred in preds)


class _Context:
    """Per-compile state: the model, the catalogue and the template environment."""

    def __init__(self, model: MappingFile, catalogue: FieldCatalogue, env: Any) -> None:
        self.model = model
        self.catalogue = catalogue
        self.env = env

    def length(self, objects: Sequence[str], name: str) -> int | None:
        lengths = []
        for obj in objects:
            info = self.catalogue.field(self.model.crm, obj, name)
            if info is not None and info.length and info.type in _TEXT_TYPES:
                lengths.append(info.length)
        return min(lengths) if lengths else None

    def transform(
        self, rule: Any, objects: Sequence[str], name: str
    ) -> Callable[[Any], Any] | None:
        length = self.length(objects, name)
        steps = list(rule.transforms)
        if length is not None and not any(isinstance(s, TruncateTransform) for s in steps):
            steps.append(TruncateTransform(truncate=length))
        funcs = compile_transforms(
            steps, timezone=self.model.timezone, marker=self.model.truncation_marker,
            crm_length=length,
        )  # fmt: skip
        return chain(funcs)

    def event(self, target: str, spec: EventSpec | None) -> EventPlan | None:
        """The event plan of a HubSpot event target (validation made sure ``spec`` fits)."""
        if target == "timeline_event" and spec is not None and spec.template_id:
            extra = self.plan(target, spec.extra_data) if spec.extra_data else None
            return EventPlan("eventTemplateId", spec.template_id, "tokens", "timestamp", extra)
        if target == "behavioral_event" and spec is not None and spec.name:
            return EventPlan("eventName", spec.name, "properties", "occurredAt")
        return None

    def plan(
        self, target: str, fields: Mapping[str, FieldRule], event: EventPlan | None = None
    ) -> KindPlan:
        constants: dict[str, Any] = {}
        computed: list[tuple[str, FieldFn]] = []
        for name, rule in fields.items():
            where = f"field {name}"
            tf = self.transform(rule, (target,), name)
            text = None if rule.template is None else constant_text(rule.template, self.env)
            if rule.source is None and (rule.template is None or text is not None):
                value = rule.value if rule.template is None else text
                value = tf(value) if tf else value
                value = _finish(value, rule, where, None)
                if value is not None:
                    constants[name] = value
                continue
            if rule.source is not None:
                get: FieldFn = compile_path(rule.source)
            else:
                assert rule.template is not None
                get = compile_template(rule.template, self.env, where)
            fn = _field_fn(get, tf, rule, where)
            # Text-producing transforms already give JSON-ready values; raw sources may not.
            textual = any(not isinstance(step, MapTransform) for step in rule.transforms)
            if rule.source is not None and not textual and not _auto_truncated(tf, rule):
                fn = _json_safe(fn)
            check = checker(self.model.crm, self.catalogue.field(self.model.crm, target, name))
            if check is not None:
                fn = _checked(fn, check, where)
            computed.append((name, fn))
        return KindPlan(target, constants, tuple(computed), event=event)

    def person_rule(self, name: str, rule: Any) -> PersonFieldPlan:
        objects = person_objects(self.model.crm)
        return compile_person_rule(
            name, rule.source, rule.direction, rule.rule, self.transform(rule, objects, name)
        )


def _auto_truncated(tf: Callable[[Any], Any] | None, rule: FieldRule) -> bool:
    # A truncator was appended for a CRM text field: its output is text already.
    return tf is not None and not rule.transforms


def _json_safe(get: FieldFn) -> FieldFn:
    # Source values go into JSON payloads: timestamps become ISO 8601, containers stay as is.
    def safe(touch: Touch, person: Person) -> Any:
        value = get(touch, person)
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, Decimal):
            return float(value)
        return value

    return safe


def _checked(get: FieldFn, check: Callable[[Any], str | None], where: str) -> FieldFn:
    # The CRM would refuse the whole value: reject this touch here, naming the field.
    def checked(touch: Touch, person: Person) -> Any:
        value = get(touch, person)
        if value is not None:
            problem = check(value)
            if problem is not None:
                raise MappingError(f"touch {touch.key}: {where}: {problem}")
        return value

    return checked


def _finish(value: Any, rule: FieldRule, where: str, touch: Touch | None) -> Any:
    if value is None or value == "":
        value = rule.default
        if value is None and rule.required:
            key = touch.key if touch is not None else "(constant)"
            raise MappingError(f"touch {key}: {where} is required but blank")
    return value


def _field_fn(
    get: FieldFn, tf: Callable[[Any], Any] | None, rule: FieldRule, where: str
) -> FieldFn:
    default, required = rule.default, rule.required
    if tf is None and default is None and not required:

        def plain(touch: Touch, person: Person) -> Any:
            value = get(touch, person)
            return None if value == "" else value

        return plain
    if tf is not None and default is None and not required:

        def transformed(touch: Touch, person: Person) -> Any:
            value = tf(get(touch, person))
            return None if value == "" else value

        return transformed

    def full(touch: Touch, person: Person) -> Any:
        value = get(touch, person)
        if tf is not None:
            value = tf(value)
        if value is None or value == "":
            if default is None and required:
                raise MappingError(f"touch {touch.key}: {where} is required but blank")
            return default
        return value

    return full
