"""The shape of a mapping file (schema version 1) as pydantic models, and its JSON Schema.

This module owns what a mapping file may *say*; whether what it says makes sense for a CRM
(field names, picklist values, template variables) is checked in ``validate.py``, and what it
*does* lives in ``compile.py``. Keys are the YAML keys (no aliases), so pydantic error locations
are key paths an admin can find in the file.

Unknown transform names, touch kinds and lifecycle stages are rejected here with a
"did you mean" so the message points at the misspelling, not at a union of alternatives.
"""

from __future__ import annotations

import enum
import json
import re
from datetime import date, timedelta
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PositiveInt,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from connectors.base import TouchKind
from connectors.errors import did_you_mean

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "EVENT_TARGETS",
    "REASON_OUTCOMES",
    "SCHEMA_FILE_NAME",
    "SIMPLE_TRANSFORMS",
    "CampaignMembers",
    "Condition",
    "DatetimeTransform",
    "Digest",
    "EventSpec",
    "FieldRule",
    "Filters",
    "KindFilter",
    "KindRule",
    "Lifecycle",
    "MapTransform",
    "MappingFile",
    "Mql",
    "MqlCondition",
    "NameFilter",
    "People",
    "PersonFieldRule",
    "Rules",
    "Stage",
    "TouchRules",
    "TouchedCondition",
    "TransformSpec",
    "TruncateTransform",
    "json_schema",
    "json_schema_text",
    "parse_duration",
]

CURRENT_SCHEMA_VERSION = 1
SCHEMA_FILE_NAME = "closedloop-mapping.schema.json"

Scalar = str | int | float | bool


class Stage(enum.StrEnum):
    """The shared lifecycle vocabulary (DOMAIN.md section 2), mapped to each CRM's values."""

    INQUIRY = "Inquiry"
    MQL = "MQL"
    SAL = "SAL"
    SQL = "SQL"
    OPPORTUNITY = "Opportunity"
    CUSTOMER = "Customer"
    RECYCLED = "Recycled"
    DISQUALIFIED = "Disqualified"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- transforms --------------------------------------------------------------------------

SIMPLE_TRANSFORMS: tuple[str, ...] = ("strip", "lower", "upper", "title", "collapse_spaces")
_TRANSFORM_OPS: tuple[str, ...] = ("map", "datetime", "truncate")
TRANSFORM_NAMES: tuple[str, ...] = SIMPLE_TRANSFORMS + _TRANSFORM_OPS


class MapTransform(_Strict):
    """Replace values through a table; unmapped values pass through unless ``default`` is set."""

    map: dict[str, Scalar | None] = Field(description="source value -> CRM value")
    default: Scalar | None = Field(
        default=None, description="value for anything not in the table (omit to keep it as is)"
    )
    ignore_case: bool = Field(default=False, description="match table keys case-insensitively")


class DatetimeTransform(_Strict):
    """Format a timestamp in a time zone: ``date``, ``iso``, ``epoch_ms`` or a strftime pattern."""

    datetime: str = Field(description="date | iso | epoch_ms | a strftime pattern like '%d %b %Y'")
    timezone: str | None = Field(
        default=None, description="IANA zone, e.g. Europe/Berlin (default: the file's timezone)"
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)


def _check_length(value: Any) -> Any:
    if value == "crm" or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return value
    raise PydanticCustomError("length", "give a positive length or crm (the CRM field's length)")


class TruncateTransform(_Strict):
    """Cut text to a length (``crm`` = the CRM field's length), ending with a marker."""

    truncate: Annotated[PositiveInt | Literal["crm"], BeforeValidator(_check_length)] = Field(
        description="a length, or 'crm'"
    )
    marker: str | None = Field(
        default=None, description="appended when text is cut (default: the file's marker)"
    )


def _transform_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return "simple"
    if isinstance(value, dict):
        for op in _TRANSFORM_OPS:
            if op in value:
                return op
    if isinstance(value, BaseModel):
        return {
            MapTransform: "map",
            DatetimeTransform: "datetime",
            TruncateTransform: "truncate",
        }.get(type(value))
    return None


