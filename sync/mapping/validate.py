"""Validate a mapping file and report every problem at its file:line:col and key path.

Two passes. The structural pass is the pydantic model (unknown keys get a "did you mean" from
the model's own field names). The semantic pass checks what the model cannot know alone: CRM
objects and fields against a ``FieldCatalogue`` (did-you-mean from the catalogue's own fields),
fields the integration user cannot write, values against the fields' types and picklists
(``fieldtypes``; constants, mapped values, defaults and a transform chain run on a sample
timestamp), field paths, templates (syntax, variables, fields of touch/person, filters),
lifecycle values used twice, the fields a CRM requires when closedloop creates records, and
campaign member statuses against their order. Member statuses are not checked against a
picklist: Salesforce keeps them per Campaign (CampaignMemberStatus), so a status a Campaign
lacks is refused per record at sync time.

Which catalogue is always the caller's explicit choice, a ``SchemaSource``: the org's own
schema (``sync.crm_schema.OrgSchema``), ``offline_catalogue()`` or ``UNCHECKED``. The source is
asked only after the structural pass, for the objects the mapping names (``needed_objects``),
so a broken file costs no call to the CRM.

``load_mapping`` is what the engine and the CLI call: it returns a compiled mapping or raises
``MappingError`` carrying every issue. ``load_lifecycle`` reads only the lifecycle section (for
reports and recycling, which never write to the CRM).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, ValidationError

from connectors.errors import ConfigError, ConfigIssue, MappingError, did_you_mean
from sync.mapping.catalogue import (
    CLOSEDLOOP_HUBSPOT_PROPERTIES,
    HUBSPOT_ENGAGEMENTS,
    STANDARD,
    UNCHECKED,
    FieldCatalogue,
    FieldInfo,
    SchemaSource,
    deal_objects,
    person_objects,
)
from sync.mapping.compile import CompiledMapping, compile_mapping
from sync.mapping.conditions import check_path
from sync.mapping.fieldtypes import kind_of, picklist_problem, type_problem
from sync.mapping.lifecycle import CompiledLifecycle, compile_lifecycle
from sync.mapping.migrate import detect_version
from sync.mapping.model import (
    CURRENT_SCHEMA_VERSION,
    EVENT_TARGETS,
    DatetimeTransform,
    EventSpec,
    FieldRule,
    Lifecycle,
    MappingFile,
    MapTransform,
    Stage,
    TruncateTransform,
)
from sync.mapping.templates import check_template, constant_text, make_environment
from sync.mapping.transforms import compile_transforms
from sync.yamlfile import (
    KeyPath,
    LocatedYaml,
    issues_from_validation_error,
    load_yaml,
)

__all__ = [
    "ValidationReport",
    "load_lifecycle",
    "load_mapping",
    "needed_objects",
    "validate_file",
    "validate_located",
]

# Sources whose kind of value is known, with a sample: their transform chains are checked
# against the field's type at validate time (others are checked per touch by ``compile``).
_SAMPLE_TIME = datetime(2024, 5, 6, 13, 0, tzinfo=UTC)
_SAMPLES: dict[str, Any] = {
    "touch.occurred_at": _SAMPLE_TIME, "person.created_at": _SAMPLE_TIME,
    "person.updated_at": _SAMPLE_TIME, "touch.kind": "form_fill", "person.kind": "lead",
    "touch.source": "marketo", "person.score": 42.0, "person.converted": False,
}  # fmt: skip
_EVENT_NEEDS = {
    "timeline_event": "the eventTemplateId of your public app's timeline event template",
    "behavioral_event": "the custom event's fully qualified name, pe<HubID>_<name>, from "
    "Data Management > Custom Events",
}


@dataclass
class ValidationReport:
    """The outcome of validating one file: its issues and, when valid, the parsed model."""

    file: str
    issues: list[ConfigIssue] = field(default_factory=list)
    model: MappingFile | None = None
    # What the CRM fields were checked against ("against the Salesforce org of ..."), once known.
    checked: str | None = None
    catalogue: FieldCatalogue | None = None

    @property
    def ok(self) -> bool:
        """True when the file has no issue."""
        return not self.issues


def load_mapping(path: Path, schema: SchemaSource) -> CompiledMapping:
    """Validate ``path`` against ``schema`` and compile it; raises MappingError with every issue
    (each carrying what the fields were checked against)."""
    report = validate_file(path, schema)
    if report.model is None or report.catalogue is None or report.issues:
        checked = f" (checked {report.checked})" if report.checked else ""
        raise MappingError(f"{path}: invalid mapping{checked}", report.issues)
    return compile_mapping(report.model, report.catalogue)


def load_lifecycle(path: Path) -> CompiledLifecycle:
    """The lifecycle section of a mapping file, for readers that never write to the CRM
    (reports, recycling): the file is validated without a CRM schema (``UNCHECKED``); its CRM
    values are checked by ``mappings validate`` and ``sync`` against the org."""
    report = validate_file(path, UNCHECKED)
    if report.model is None or report.issues:
        raise MappingError(f"{path}: invalid mapping", report.issues)
    return compile_lifecycle(report.model.lifecycle)


def validate_file(path: Path, schema: SchemaSource) -> ValidationReport:
    """Every issue of the mapping file at ``path`` (never raises for a bad file; the schema
    source may raise when it cannot read the org)."""
    try:
        located = load_yaml(path)
    except ConfigError as exc:
        issues = exc.issues or [ConfigIssue(str(path), None, None, "", str(exc))]
        return ValidationReport(str(path), issues)
    return validate_located(located, schema)


def needed_objects(model: MappingFile) -> list[str]:
    """The CRM objects whose fields ``model`` writes or reads (what the schema must cover)."""
    found: dict[str, None] = {}
    targets = [model.touches.target, *(r.target for r in model.touches.kinds.values() if r.target)]
    for target in targets:
        if target not in EVENT_TARGETS:
            found[target] = None
    for obj in person_objects(model.crm):
        found[obj] = None
    if model.lifecycle is not None and model.lifecycle.stage_field is not None:
        for obj in deal_objects(model.crm):
            found[obj] = None
    return list(found)


def validate_located(located: LocatedYaml, schema: SchemaSource) -> ValidationReport:
    """Validate already-parsed YAML (positions kept for messages) against ``schema``."""
    report = ValidationReport(located.file)
    data = located.data
    if not isinstance(data, dict):
        report.issues.append(located.issue((), "a mapping file is a YAML mapping of keys"))
        return report
    version_issue = _version_issue(located, data)
    if version_issue is not None:
        report.issues.append(version_issue)
        return report
    try:
        model = MappingFile.model_validate(data)
    except ValidationError as exc:
        allowed = dict(_allowed_keys(MappingFile, data, ()))
        report.issues.extend(issues_from_validation_error(exc, located, allowed_keys=allowed))
        return report
    catalogue = schema.catalogue(model.crm, needed_objects(model))
    report.catalogue = catalogue
    report.checked = catalogue.origin_for(model.crm)
    report.issues.extend(_Semantic(model, located, catalogue).run())
    if not report.issues:
        report.model = model
    return report


def _version_issue(located: LocatedYaml, data: dict[str, Any]) -> ConfigIssue | None:
    version = detect_version(data)
    migrate = f"run `closedloop mappings migrate {located.file} --write`"
    if "schema_version" not in data:
        if version == 0:
            return located.issue(
                (), f"this is a schema version 0 mapping (flat fields list); {migrate}"
            )
        return located.issue(
            ("schema_version",),
            f"required key is missing (current version: {CURRENT_SCHEMA_VERSION})",
        )
    if version == 0:
        return located.issue(("schema_version",), f"schema version 0 is no longer read; {migrate}")
    if isinstance(version, int) and version > CURRENT_SCHEMA_VERSION:
        return located.issue(
            ("schema_version",),
            f"schema_version {version} is newer than this closedloop reads "
            f"({CURRENT_SCHEMA_VERSION}); upgrade closedloop",
        )
    return None


# --- allowed keys for "did you mean" on unknown keys --------------------------------------


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _allowed_keys(tp: Any, data: Any, path: KeyPath) -> Iterator[tuple[KeyPath, list[str]]]:
    tp = _unwrap(tp)
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if not isinstance(data, dict):
            return
        fields = tp.model_fields
        yield path, list(fields)
        for name, info in fields.items():
            if name in data:
                yield from _allowed_keys(info.annotation, data[name], (*path, name))
    elif origin is dict and isinstance(data, dict):
        value_type = typing.get_args(tp)[1]
        for key, value in data.items():
            yield from _allowed_keys(value_type, value, (*path, key))
    elif origin is list and isinstance(data, list):
        item_type = typing.get_args(tp)[0]
        for index, item in enumerate(data):
            yield from _allowed_keys(item_type, item, (*path, index))
    elif origin in (Union, types.UnionType) and isinstance(data, dict):
        models = [
            m for m in map(_unwrap, typing.get_args(tp))
            if isinstance(m, type) and issubclass(m, BaseModel)
        ]  # fmt: skip
        if models:
            best = max(models, key=lambda m: len(set(m.model_fields) & set(data)))
            yield from _allowed_keys(best, data, path)


# --- the semantic pass ---------------------------------------------------------------------


class _Semantic:
    """Checks that need the CRM catalogue, templates or cross-references."""

    def __init__(self, model: MappingFile, located: LocatedYaml, catalogue: FieldCatalogue):
        self.model = model
        self.located = located
        self.catalogue = catalogue
        self.crm = model.crm
        self.env = make_environment(model.timezone)
        self.issues: list[ConfigIssue] = []

    def add(self, path: Sequence[str | int], message: str, *, key: bool = False) -> None:
        self.issues.append(self.located.issue(path, message, key=key))

    def run(self) -> list[ConfigIssue]:
        self.touches()
        self.filters()
        self.people()
        self.lifecycle()
        self.campaign_members()
        self.owner()
        self.opt_out()
        return sorted(self.issues, key=lambda i: (i.line or 0, i.column or 0))

    # -- catalogue helpers

    def fields_of(self, obj: str) -> Mapping[str, FieldInfo] | None:
        return self.catalogue.fields(self.crm, obj)

    def check_object(self, path: KeyPath, obj: str) -> None:
        if self.crm == "hubspot":
            targets = (*HUBSPOT_ENGAGEMENTS, *EVENT_TARGETS)
            if obj not in targets:
                self.add(
                    path,
                    f"HubSpot touches are engagements ({', '.join(HUBSPOT_ENGAGEMENTS)}) or "
                    f"events ({', '.join(EVENT_TARGETS)}){did_you_mean(obj, targets)}",
                )
            return
        known = self.catalogue.object_names(self.crm)
        if obj in self.catalogue.absent_objects(self.crm):
            names = sorted({*known, *STANDARD.object_names(self.crm)})
            self.add(
                path,
                f"the org has no object {obj!r} the integration user can see"
                f"{did_you_mean(obj, names)} (checked {self.catalogue.origin_for(self.crm)})",
            )
        elif self.catalogue.lists_objects and obj not in known and self.crm != "salesforce":
            self.add(
                path,
                f"{self.crm} has no object {obj!r}{did_you_mean(obj, known)} (objects: "
                f"{', '.join(known)}; checked {self.catalogue.origin_for(self.crm)})",
            )
        elif self.catalogue.lists_objects and obj not in known and not obj.endswith("__c"):
            self.add(
                path,
                f"unknown Salesforce object {obj!r}{did_you_mean(obj, known)}"
                " (custom objects end in __c)",
            )

    def check_field(
        self,
        path: KeyPath,
        objects: Sequence[str],
        name: str,
        *,
        key: bool = True,
        write: str | None = None,
    ) -> FieldInfo | None:
        """The field's info when found; an issue when the catalogue knows the objects but not it.

        ``write`` is how closedloop writes the field ("create", "update" or "both"); a field the
        integration user cannot write that way is reported too.
        """
        known: list[str] = []
        catalogued = False
        for obj in objects:
            fields = self.fields_of(obj)
            if fields is None:
                continue
            catalogued = True
            if name in fields:
                info = fields[name]
                if write is not None:
                    self.check_writable(path, obj, info, write, key=key)
                return info
            known.extend(fields)
        if catalogued:
            where = " or ".join(o for o in objects if self.fields_of(o) is not None)
            self.add(
                path,
                f"{where} has no field {name!r}{did_you_mean(name, sorted(set(known)))}"
                f" (checked {self.catalogue.origin_for(self.crm)}){self.missing_hint(name)}",
                key=key,
            )
        return None

    def missing_hint(self, name: str) -> str:
        """What to do when the org lacks a field the mapping names."""
        if self.crm == "hubspot":
            own = {i.name for infos in CLOSEDLOOP_HUBSPOT_PROPERTIES.values() for i in infos}
            if name in own:
                return "; `closedloop check hubspot --fix` creates closedloop's own properties"
            return ""
        if self.crm == "salesforce" and name.endswith("__c"):
            # Describe omits the fields a user has no read access to, and a field deployed
            # through the Metadata or Tooling API grants none until an admin does.
            # https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/meta_profile.htm
            return (
                "; if the field exists in Setup, the integration user likely lacks field-level "
                "security on it: give the user's profile or a permission set assigned to it "
                "Read and Edit access to the field (Setup > Object Manager > the object > "
                "Fields & Relationships > the field > Set Field-Level Security), then run "
                "`closedloop schema refresh`"
            )
        return ""

    def check_writable(
        self, path: KeyPath, obj: str, info: FieldInfo, write: str, *, key: bool
    ) -> None:
        """Report a field closedloop writes (``write``: create, update, both) but may not."""
        needs_create = write in ("create", "both")
        needs_update = write in ("update", "both")
        if (needs_create and not info.createable) or (needs_update and not info.updateable):
            verbs = " and ".join(
                v for v, need, can in (("created", needs_create, info.createable),
                                       ("updated", needs_update, info.updateable))
                if need and not can
            )  # fmt: skip
            self.add(
                path,
                f"{obj}.{info.name} cannot be {verbs} by the integration user (read-only or no "
                f"edit access; checked {self.catalogue.origin_for(self.crm)}): remove it here, "
                "or grant edit access to it",
                key=key,
            )

    def check_value(self, path: KeyPath, info: FieldInfo | None, value: Any, what: str) -> None:
        """A value known now (constant, mapped value, default) fits the field's type and list."""
        if info is None or value is None:
            return
        problem = type_problem(self.crm, info, value)
        if problem is not None:
            self.add(path, f"{what} {value!r} {problem}")
            return
        if not info.picklist or isinstance(value, bool) or kind_of(self.crm, info) != "text":
            return
        if picklist_problem(self.crm, info, value) is not None or (
            not info.restricted and str(value) not in info.picklist
        ):
            hint = did_you_mean(str(value), info.picklist)
            also = (
                "" if info.restricted
                else "; add it to the picklist in Setup if it is meant, Salesforce stores it "
                "as a value outside the list"
            )  # fmt: skip
            self.add(
                path,
                f"{what} {value!r} is not a value of {info.name}{hint}"
                f" (values: {', '.join(info.picklist)}){also}",
            )

    def check_sample(
        self, path: KeyPath, info: FieldInfo | None, rule: Any, steps: Sequence[Any]
    ) -> None:
        """Run a source whose kind is known (a timestamp, the touch kind...) through the
        transforms and check the result fits the field (``{datetime: epoch_ms}`` into a date)."""
        if info is None or kind_of(self.crm, info) == "text":
            return
        source = getattr(rule, "source", None)
        if source not in _SAMPLES or any(isinstance(s, MapTransform) for s in steps):
            return
        funcs = compile_transforms(
            steps, timezone=self.model.timezone, marker=self.model.truncation_marker,
            crm_length=info.length,
        )  # fmt: skip
        value: Any = _SAMPLES[source]
        for fn in funcs:
            value = fn(value)
        if isinstance(value, datetime):
            value = value.isoformat()  # the form a raw timestamp takes in the payload
        problem = type_problem(self.crm, info, value)
        if problem is not None:
            shown = f"{source}" + (" after its transforms" if steps else "")
            self.add(path, f"{shown} gives values like {value!r}, which {problem}")

    # -- touches

    def touches(self) -> None:
        touches = self.model.touches
        base: KeyPath = ("touches",)
        self.check_object((*base, "target"), touches.target)
        targets = {touches.target: (*base, "target")}
        for kind, rule in touches.kinds.items():
            if rule.target:
                self.check_object((*base, "kinds", kind.value, "target"), rule.target)
                targets.setdefault(rule.target, (*base, "kinds", kind.value, "target"))
        for obj, where in targets.items():
            for attr in ("key_field", "person_field", "account_field"):
                name = getattr(touches, attr)
                if name is not None:
                    path = (*base, attr) if obj == touches.target else where
                    self.check_field(path, (obj,), name, key=False, write=self.touch_write)
        self.event((*base,), touches.target, touches.event, inherited=False)
        self.field_rules((*base, "fields"), touches.target, touches.fields)
        covered_default = set(touches.fields)
        self.required_fields((*base, "fields"), touches.target, covered_default, base)
        for kind, rule in touches.kinds.items():
            kbase = (*base, "kinds", kind.value)
            target = rule.target or touches.target
            # A kind without its own target shares the file-wide target and its event section
            # (a missing one is reported there, once).
            inherits = rule.target is None or (
                rule.target == touches.target and touches.event is not None
            )
            self.event(kbase, target, rule.event, inherited=inherits)
            self.field_rules((*kbase, "fields"), target, rule.fields)
            covered = set(rule.fields) | (covered_default if target == touches.target else set())
            if rule.target and rule.target != touches.target:
                self.required_fields((*kbase, "fields"), target, covered, kbase)
            if rule.digest is not None:
                self.field_rules((*kbase, "digest", "fields"), target, rule.digest.fields)

    def event(self, base: KeyPath, target: str, spec: EventSpec | None, *, inherited: bool) -> None:
        """An event target has the event section it needs; other targets have none."""
        if target not in EVENT_TARGETS or self.crm != "hubspot":
            if spec is not None:
                self.add((*base, "event"), "event belongs to a HubSpot timeline_event or "
                                           "behavioral_event target; remove it here")  # fmt: skip
            return
        where = (*base, "target") if "target" in (self.raw(base) or {}) else base
        if spec is None:
            if not inherited:
                need = "template_id" if target == "timeline_event" else "name"
                self.add(where, f"a {target} target needs event.{need} ({_EVENT_NEEDS[target]})")
            return
        path = (*base, "event")
        if target == "timeline_event":
            if spec.template_id is None:
                self.add(path, f"a timeline_event needs template_id "
                               f"({_EVENT_NEEDS[target]})")  # fmt: skip
            if spec.name is not None:
                self.add((*path, "name"), "name is for behavioral_event targets; a "
                                          "timeline_event names its template_id")  # fmt: skip
            self.field_rules((*path, "extra_data"), target, spec.extra_data)
            return
        if spec.name is None:
            self.add(path, f"a behavioral_event needs name ({_EVENT_NEEDS[target]})")
        if spec.template_id is not None:
            self.add((*path, "template_id"), "template_id is for timeline_event targets; a "
                                             "behavioral_event names its event (name)")  # fmt: skip
        if spec.extra_data:
            self.add((*path, "extra_data"), "extra_data is for timeline_event targets; a "
                                            "behavioral_event sends only its properties "
                                            "(fields)")  # fmt: skip

    def required_fields(
        self, path: KeyPath, obj: str, covered: set[str], fallback: KeyPath
    ) -> None:
        fields = self.fields_of(obj)
        if fields is None:
            return
        auto = {self.model.touches.key_field, self.model.touches.person_field}
        missing = [f for f, info in fields.items() if info.required and f not in covered | auto]
        if missing:
            where = path if self.located.locate(path) != self.located.locate(()) else fallback
            self.add(where, f"{obj} requires {', '.join(missing)}; map it here")

    @property
    def touch_write(self) -> str:
        """How touch fields are written: Salesforce upserts (a replay updates), HubSpot creates."""
        return "both" if self.crm == "salesforce" else "create"

    def field_rules(self, base: KeyPath, obj: str, rules: Mapping[str, FieldRule]) -> None:
        for name, rule in rules.items():
            path = (*base, name)
            info = self.check_field(path, (obj,), name, write=self.touch_write)
            self.field_rule(path, info, rule)

    def field_rule(self, path: KeyPath, info: FieldInfo | None, rule: FieldRule) -> None:
        raw = self.raw(path)
        shorthand = isinstance(raw, str | int | float | bool)
        if rule.source is not None:
            problem = check_path(rule.source)
            if problem:
                self.add((*path, "source"), problem)
        if rule.template is not None:
            tpath = path if shorthand else (*path, "template")
            for problem in check_template(rule.template, self.env):
                self.add(tpath, problem)
        constant = rule.value
        if rule.template is not None and not check_template(rule.template, self.env):
            constant = constant_text(rule.template, self.env)
        if constant is not None and not rule.transforms:
            where = path if shorthand else (*path, "template" if rule.template else "value")
            self.check_value(where, info, constant, "value")
        if rule.default is not None:
            self.check_value((*path, "default"), info, rule.default, "default")
        if rule.source is not None:
            self.check_sample((*path, "source"), info, rule, rule.transforms)
        self.transforms(path, info, rule.transforms)

    def transforms(self, path: KeyPath, info: FieldInfo | None, steps: Sequence[Any]) -> None:
        for index, step in enumerate(steps):
            spath = (*path, "transforms", index)
            if isinstance(step, MapTransform):
                for source_value, crm_value in step.map.items():
                    self.check_value((*spath, "map", source_value), info, crm_value, "mapped value")
                if step.default is not None:
                    self.check_value((*spath, "default"), info, step.default, "default")
            elif isinstance(step, TruncateTransform) and step.truncate == "crm":
                if info is not None and info.length is None:
                    self.add(
                        (*spath, "truncate"),
                        f"the CRM length of this field is unknown ({info.name} is a {info.type} "
                        "field, not text); give a number or remove the step",
                    )
            elif isinstance(step, TruncateTransform) and isinstance(step.truncate, int):
                if info is not None and info.length is not None and step.truncate > info.length:
                    self.add(
                        (*spath, "truncate"),
                        f"{step.truncate} is longer than {info.name} holds ({info.length} "
                        f"characters; checked {self.catalogue.origin_for(self.crm)}): the CRM "
                        "would refuse longer text; use truncate: crm",
                    )
            elif isinstance(step, DatetimeTransform) and "%" not in step.datetime:
                formats = ("date", "iso", "epoch_ms")
                if step.datetime not in formats:
                    self.add(
                        (*spath, "datetime"),
                        f"unknown format {step.datetime!r}{did_you_mean(step.datetime, formats)}"
                        " (date, iso, epoch_ms or a strftime pattern with %)",
                    )

    def raw(self, path: KeyPath) -> Any:
        node: Any = self.located.data
        for part in path:
            in_dict = isinstance(node, dict) and part in node
            in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
            if not (in_dict or in_list):
                return None
            node = node[part]
        return node

    # -- filters

    def filters(self) -> None:
        rules = self.model.filters.rules
        if rules is not None:
            for i, cond in enumerate(rules.conditions):
                if cond.field is not None:
                    problem = check_path(cond.field)
                    if problem:
                        self.add(("filters", "rules", "conditions", i, "field"), problem)
        excluded = set(self.model.filters.kinds.exclude)
        for kind, rule in self.model.touches.kinds.items():
            if rule.digest is not None and kind in excluded:
                self.add(
                    ("touches", "kinds", kind.value, "digest"),
                    f"{kind.value} has a digest but filters.kinds.exclude drops it",
                )

    # -- people

    def people(self) -> None:
        people = self.model.people
        objects = person_objects(self.crm)
        base: KeyPath = ("people",)
        creates = people.unknown in ("create_lead", "create_contact")
        for name, rule in people.fields.items():
            path = (*base, "fields", name)
            writes = rule.direction != "from_crm" and rule.rule != "never"
            write = ("both" if creates else "update") if writes else None
            info = self.check_field(path, objects, name, write=write)
            problem = check_path(rule.source, roots=("person",))
            if problem:
                self.add((*path, "source"), problem)
            if writes:
                self.check_sample((*path, "source"), info, rule, rule.transforms)
            self.transforms(path, info, rule.transforms)
        for name, value in people.create_defaults.items():
            path = (*base, "create_defaults", name)
            info = self.check_field(path, objects, name, write="create")
            self.check_value(path, info, value, "value")
        if people.unknown == "create_lead" and self.crm == "hubspot":
            self.add(
                (*base, "unknown"),
                "HubSpot has no Lead object: use create_contact (and set lifecyclestage: lead "
                "in create_defaults)",
            )
            return
        if people.unknown in ("create_lead", "create_contact"):
            obj = {"create_lead": "Lead", "create_contact": "Contact"}[people.unknown]
            obj = "contact" if self.crm == "hubspot" else obj
            fields = self.fields_of(obj) or {}
            written = set(people.create_defaults) | {
                n
                for n, r in people.fields.items()
                if r.direction != "from_crm" and r.rule != "never"
            }
            missing = [f for f, info in fields.items() if info.required and f not in written]
            if missing:
                self.add(
                    (*base, "unknown"),
                    f"creating a {obj} needs {', '.join(missing)}: map it in people.fields or "
                    f"set people.create_defaults",
                )

    # -- lifecycle

    def lifecycle(self) -> None:
        lifecycle = self.model.lifecycle
        if lifecycle is None:
            return
        base: KeyPath = ("lifecycle",)
        people_objects = person_objects(self.crm)
        status = self.check_field((*base, "status_field"), people_objects, lifecycle.status_field,
                                  key=False)  # fmt: skip
        stage = None
        if lifecycle.stage_field is not None:
            stage = self.check_field(
                (*base, "stage_field"), deal_objects(self.crm), lifecycle.stage_field, key=False
            )
        if lifecycle.reason_field is not None:
            self.check_field((*base, "reason_field"), people_objects, lifecycle.reason_field,
                             key=False)  # fmt: skip
        for outcome, name in lifecycle.reason_fields.items():
            self.check_field((*base, "reason_fields", outcome.value), people_objects, name,
                             key=False)  # fmt: skip
        self.stage_values((*base, "stages"), lifecycle.stages, (status, stage))
        self.lifecycle_field(lifecycle)
        if lifecycle.mql is not None:
            for group in ("any_of", "all_of"):
                for i, cond in enumerate(getattr(lifecycle.mql, group)):
                    if cond.field is not None:
                        problem = check_path(cond.field)
                        if problem:
                            self.add((*base, "mql", group, i, "field"), problem)

    def stage_values(
        self,
        path: KeyPath,
        stages: Mapping[Stage, Sequence[str]],
        fields: Sequence[FieldInfo | None],
    ) -> None:
        """Each value means one stage and is a value of one of ``fields`` (when catalogued)."""
        allowed = [value for info in fields if info is not None for value in info.picklist]
        names = " / ".join(info.name for info in fields if info is not None)
        seen: dict[str, Stage] = {}
        for stage_name, values in stages.items():
            for i, value in enumerate(values):
                at = (*path, stage_name.value, i)
                folded = value.strip().casefold()
                if folded in seen:
                    self.add(at, f"{value!r} already means {seen[folded].value}; a CRM value "
                                 "maps to one stage")  # fmt: skip
                    continue
                seen[folded] = stage_name
                if allowed and value not in allowed:
                    self.add(at, f"{value!r} is not a value of {names}"
                                 f"{did_you_mean(value, allowed)}")  # fmt: skip

    def lifecycle_field(self, lifecycle: Lifecycle) -> None:
        """The optional second person field (HubSpot's lifecyclestage) and its value map."""
        base: KeyPath = ("lifecycle",)
        name = lifecycle.lifecycle_field
        if name is None:
            if lifecycle.lifecycle_stages:
                self.add((*base, "lifecycle_stages"),
                         "lifecycle_stages needs lifecycle_field: the person field whose values "
                         "they are (lifecycle_field: lifecyclestage)", key=True)  # fmt: skip
            return
        if self.crm != "hubspot":
            # Only HubSpot people carry a lifecycle stage the dispositions pipeline reads.
            self.add((*base, "lifecycle_field"),
                     "Salesforce people have no lifecycle stage beside their status: map the "
                     "status values in stages and remove lifecycle_field")  # fmt: skip
            return
        if name == lifecycle.status_field:
            self.add((*base, "lifecycle_field"),
                     f"{name!r} is already status_field; set status_field to the lead status "
                     "(hs_lead_status) or remove lifecycle_field")  # fmt: skip
            return
        info = self.check_field((*base, "lifecycle_field"), person_objects(self.crm),
                                name, key=False)  # fmt: skip
        if not lifecycle.lifecycle_stages:
            self.add((*base, "lifecycle_field"),
                     f"map the values of {name} to stages under lifecycle_stages "
                     "(MQL: [marketingqualifiedlead], ...)")  # fmt: skip
            return
        self.stage_values((*base, "lifecycle_stages"), lifecycle.lifecycle_stages, (info,))

    # -- campaign members

    def campaign_members(self) -> None:
        section = self.model.campaign_members
        if section is None:
            return
        base: KeyPath = ("campaign_members",)
        if self.crm != "salesforce":
            self.add(base, "campaign members are a Salesforce feature (CampaignMember); remove "
                           "this section for a HubSpot mapping")  # fmt: skip
            return
        seen: dict[str, int] = {}
        for i, status in enumerate(section.status_order):
            folded = status.strip().casefold()
            if not folded:
                self.add((*base, "status_order", i), "a member status cannot be blank")
            elif folded in seen:
                self.add((*base, "status_order", i),
                         f"{status!r} is already at position {seen[folded] + 1}; each status "
                         "appears once, from lowest to highest")  # fmt: skip
            else:
                seen[folded] = i
        for kind, status in section.statuses.items():
            if status.strip().casefold() not in seen:
                hint = did_you_mean(status, section.status_order)
                message = f"{status!r} is not in status_order{hint} (list it there, in its rank)"
                self.add((*base, "statuses", kind.value), message)
        if section.match == "map" and not section.campaigns:
            self.add((*base, "match"), "match: map needs campaigns (source campaign -> "
                                       "Salesforce Campaign Id)")  # fmt: skip

    # -- owners of created people and opt-outs

    def owner(self) -> None:
        owner = self.model.people.owner
        if owner is None:
            return
        base: KeyPath = ("people", "owner")
        unknown = self.model.people.unknown
        if unknown == "hold":
            self.add(
                base,
                "an owner is given to people closedloop creates; with unknown: hold "
                "it creates none (set unknown: create_lead or create_contact)",
            )
            return
        if self.crm not in ("salesforce", "hubspot"):
            self.add(
                base,
                f"owner settings are for Salesforce and HubSpot mappings; {self.crm} people "
                "get the owner its connector gives them: remove owner",
            )
            return
        if self.crm == "hubspot":
            if owner.hubspot_owner_id is None:
                self.add(
                    base,
                    "a HubSpot mapping sets the owner with hubspot_owner_id (the "
                    "owner id from Settings > Users or the owners API)",
                )
            elif not owner.hubspot_owner_id.isdigit():
                self.add(
                    (*base, "hubspot_owner_id"),
                    f"{owner.hubspot_owner_id!r} is not a HubSpot owner id (a number)",
                )
            return
        if owner.hubspot_owner_id is not None:
            self.add(
                (*base, "hubspot_owner_id"),
                "hubspot_owner_id is for HubSpot mappings; "
                "Salesforce takes assignment_rule, user or queue",
            )
            return
        lead_only = {
            "assignment_rule": "lead assignment rules assign Leads only",
            "queue": "queues can own Leads but not Contacts",
        }
        for name, what in lead_only.items():
            if getattr(owner, name) and unknown != "create_lead":
                self.add(
                    (*base, name),
                    f"Salesforce {what}, and this mapping creates Contacts "
                    "(set unknown: create_lead, or owner.user)",
                )
                return
        prefixes = {"assignment_rule": "01Q", "user": "005", "queue": "00G"}
        for name, prefix in prefixes.items():
            value = getattr(owner, name)
            if not value or (name == "assignment_rule" and value.lower() == "active"):
                continue
            if not (value.startswith(prefix) and len(value) in (15, 18) and value.isalnum()):
                self.add(
                    (*base, name),
                    f"{value!r} is not a Salesforce {name.replace('_', ' ')} "
                    f"Id (15 or 18 characters starting with {prefix})"
                    + (" or 'active'" if name == "assignment_rule" else ""),
                )

    def opt_out(self) -> None:
        section = self.model.opt_out
        if section is None:
            return
        base: KeyPath = ("opt_out",)
        subscription = section.subscription
        if self.crm == "salesforce":
            if subscription != "all":
                self.add(
                    (*base, "subscription"),
                    "Salesforce has one email opt-out (HasOptedOutOfEmail): remove subscription",
                )
            else:
                self.check_field(
                    base,
                    person_objects(self.crm),
                    "HasOptedOutOfEmail",
                    write="update",
                    key=False,
                )
        elif subscription != "all" and not subscription.isdigit():
            self.add(
                (*base, "subscription"),
                f"{subscription!r} is neither 'all' nor a HubSpot "
                "subscription type id (a number, from the subscription definitions)",
            )
