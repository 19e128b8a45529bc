"""A third-party connector, packaged on its own, that yields one touch per configured email."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, SecretStr

from connectors.base import CheckResult, Cursor, Page, Touch, TouchKind
from connectors.errors import AuthError
from connectors.registry import ConnectorInfo

_TOKEN = "let-me-in"


class EchoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: SecretStr
    emails: list[str]
    start: datetime


class EchoSource:
    def __init__(self, name: str, settings: EchoSettings) -> None:
        self.name = name
        self.settings = settings

    def check(self) -> list[CheckResult]:
        ok = self.settings.token.get_secret_value() == _TOKEN
        return [
            CheckResult("token", ok, "", "" if ok else "set token to the value on the echo page")
        ]

    def pull_touches(self, cursor: Cursor, until: datetime) -> Iterator[Page[Touch]]:
        if self.settings.token.get_secret_value() != _TOKEN:
            raise AuthError("echo rejected the token")
        touches = []
        for i, email in enumerate(self.settings.emails):
            at = self.settings.start + timedelta(hours=i)
            if at > until or (cursor.value and at.isoformat() < cursor.value):
                continue
            touches.append(Touch(self.name, f"echo-{i}", TouchKind.FORM_FILL, at, email))
        for touch in touches:
            value = touch.occurred_at.isoformat()
            cursor = cursor.advance(value, [touch.key])
            yield Page([touch], cursor)


INFO = ConnectorInfo(
    name="echo",
    roles=frozenset({"source"}),
    settings_model=EchoSettings,
    factory=EchoSource,
    description="test plugin: one touch per configured email",
)