def _check_transform(value: Any) -> Any:
    if isinstance(value, str):
        if value not in SIMPLE_TRANSFORMS:
            hint = did_you_mean(value, TRANSFORM_NAMES)
            raise PydanticCustomError(
                "unknown_transform",
                "unknown transform{hint}",
                {"hint": hint},
            )
        return value
    if isinstance(value, dict):
        ops = [op for op in _TRANSFORM_OPS if op in value]
        if len(ops) > 1:
            raise PydanticCustomError(
                "ambiguous_transform",
                "one transform per list item; found {ops}",
                {"ops": " and ".join(ops)},
            )
        if not ops:
            names = [str(k) for k in value]
            hint = did_you_mean(names[0], TRANSFORM_NAMES) if names else ""
            raise PydanticCustomError(
                "unknown_transform",
                "unknown transform {name}{hint} (known: {known})",
                {
                    "name": repr(names[0]) if names else "{}",
                    "hint": hint,
                    "known": ", ".join(TRANSFORM_NAMES),
                },
            )
        return value
    if isinstance(value, BaseModel):
        return value
    raise PydanticCustomError(
        "transform_type", "a transform is a name (e.g. lower) or a mapping (e.g. truncate: 80)"
    )


SimpleTransform = Literal["strip", "lower", "upper", "title", "collapse_spaces"]

TransformSpec = Annotated[
    Annotated[
        Union[  # noqa: UP007 - tagged union members need Annotated[..., Tag]
            Annotated[SimpleTransform, Tag("simple")],
            Annotated[MapTransform, Tag("map")],
            Annotated[DatetimeTransform, Tag("datetime")],
            Annotated[TruncateTransform, Tag("truncate")],
        ],
        Discriminator(_transform_tag),
    ],
    BeforeValidator(_check_transform),
]


