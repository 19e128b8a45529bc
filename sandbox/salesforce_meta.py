"""Per-object write rules of the Salesforce emulator, precomputed from the org's schema.

``ObjectMeta`` holds what every write of an object needs (required and unique fields, defaults,
fields a user may not set, the checks of each field's value, the indexed fields) so that batch
writes never scan every field; ``build_meta`` computes it (again when a custom field is added).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.salesforce_schema import STRING_TYPES, FieldDef, ObjectDef
from sandbox.salesforce_values import TEXTUAL_TYPES

__all__ = ["ObjectMeta", "build_meta", "index_key"]


@dataclass(frozen=True)
class ObjectMeta:
    """Per-object lists precomputed from the schema so batch writes never scan every field."""

    required: tuple[FieldDef, ...]
    unique: tuple[FieldDef, ...]
    template: dict[str, Any]
    owner_fields: tuple[str, ...]
    # Names of the fields a user may not set on create / on update (Id is checked apart).
    not_createable: frozenset[str]
    not_updateable: frozenset[str]
    # Names of the id and reference fields, normalized to 18 characters on write.
    id_fields: tuple[str, ...]
    # Per field: (max length of a text value or 0, is an e-mail, restricted picklist or None,
    # is a reference): the write checks of ``SalesforceStore._check`` without schema lookups.
    rules: dict[str, tuple[int, bool, tuple[str, ...] | None, bool]]
    # (field name, index key is casefolded) of every indexed field, for ``_index``/``_unindex``.
    index_keys: tuple[tuple[str, bool], ...]
    # Names of the fields whose JSON string is already the wire value (``deserialize``).
    textual: frozenset[str]


def build_meta(obj: ObjectDef) -> ObjectMeta:
    """The precomputed write rules of ``obj`` (rebuilt when a custom field is added)."""
    fields = list(obj.fields.values())
    template: dict[str, Any] = {}
    for f in fields:
        if f.type == "boolean":
            template[f.name] = f.default if isinstance(f.default, bool) else False
        elif f.default is not None and f.default != "$user":
            template[f.name] = f.default
        else:
            template[f.name] = None
    return ObjectMeta(
        required=tuple(f for f in fields if f.required),
        unique=tuple(f for f in fields if f.unique),
        template=template,
        owner_fields=tuple(f.name for f in fields if f.default == "$user"),
        not_createable=frozenset(f.name for f in fields if not f.createable) - {"Id"},
        not_updateable=frozenset(f.name for f in fields if not f.updateable) - {"Id"},
        id_fields=tuple(f.name for f in fields if f.type in ("reference", "id")),
        index_keys=tuple(
            (f.name, f.type in STRING_TYPES)
            for f in fields
            if f.indexed or f.unique or f.external_id
        ),
        textual=frozenset(f.name for f in fields if f.type in TEXTUAL_TYPES),
        rules={
            f.name: (
                f.length if f.type in STRING_TYPES else 0,
                f.type == "email",
                f.picklist if f.restricted else None,
                f.type == "reference",
            )
            for f in fields
        },
    )


def index_key(f: FieldDef, value: Any) -> Any:
    return value.casefold() if f.type in STRING_TYPES and isinstance(value, str) else value
