"""A third-party connector, packaged on its own: a touch source and a CRM sink.

As a source it yields one touch per configured email. As a sink (``store`` set) it is a tiny CRM
kept in a folder: it declares its objects and fields (``SinkInfo.fields``), so mappings with
``crm: echo`` are checked against them, and it keeps what it is sent:

- ``people.json``: the people it knows, by lower-cased email;
- ``records.json``: one record per touch key (a key sent again rewrites its record);
- ``received.jsonl``: every record every push call carried, one JSON line each, so a test can
  tell how often a touch was sent.

It refuses, per record, touches of the people listed in ``refuse`` (code ``ECHO_REFUSED``) and
payloads naming a field its catalogue lacks (code ``ECHO_UNKNOWN_FIELD``).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr

from connectors.base import (
    CheckResult,
    Cursor,
    DeliveryResult,
    Page,
    Person,
    PersonKind,
    RenderedTouch,
    Touch,
    TouchKind,
)
from connectors.errors import AuthError, ConfigError
from connectors.registry import ConnectorInfo, SinkInfo

_TOKEN = "let-me-in"

# The echo CRM's objects and fields: what `closedloop mappings validate` checks a mapping
# with `crm: echo` against (rows in the vendor-neutral form of connectors.registry.SinkInfo).
FIELDS: dict[str, list[dict[str, Any]]] = {
    "activity": [
        {"name": "touch_key", "type": "string", "length": 255},
        {"name": "person", "type": "reference"},
        {"name": "subject", "type": "string", "length": 80, "required": True},
        {"name": "kind", "type": "picklist", "restricted": True,
         "picklist": [kind.value for kind in TouchKind]},
        {"name": "occurred_at", "type": "datetime"},
        {"name": "campaign", "type": "string", "length": 120},
        {"name": "notes", "type": "textarea", "length": 4000},
    ],
    "person": [
        {"name": "email", "type": "email", "length": 255},
        {"name": "first_name", "type": "string", "length": 40},
        {"name": "last_name", "type": "string", "length": 80},
        {"name": "stage", "type": "picklist", "picklist": ["new", "working", "customer"]},
    ],
}  # fmt: skip


class EchoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: SecretStr
    emails: list[str] = []
    start: datetime | None = None
    store: Path | None = None
    refuse: list[str] = []


class Echo:
    def __init__(self, name: str, settings: EchoSettings) -> None:
        self.name = name
        self.settings = settings
        self._lock = threading.Lock()

    def check(self) -> list[CheckResult]:
        ok = self.settings.token.get_secret_value() == _TOKEN
        return [
            CheckResult("token", ok, "", "" if ok else "set token to the value on the echo page")
        ]

    def close(self) -> None:
        pass

    def _authorise(self) -> None:
        if self.settings.token.get_secret_value() != _TOKEN:
            raise AuthError("echo rejected the token")

    # -- the source ----------------------------------------------------------------------------

    def pull_touches(self, cursor: Cursor, until: datetime) -> Iterator[Page[Touch]]:
        self._authorise()
        start = self.settings.start or datetime(2026, 1, 1, tzinfo=UTC)
        touches = []
        for i, email in enumerate(self.settings.emails):
            at = start + timedelta(hours=i)
            if at > until or (cursor.value and at.isoformat() < cursor.value):
                continue
            touches.append(Touch(self.name, f"echo-{i}", TouchKind.FORM_FILL, at, email))
        for touch in touches:
            value = touch.occurred_at.isoformat()
            cursor = cursor.advance(value, [touch.key])
            yield Page([touch], cursor)

    # -- the sink ------------------------------------------------------------------------------

    def _folder(self) -> Path:
        if self.settings.store is None:
            raise ConfigError(f"echo connection {self.name!r} needs store: a folder to write to")
        self.settings.store.mkdir(parents=True, exist_ok=True)
        return self.settings.store

    def _read(self, name: str) -> dict[str, Any]:
        path = self._folder() / name
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def _write(self, name: str, data: dict[str, Any]) -> None:
        path = self._folder() / name
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        temporary.replace(path)

    def _person(self, row: dict[str, Any]) -> Person:
        return Person(self.name, row["id"], PersonKind.CONTACT, row["email"],
                      first_name=row.get("first_name"), last_name=row.get("last_name"))  # fmt: skip

    def resolve_people(self, emails: Sequence[str]) -> dict[str, Person]:
        self._authorise()
        with self._lock:
            people = self._read("people.json")
        wanted = {e.strip().lower() for e in emails}
        return {e: self._person(people[e]) for e in wanted if e in people}

    def create_people(self, people: Sequence[Person]) -> list[Person]:
        self._authorise()
        known = {f["name"] for f in FIELDS["person"]}
        made = []
        with self._lock:
            stored = self._read("people.json")
            for person in people:
                email = (person.email or "").strip().lower()
                if not email:
                    continue
                row = stored.get(email)
                if row is None:
                    given = {k: v for k, v in person.fields.items() if k in known}
                    row = {**given, "id": f"echo-p{len(stored) + 1}", "email": email}
                    stored[email] = row
                made.append(self._person(row))
            self._write("people.json", stored)
        return made

    def push_touches(self, touches: Sequence[RenderedTouch]) -> list[DeliveryResult]:
        self._authorise()
        refused = {e.strip().lower() for e in self.settings.refuse}
        fields: dict[str, set[str]] = {o: {f["name"] for f in rows} for o, rows in FIELDS.items()}
        results = []
        with self._lock:
            people = {row["id"]: email for email, row in self._read("people.json").items()}
            records = self._read("records.json")
            with (self._folder() / "received.jsonl").open("a", encoding="utf-8") as log:
                for touch in touches:
                    log.write(json.dumps({"key": touch.key, "target": touch.target,
                                          "payload": dict(touch.payload)}) + "\n")  # fmt: skip
                    unknown = sorted(set(touch.payload) - fields.get(touch.target, set()))
                    email = people.get(touch.person_id or "")
                    if touch.target not in FIELDS or unknown:
                        what = unknown[0] if unknown else touch.target
                        results.append(DeliveryResult(
                            touch.key, self.name, False, error_code="ECHO_UNKNOWN_FIELD",
                            error_message=f"echo has no {touch.target} field {what!r}",
                        ))  # fmt: skip
                        continue
                    if email in refused:
                        results.append(DeliveryResult(
                            touch.key, self.name, False, error_code="ECHO_REFUSED",
                            error_message=f"echo refuses touches of {email} (settings: refuse)",
                        ))  # fmt: skip
                        continue
                    record_id = "echo-r" + hashlib.sha256(touch.key.encode()).hexdigest()[:12]
                    created = touch.key not in records
                    records[touch.key] = {"id": record_id, "target": touch.target,
                                          "payload": dict(touch.payload)}  # fmt: skip
                    results.append(DeliveryResult(touch.key, self.name, True, record_id, created))
            self._write("records.json", records)
        return results

    def pull_changes(self, stream: str, cursor: Cursor, until: datetime) -> Iterator[Page[Any]]:  # noqa: ARG002
        """The echo CRM records no changes of its own."""
        self._authorise()
        return iter(())


INFO = ConnectorInfo(
    name="echo",
    roles=frozenset({"source", "crm"}),
    settings_model=EchoSettings,
    factory=Echo,
    description="test plugin: one touch per configured email; a CRM kept in a folder",
    sink=SinkInfo(label="echo store", person_objects=("person",), push_capacity=50, fields=FIELDS),
)