def check_timezone(value: str) -> str:
    """Accept an IANA time zone name; anything else is a validation error."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        hint = did_you_mean(value, _common_zones())
        raise PydanticCustomError("timezone", "unknown time zone{hint}", {"hint": hint}) from None
    return value


def _common_zones() -> list[str]:
    import zoneinfo

    return sorted(zoneinfo.available_timezones())


# --- touch rendering ---------------------------------------------------------------------


class FieldRule(_Strict):
    """How one CRM field gets its value: a constant, a touch/person field, or a template."""

    value: Scalar | None = Field(default=None, description="a constant")
    source: str | None = Field(
        default=None, description="a field path: touch.campaign, touch.attributes.url, person.email"
    )
    template: str | None = Field(
        default=None, description="a Jinja2 template with variables touch and person"
    )
    transforms: list[TransformSpec] = Field(default_factory=list, description="applied in order")
    default: Scalar | None = Field(default=None, description="used when the result is blank")
    required: bool = Field(
        default=False, description="a blank result (after default) rejects the touch"
    )

    @model_validator(mode="after")
    def _one_origin(self) -> FieldRule:
        given = [k for k in ("value", "source", "template") if k in self.model_fields_set]
        if len(given) != 1:
            found = f" (found {', '.join(given)})" if given else ""
            raise PydanticCustomError(
                "field_origin",
                "give exactly one of value, source or template{found}",
                {"found": found},
            )
        return self


def _field_shorthand(value: Any) -> Any:
    # `Subject: "Opened {{ touch.asset }}"` is a template, `Priority: Normal` a constant string
    # (a plain string is a template without variables), `IsVisible: true` a constant.
    # YAML reads an unquoted `ActivityDate: 2024-05-06` as a date: it is that day's ISO text.
    if isinstance(value, str):
        return {"template": value}
    if isinstance(value, bool | int | float):
        return {"value": value}
    if isinstance(value, date):
        return {"value": value.isoformat()}
    return value


FieldSpec = Annotated[
    FieldRule,
    BeforeValidator(
        _field_shorthand,
        json_schema_input_type=Union[str, int, float, bool, FieldRule],  # noqa: UP007
    ),
]


def _check_kind(value: Any) -> Any:
    if isinstance(value, str) and value not in TouchKind._value2member_map_:
        hint = did_you_mean(value, [k.value for k in TouchKind])
        raise PydanticCustomError("touch_kind", "unknown touch kind{hint}", {"hint": hint})
    return value


KindKey = Annotated[TouchKind, BeforeValidator(_check_kind)]


def _check_stage(value: Any) -> Any:
    if isinstance(value, str) and value not in Stage._value2member_map_:
        hint = did_you_mean(value, [s.value for s in Stage])
        raise PydanticCustomError("stage", "unknown lifecycle stage{hint}", {"hint": hint})
    return value


StageKey = Annotated[Stage, BeforeValidator(_check_stage)]
# The sales decisions a reason field explains (``lifecycle.reason_field`` / ``reason_fields``).
REASON_OUTCOMES: tuple[Stage, ...] = (Stage.DISQUALIFIED, Stage.RECYCLED)


def _check_outcome(value: Any) -> Any:
    value = _check_stage(value)
    if value not in {s.value for s in REASON_OUTCOMES}:
        raise PydanticCustomError(
            "outcome", "a reason explains Disqualified or Recycled, not {stage}", {"stage": value}
        )
    return value


OutcomeKey = Annotated[Stage, BeforeValidator(_check_outcome)]


class Digest(_Strict):
    """Roll touches of one kind up per person per window into one touch (e.g. page views)."""

    window: Literal["hour", "day"] = Field(default="day", description="one digest per person per")
    max_items: PositiveInt = Field(default=20, description="items listed in the digest body")
    immediate_assets: list[str] = Field(
        default_factory=list,
        description="glob patterns on touch.asset pushed at once, e.g. '*/pricing*'",
    )
    fields: dict[str, FieldSpec] = Field(
        default_factory=dict,
        description="field overrides for the digest touch (templates see touch.attributes.count, "
        "assets, more, first_at, last_at, window)",
    )


# HubSpot targets that are events, not engagements: their ``fields`` are the event's tokens
# (timeline_event) or properties (behavioral_event), and ``event`` names the template / event.
EVENT_TARGETS: tuple[str, ...] = ("timeline_event", "behavioral_event")


def _template_id(value: Any) -> Any:
    # YAML reads `template_id: 1001298` as a number; HubSpot ids are strings of digits.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and not value.strip().isdigit():
        raise PydanticCustomError(
            "template_id",
            "an event template id is a number (the eventTemplateId shown in your app's "
            "timeline event settings)",
        )
    return value.strip() if isinstance(value, str) else value


class EventSpec(_Strict):
    """What a HubSpot event target sends besides its fields (tokens or properties)."""

    template_id: Annotated[str, BeforeValidator(_template_id)] | None = Field(
        default=None,
        description="timeline_event: the eventTemplateId of your public app's event template",
    )
    name: str | None = Field(
        default=None,
        min_length=1,
        description="behavioral_event: the custom event's fully qualified name (pe<HubID>_<name>)",
    )
    extra_data: dict[str, FieldSpec] = Field(
        default_factory=dict,
        description="timeline_event: extraData for the template's detail, rendered like fields",
    )


class KindRule(_Strict):
    """Overrides for one touch kind: target object, fields, and an optional digest."""

    target: str | None = Field(
        default=None,
        description="another CRM object for this kind; common fields are then not inherited",
    )
    fields: dict[str, FieldSpec] = Field(default_factory=dict)
    digest: Digest | None = None
    event: EventSpec | None = Field(
        default=None, description="HubSpot timeline_event / behavioral_event targets only"
    )


class TouchRules(_Strict):
    """Where touches land in the CRM and how each CRM field is filled."""

    target: str = Field(
        description="Salesforce object (Task, custom__c), HubSpot engagement type, or HubSpot "
        "timeline_event / behavioral_event"
    )
    key_field: str = Field(
        description="the field holding the touch key (Salesforce: a unique external id; HubSpot: a "
        "searchable property)"
    )
    person_field: str | None = Field(default=None, description="field linking the person (WhoId)")
    account_field: str | None = Field(
        default=None, description="field linking the account, for contacts only (WhatId)"
    )
    fields: dict[str, FieldSpec] = Field(default_factory=dict, description="for every kind")
    event: EventSpec | None = Field(
        default=None, description="HubSpot timeline_event / behavioral_event targets only"
    )
    kinds: dict[KindKey, KindRule] = Field(default_factory=dict)


# --- people ------------------------------------------------------------------------------

SyncRule = Literal["prefer_crm_unless_blank", "always_overwrite", "two_way_latest", "never"]


class PersonFieldRule(_Strict):
    """One person field kept in sync between the source and the CRM."""

    source: str = Field(description="the source person's field: person.first_name, person.fields.X")
    direction: Literal["to_crm", "from_crm", "both"] = "to_crm"
    rule: SyncRule
    transforms: list[TransformSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _two_way(self) -> PersonFieldRule:
        if self.rule == "two_way_latest" and self.direction != "both":
            raise PydanticCustomError(
                "two_way", "rule two_way_latest needs direction: both (it compares both sides)"
            )
        if self.direction == "both" and self.rule not in ("two_way_latest", "never"):
            raise PydanticCustomError(
                "two_way",
                "direction both needs rule two_way_latest; pick a side for {rule}",
                {"rule": self.rule},
            )
        return self


def _id_text(value: Any) -> Any:
    return str(value).strip() if isinstance(value, int | str) else value


IdText = Annotated[str, BeforeValidator(_id_text)]


class Owner(_Strict):
    """The owner of people closedloop creates: exactly one of the four settings."""

    assignment_rule: IdText | None = Field(
        default=None,
        description="Salesforce Leads: 'active' (the org's active lead assignment rule) or an "
        "AssignmentRule Id (01Q...), sent as the Sforce-Auto-Assign header",
    )
    user: IdText | None = Field(default=None, description="Salesforce: a User Id (005...)")
    queue: IdText | None = Field(
        default=None, description="Salesforce Leads: a queue's Group Id (00G...)"
    )
    hubspot_owner_id: IdText | None = Field(
        default=None, description="HubSpot: an owner id (Settings > Users; the owners API)"
    )

    @model_validator(mode="after")
    def _one(self) -> Owner:
        given = [k for k in ("assignment_rule", "user", "queue", "hubspot_owner_id")
                 if getattr(self, k)]  # fmt: skip
        if len(given) != 1:
            raise PydanticCustomError(
                "owner", "give exactly one of assignment_rule, user, queue, hubspot_owner_id"
            )
        return self


class OptOut(_Strict):
    """Unsubscribes as the CRM's own email opt-out (never the other way round)."""

    enabled: bool = Field(
        default=True,
        description="an email_unsubscribe touch opts its person out of email in the CRM "
        "(Salesforce HasOptedOutOfEmail; HubSpot subscription status); nobody is ever opted in",
    )
    subscription: IdText = Field(
        default="all",
        description="HubSpot: 'all' (unsubscribe from all email) or one subscription type id",
    )


