"""Error groups: dead letters of one pipeline, stage and code whose reasons read alike.

A vendor's message names the record it refused (an id, an address, the value it did not take),
so no two reasons are equal. :func:`message_template` masks what varies (quoted values, e-mail
addresses, URLs, ids, numbers), so that "Type: bad value for restricted picklist field: 'Expo
2026'" and the same refusal of another record fall together. The template and the group's key
(a digest of pipeline, stage, code and template) are stored on the letter the first time the
page reads it (:func:`fill_groups`), so grouping 100,000 letters is one indexed GROUP BY.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, bindparam, select, update

from sync.ledger.models import DeadLetterRow, DeadLetterStatus

__all__ = ["GROUP_KEY", "fill_groups", "group_key", "message_template"]

_DEAD = DeadLetterRow.__table__  # type: ignore[attr-defined]
GROUP_KEY = re.compile(r"[0-9a-f]{16}")  # what a group's key looks like (in a URL too)
_TEMPLATE_CHARS = 300
_FILL_BATCH = 2000

# Order matters: quoted values first (they may hold anything), then addresses and URLs (which
# hold dots and digits), then id-like tokens, then the numbers left.
_MASKS = (
    (re.compile(r"'[^'\n]{0,200}'|\"[^\"\n]{0,200}\"|`[^`\n]{0,200}`"), "'…'"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*"), "<email>"),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE), "<url>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"\b(?=[A-Za-z0-9_:-]*\d)(?=[A-Za-z0-9_:-]*[A-Za-z])[A-Za-z0-9_:-]{5,}\b"), "<id>"),
    (re.compile(r"[-+]?\d[\d,.]*"), "<n>"),
)


def message_template(reason: str) -> str:
    """``reason`` with what names one record masked (see the module docstring)."""
    text = reason[:2000]
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    text = " ".join(text.split())
    return text[:_TEMPLATE_CHARS]


def group_key(pipeline: str, stage: str, code: str, template: str) -> str:
    """The 16 hex digits that name an error group (stable across processes and replicas)."""
    joined = "\x1f".join((pipeline, stage, code, template))
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:16]


def fill_groups(engine: Engine) -> int:
    """Give every open letter without a group its template and group key; returns how many."""
    filled = 0
    while True:
        with engine.connect() as conn:
            rows: Sequence[Any] = conn.execute(
                select(_DEAD.c.id, _DEAD.c.pipeline, _DEAD.c.stage, _DEAD.c.code, _DEAD.c.reason)
                .where(_DEAD.c.status == DeadLetterStatus.OPEN.value, _DEAD.c.group_key.is_(None))
                .limit(_FILL_BATCH)
            ).all()
        if not rows:
            return filled
        values = []
        for row in rows:
            template = message_template(row.reason or "")
            key = group_key(row.pipeline, row.stage, row.code, template)
            values.append({"b_id": row.id, "b_template": template, "b_key": key})
        with engine.begin() as conn:
            conn.execute(
                update(_DEAD)
                .where(_DEAD.c.id == bindparam("b_id"))
                .values(template=bindparam("b_template"), group_key=bindparam("b_key")),
                values,
            )
        filled += len(rows)
