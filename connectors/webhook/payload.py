"""The activity JSON a sender posts, validated item by item into ``Touch`` records.

A body is one activity object or a list of them::

    {
      "id": "reg-18842",                      optional: the sender's id for this activity;
                                              without it the key is a hash of the identifying
                                              fields (connectors.files.fields.hashed_source_id)
      "kind": "webinar_registered",           required: a TouchKind value
      "email": "ann@example.com",             required
      "occurred_at": "2024-05-01T14:30:00Z",  required: ISO 8601 with offset, or unix seconds
      "campaign": "...", "channel": "...", "asset": "...", "person_ref": "...",   optional text
      "attributes": {"anything": "JSON"},     optional object
      "person": {"first_name": "Ann", "last_name": "Lee", "company": "Acme",
                 "title": "CTO", "phone": "...", "country": "DE"}   optional, all text
    }

``person`` is who the activity's person is (the mapping's ``person.first_name``,
``person.company``, ``person.fields.title`` ...): it fills the Lead or Contact closedloop creates
and feeds the mapping's ``people.fields`` rules for people the CRM already has.

Unknown fields are refused (a misspelled ``emial`` should fail loudly, not import a touch
without an email); free-form data goes in ``attributes``. Each item is judged on its own: one
bad item never spoils the rest of a batch.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.base import Touch
from connectors.errors import did_you_mean
from connectors.files.fields import (
    ID_MAX,
    FieldError,
    check_json_value,
    check_text,
    hashed_source_id,
    parse_email,
    parse_kind,
    parse_occurred_at,
)

__all__ = ["ITEM_FIELDS", "ItemReject", "jsonable", "parse_item", "reject_key"]

ITEM_FIELDS = frozenset(
    {
        "id",
        "kind",
        "email",
        "occurred_at",
        "campaign",
        "channel",
        "asset",
        "person_ref",
        "attributes",
        "person",
    }
)
PERSON_ITEM_FIELDS = ("first_name", "last_name", "company", "title", "phone", "country")
_TEXT_FIELDS = ("campaign", "channel", "asset", "person_ref")
_PAYLOAD_CHARS = 4000


@dataclass(frozen=True, slots=True)
class ItemReject:
    """An item (or a whole body) that could not become a touch; stored as a dead letter."""

    index: int | None
    code: str
    reason: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    key: str = ""


def jsonable(value: Any, *, depth: int = 0) -> Any:
    """``value`` made safe to store as JSON: bad text escaped, size and depth capped."""
    if depth > 32:
        return "..."
    if isinstance(value, str):
        if any("\ud800" <= char <= "\udfff" or char == "\x00" for char in value):
            value = (
                value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
            )
        return value if len(value) <= _PAYLOAD_CHARS else value[:_PAYLOAD_CHARS] + "..."
    if isinstance(value, dict):
        return {
            jsonable(str(k)): jsonable(v, depth=depth + 1) for k, v in list(value.items())[:200]
        }
    if isinstance(value, list):
        return [jsonable(v, depth=depth + 1) for v in value[:200]]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def reject_key(source: str, payload: Any) -> str:
    """A dead-letter key stable across re-deliveries: the source and a hash of the payload."""
    text = json.dumps(jsonable(payload), sort_keys=True, ensure_ascii=True)
    return f"{source}:{hashlib.sha256(text.encode('ascii')).hexdigest()[:24]}"


def parse_item(source: str, index: int, item: Any, now: datetime) -> Touch | ItemReject:
    """Validate one posted item into a Touch, or say (with a code) why it is refused."""
    try:
        return _parse(source, item, now)
    except FieldError as exc:
        payload = {"index": index, "item": jsonable(item)}
        return ItemReject(index, exc.code, exc.reason, payload, reject_key(source, item))


def _parse(source: str, item: Any, now: datetime) -> Touch:
    if not isinstance(item, dict):
        raise FieldError("wrong_type", "expected an activity object")
    unknown = sorted(str(k) for k in item if k not in ITEM_FIELDS)
    if unknown:
        hints = [repr(name[:40]) + did_you_mean(name, ITEM_FIELDS) for name in unknown[:5]]
        raise FieldError(
            "unknown_field", f"unknown field {', '.join(hints)}; put extra data in attributes"
        )
    email = parse_email(item.get("email"))
    kind = parse_kind(item.get("kind"))
    occurred_at = parse_occurred_at(item.get("occurred_at"), now=now, allow_epoch=True)
    texts: dict[str, str | None] = {}
    for name in _TEXT_FIELDS:
        value = item.get(name)
        if value is None:
            texts[name] = None
            continue
        if not isinstance(value, str):
            raise FieldError("wrong_type", f"{name}: expected text, got {_type_name(value)}")
        texts[name] = (
            check_text(name, value, max_len=ID_MAX if name == "person_ref" else 1000) or None
        )
    attributes = item.get("attributes", {})
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, dict):
        raise FieldError(
            "wrong_type", f"attributes: expected an object, got {_type_name(attributes)}"
        )
    check_json_value(attributes, "attributes")
    person = _person(item.get("person"))
    if person:
        attributes = {**attributes, "person": person}
    source_id = _source_id(item.get("id"))
    if source_id is None:
        source_id = hashed_source_id(email, kind, occurred_at, texts["campaign"], texts["asset"])
    return Touch(
        source=source,
        source_id=source_id,
        kind=kind,
        occurred_at=occurred_at,
        email=email,
        person_ref=texts["person_ref"],
        campaign=texts["campaign"],
        channel=texts["channel"],
        asset=texts["asset"],
        attributes=attributes,
        raw=item,
    )


def _person(value: Any) -> dict[str, str]:
    """The item's ``person`` object as person fields with a value (all text, known names)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FieldError("wrong_type", f"person: expected an object, got {_type_name(value)}")
    unknown = sorted(str(k) for k in value if k not in PERSON_ITEM_FIELDS)
    if unknown:
        raise FieldError(
            "unknown_field",
            f"person: unknown field {', '.join(repr(n[:40]) for n in unknown[:5])}; "
            f"known: {', '.join(PERSON_ITEM_FIELDS)}",
        )
    out: dict[str, str] = {}
    for name, text in value.items():
        if text is None:
            continue
        if not isinstance(text, str):
            raise FieldError("wrong_type", f"person.{name}: expected text, got {_type_name(text)}")
        checked = check_text(f"person.{name}", text, max_len=ID_MAX)
        if checked:
            out[name] = checked
    return out


def _source_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise FieldError("wrong_type", f"id: expected text or an integer, got {_type_name(value)}")
    text = check_text("id", str(value), max_len=ID_MAX)
    if not text:
        raise FieldError(
            "missing_id", "id: empty (leave it out to key the activity by its content)"
        )
    return text


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "a list", bool: "a boolean", int: "a number"}
    names[float] = "a number"
    return names.get(type(value), type(value).__name__)