class People(_Strict):
    """Person-field sync rules and what to do with people the CRM does not know yet."""

    unknown: Literal["create_lead", "create_contact", "hold"] = Field(
        default="hold", description="people not in the CRM: create a Lead, a Contact, or wait"
    )
    create_defaults: dict[str, Scalar] = Field(
        default_factory=dict, description="CRM fields set on people closedloop creates"
    )
    fields: dict[str, PersonFieldRule] = Field(default_factory=dict)
    owner: Owner | None = Field(
        default=None,
        description="who owns the people closedloop creates (default: the CRM's own default, "
        "e.g. the integration user)",
    )


# --- filters and conditions --------------------------------------------------------------

Op = Literal[
    "equals", "not_equals", "in", "not_in", "contains", "matches",
    "exists", "missing", "gt", "gte", "lt", "lte",
]  # fmt: skip


class Condition(_Strict):
    """One inclusion rule: a score threshold, a list membership, or a field condition."""

    score_at_least: float | None = None
    in_list: str | None = Field(
        default=None, description="list name in person.fields.lists or touch.attributes.lists"
    )
    field: str | None = Field(default=None, description="a field path: person.lead_source")
    op: Op | None = None
    value: Any = None

    def _kinds(self) -> list[str]:
        return [
            k for k in ("score_at_least", "in_list", "field", "touched")
            if getattr(self, k, None) is not None
        ]  # fmt: skip

    @model_validator(mode="after")
    def _one_kind(self) -> Condition:
        kinds = self._kinds()
        if len(kinds) != 1:
            names = "score_at_least, in_list, field" + (
                ", touched" if isinstance(self, MqlCondition) else ""
            )
            raise PydanticCustomError("condition", "give exactly one of {names}", {"names": names})
        if self.field is None and (self.op is not None or "value" in self.model_fields_set):
            raise PydanticCustomError("condition", "op and value belong to a field condition")
        if self.field is not None:
            if self.op is None:
                raise PydanticCustomError("condition", "a field condition needs op")
            needs_value = self.op not in ("exists", "missing")
            if needs_value and "value" not in self.model_fields_set:
                raise PydanticCustomError("condition", "op {op} needs a value", {"op": self.op})
            if self.op in ("in", "not_in") and not isinstance(self.value, list):
                raise PydanticCustomError(
                    "condition", "op {op} needs a list value", {"op": self.op}
                )
        return self


