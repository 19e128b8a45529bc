"""YAML field mappings compiled into pure functions (issue 4).

A mapping file (``mappings/*.yaml``) says how marketing touches become CRM records, which person
fields sync in which direction, which touches sync at all, and how the shared lifecycle maps
onto the CRM's values. ``load_mapping(path, schema)`` validates a file against the CRM schema
the caller names (every issue at file:line:col) and compiles it into a ``CompiledMapping``;
nothing here does I/O (reading an org's schema is ``sync.crm_schema``). Modules:

- ``model``: the file's shape (pydantic) and its JSON Schema
- ``validate``: structural and CRM-aware checks, ``load_mapping``
- ``compile``: the compiled mapping: ``render``, ``accepts``, ``digest``, ``plan_person``
- ``transforms`` / ``templates``: field transforms and sandboxed Jinja2 templates (fast path)
- ``conditions``, ``people``, ``digest``, ``lifecycle``: filters, person-field rules, digests,
  stages / MQL / SLA
- ``members``: the Salesforce Campaign and member status of a delivered touch
- ``catalogue``: CRM objects and fields (the org's own schema via ``sync.crm_schema``, or the
  sandbox's offline, or none); ``fieldtypes``: which values a field's type accepts
- ``migrate``: older schema versions; ``preview``: sample plans before anything is written
"""

from __future__ import annotations

from sync.mapping.catalogue import (
    UNCHECKED,
    FieldCatalogue,
    FieldInfo,
    SchemaSource,
    offline_catalogue,
)
from sync.mapping.compile import CompiledMapping, compile_mapping
from sync.mapping.lifecycle import CompiledLifecycle
from sync.mapping.model import MappingFile, Stage
from sync.mapping.people import FieldDecision, PersonPlan
from sync.mapping.validate import ValidationReport, load_lifecycle, load_mapping, validate_file

__all__ = [
    "UNCHECKED",
    "CompiledLifecycle",
    "CompiledMapping",
    "FieldCatalogue",
    "FieldDecision",
    "FieldInfo",
    "MappingFile",
    "PersonPlan",
    "SchemaSource",
    "Stage",
    "ValidationReport",
    "compile_mapping",
    "load_lifecycle",
    "load_mapping",
    "offline_catalogue",
    "validate_file",
]
