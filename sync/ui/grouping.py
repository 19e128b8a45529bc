"""Error groups: dead letters of one pipeline, stage and code whose reasons read alike.

A vendor's message names the record it refused (an id, an address, the value it did not take),
so no two reasons are equal. :func:`message_template` masks what varies (quoted values, e-mail
addresses, URLs, ids, numbers), so that "Type: bad value for restricted picklist field: 'Expo
2026'" and the same refusal of another record fall together. The template and the group's key
(a digest of pipeline, stage, code and template) are stored with the letter when it is written
(``sync.ingest.insert_rejects``), or the first time the page reads a letter written otherwise
(:func:`fill_groups`), so grouping 100,000 letters is one indexed GROUP BY.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, bindparam, select, update

from sync.ledger.models import DeadLetterRow, DeadLetterStatus

__all__ = ["GROUP_KEY", "fill_groups", "group_columns", "group_key", "message_template"]

_DEAD = DeadLetterRow.__table__  # type: ignore[attr-defined]
GROUP_KEY = re.compile(r"[0-9a-f]{16}")  # what a group's key looks like (in a URL too)
_TEMPLATE_CHARS = 300
_FILL_BATCH = 2000

# One pass over the text, alternatives in order: quoted values (they may hold anything), URLs
# and addresses (which hold dots and digits), word-like tokens (ids: letters and digits mixed;
# long numbers), then the numbers left.
_TOKENS = re.compile(
    r"""(?P<quoted>'[^'\n]{0,200}'|"[^"\n]{0,200}"|`[^`\n]{0,200}`)
      |(?P<url>\b[a-z][a-z0-9+.-]*://\S+)
      |(?P<email>(?<![\w.+-])[\w.+-]++@[\w-]+(?:\.[\w-]+)*+)
      |(?P<word>\b[A-Za-z0-9_-]{5,}\b)
      |(?P<number>[-+]?\d[\d,.]*+)""",
    re.IGNORECASE | re.VERBOSE,
)
_MASKS = {"quoted": "'…'", "url": "<url>", "email": "<email>", "number": "<n>"}
_DIGIT = re.compile(r"\d")
_LETTER = re.compile(r"[A-Za-z]")


def _mask(match: re.Match[str]) -> str:
    kind = match.lastgroup or ""
    if kind != "word":
        return _MASKS[kind]
    token = match.group()
    if not _DIGIT.search(token):
        return token  # a word, a code: INVALID_EMAIL_ADDRESS
    return "<id>" if _LETTER.search(token) else "<n>"


def message_template(reason: str) -> str:
    """``reason`` with what names one record masked (see the module docstring)."""
    text = _TOKENS.sub(_mask, reason[:2000])
    return " ".join(text.split())[:_TEMPLATE_CHARS]


def group_key(pipeline: str, stage: str, code: str, template: str) -> str:
    """The 16 hex digits that name an error group (stable across processes and replicas)."""
    joined = "\x1f".join((pipeline, stage, code, template))
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:16]


def group_columns(pipeline: str, stage: str, code: str, reason: str) -> dict[str, str]:
    """The ``template`` and ``group_key`` of a new dead letter (what ``insert_rejects`` stores)."""
    template = message_template(reason or "")
    return {"template": template, "group_key": group_key(pipeline, stage, code, template)}


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