class TouchedCondition(_Strict):
    """Behaviour: the person had at least N touches of these kinds (recently)."""

    kinds: list[KindKey] = Field(min_length=1)
    within_days: PositiveInt | None = None
    asset: str | None = Field(default=None, description="glob pattern on touch.asset")
    campaign: str | None = Field(default=None, description="glob pattern on touch.campaign")
    at_least: PositiveInt = 1


class MqlCondition(Condition):
    """A condition of the MQL definition; may also look at the person's touches."""

    touched: TouchedCondition | None = None


class Rules(_Strict):
    """Inclusion rules: the touch syncs only if all (or any) conditions hold."""

    match: Literal["all", "any"] = "all"
    conditions: list[Condition] = Field(min_length=1)


class NameFilter(_Strict):
    """Glob patterns on campaign/program names; an empty include list means all."""

    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)


class KindFilter(_Strict):
    """Touch kinds that sync; an empty include list means all kinds."""

    include: list[KindKey] = Field(default_factory=list)
    exclude: list[KindKey] = Field(default_factory=list)


class Filters(_Strict):
    """Which touches sync at all."""

    kinds: KindFilter = Field(default_factory=KindFilter)
    campaigns: NameFilter = Field(default_factory=NameFilter)
    rules: Rules | None = None


# --- lifecycle ---------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(?:(\d+)w)?\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*$")


def parse_duration(text: str) -> timedelta:
    """``"1d12h"`` -> 36 hours; units w, d, h, m (in that order). Raises ValueError."""
    match = _DURATION.match(text)
    if not match or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r} (write e.g. 30m, 4h, 2d, 1d12h, 1w)")
    weeks, days, hours, minutes = (int(g) if g else 0 for g in match.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes)


def _check_duration(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("duration", "write a duration such as 4h, 2d or 1d12h")
    try:
        parse_duration(value)
    except ValueError:
        raise PydanticCustomError(
            "duration", "not a duration (write e.g. 30m, 4h, 2d, 1d12h, 1w)"
        ) from None
    return value


Duration = Annotated[str, BeforeValidator(_check_duration), Field(pattern=_DURATION.pattern)]


class Mql(_Strict):
    """When a lead is marketing-qualified: a score threshold and/or behaviour and fit rules."""

    score_at_least: float | None = None
    any_of: list[MqlCondition] = Field(default_factory=list, description="at least one holds")
    all_of: list[MqlCondition] = Field(default_factory=list, description="every one holds")
    combine: Literal["or", "and"] = Field(
        default="or", description="how the score threshold combines with the rules"
    )

    @model_validator(mode="after")
    def _something(self) -> Mql:
        if self.score_at_least is None and not self.any_of and not self.all_of:
            raise PydanticCustomError(
                "mql", "define score_at_least, any_of or all_of (an empty MQL never qualifies)"
            )
        return self


class Lifecycle(_Strict):
    """The shared stages mapped to this CRM's status/stage values, the MQL definition and SLAs.

    ``lifecycle_field`` has its own value map because its values are not status values: a
    HubSpot contact has both a lead status (OPEN) and a lifecycle stage (marketingqualifiedlead).
    """

    status_field: str = Field(description="the person field holding the status (Lead.Status)")
    stage_field: str | None = Field(
        default=None, description="the deal field holding the stage (Opportunity.StageName)"
    )
    stages: dict[StageKey, list[str]] = Field(
        description="stage -> the values of status_field and stage_field that mean it"
    )
    lifecycle_field: str | None = Field(
        default=None,
        description="a second person field with its own stages, read alongside status_field "
        "(HubSpot's lifecyclestage)",
    )
    lifecycle_stages: dict[StageKey, list[str]] = Field(
        default_factory=dict, description="stage -> the values of lifecycle_field that mean it"
    )
    reason_field: str | None = Field(
        default=None,
        description="the field giving why a person was disqualified or recycled (both "
        "outcomes; reason_fields names one per outcome)",
    )
    reason_fields: dict[OutcomeKey, str] = Field(
        default_factory=dict,
        description="Disqualified / Recycled -> the field giving the reason of that outcome, "
        "for orgs that keep them apart (an outcome not listed uses reason_field)",
    )
    sla: dict[StageKey, Duration] = Field(
        default_factory=dict,
        description="this CRM's targets per stage: MQL, time from the hand-off to the first "
        "sales action; a later stage (SAL, SQL ...), time from entering it to moving on",
    )
    mql: Mql | None = None
    mql_gate: list[Literal["create_people", "push_touches"]] = Field(
        default_factory=list,
        description="what waits until a person meets the mql definition: create_people (people "
        "the CRM lacks are created only then), push_touches (a person's touches are pushed "
        "only then); held touches are looked at again on every run",
    )

    @model_validator(mode="after")
    def _gate_needs_mql(self) -> Lifecycle:
        if self.mql_gate and self.mql is None:
            raise PydanticCustomError(
                "mql_gate", "mql_gate needs an mql definition in this lifecycle section"
            )
        return self


# --- campaign members (Salesforce) -------------------------------------------------------

# A Salesforce Campaign Id: 15 or 18 characters, key prefix 701.
_CAMPAIGN_ID = re.compile(r"^701[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?$")


def _check_campaign_id(value: Any) -> Any:
    if isinstance(value, str) and not _CAMPAIGN_ID.match(value.strip()):
        raise PydanticCustomError(
            "campaign_id",
            "not a Salesforce Campaign Id (15 or 18 characters starting with 701, as in the "
            "Campaign's URL)",
        )
    return value.strip() if isinstance(value, str) else value


CampaignId = Annotated[str, BeforeValidator(_check_campaign_id)]


class CampaignMembers(_Strict):
    """Add the person of each delivered touch to its Salesforce Campaign (CampaignMember).

    The member's status comes from the touch kind and only moves up ``status_order``: a member
    who Responded stays Responded when a later email is merely Sent.
    """

    enabled: bool = Field(default=False, description="sync campaign members (off by default)")
    match: Literal["name", "map"] = Field(
        default="name",
        description="how touch.campaign finds the Salesforce Campaign: name (the Campaign Name; "
        "entries in campaigns win) or map (only campaigns listed in campaigns)",
    )
    campaigns: dict[str, CampaignId] = Field(
        default_factory=dict,
        description="source campaign (touch.campaign: program name or id) -> Salesforce "
        "Campaign Id",
    )
    status_order: list[str] = Field(
        min_length=1,
        description="member statuses from lowest to highest, e.g. [Sent, Opened, Responded]; "
        "a status never moves down this list",
    )
    statuses: dict[KindKey, str] = Field(
        min_length=1,
        description="touch kind -> member status; touches of other kinds add no member",
    )


# --- the file ----------------------------------------------------------------------------


def _check_crm(value: Any) -> Any:
    # Any installed connector type with the sink role (``crm``): Salesforce, HubSpot, a plugin.
    from connectors.registry import sink_names

    if isinstance(value, str) and value not in (known := sink_names()):
        raise PydanticCustomError(
            "crm",
            "not an installed CRM connector type{hint}; installed: {known} "
            "(`closedloop connectors list` shows every connector and its roles)",
            {"hint": did_you_mean(value, known), "known": ", ".join(known)},
        )
    return value


CrmName = Annotated[
    str,
    BeforeValidator(_check_crm),
    WithJsonSchema(
        {
            "anyOf": [{"enum": ["salesforce", "hubspot"]}, {"type": "string", "minLength": 1}],
            "description": "the CRM connector type touches are written to: salesforce, hubspot, "
            "or an installed plugin with the crm role",
        }
    ),
]


class MappingFile(_Strict):
    """A closedloop mapping file: how touches, people and lifecycle map onto one CRM."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="closedloop mapping",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    schema_version: Literal[1] = Field(description="the mapping format version")
    name: str = Field(min_length=1)
    description: str = ""
    source: str = Field(description="the source connector type: marketo, hubspot, files, ...")
    crm: CrmName
    timezone: str = Field(default="UTC", description="IANA zone for dates written to the CRM")
    truncation_marker: str = Field(default=" [...]", description="appended to cut text")
    touches: TouchRules
    people: People = Field(default_factory=People)
    filters: Filters = Field(default_factory=Filters)
    lifecycle: Lifecycle | None = None
    campaign_members: CampaignMembers | None = Field(
        default=None, description="Salesforce only: add people to the Campaign of their touches"
    )
    opt_out: OptOut | None = Field(
        default=None, description="set the CRM's email opt-out from unsubscribe touches"
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_timezone(value)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a mapping file, for editors (yaml-language-server)."""
    return MappingFile.model_json_schema()


def json_schema_text() -> str:
    """The JSON Schema as the exact text committed in mappings/."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
