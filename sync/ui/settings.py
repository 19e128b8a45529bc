"""The ``ui:`` section of closedloop.yaml: who may sign in to the sync-health page, and how.

Users come from a file (``users_file``, one ``name:role:argon2-hash`` a line; ``closedloop
ui-user NAME`` prints such a line), or from a reverse proxy that signed them in: ``proxy.header``
names the header carrying the user name, honoured only from the addresses in ``proxy.trusted``;
the names in ``proxy.operators`` get the operator role, everyone else the proxy lets in is a
viewer. Roles: ``viewer`` sees everything; ``operator`` may also replay, discard and run now.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["ROLES", "ProxySettings", "UiSettings", "UiUser", "parse_users"]

ROLES = ("viewer", "operator")
_NAME = re.compile(r"[A-Za-z0-9_.@+-]{1,64}")
_HEADER = re.compile(r"[A-Za-z0-9-]{1,64}")


@dataclass(frozen=True)
class UiUser:
    """One user of the page: name, role and password hash (never shown anywhere)."""

    name: str
    role: str
    password_hash: str


def parse_users(text: str) -> dict[str, UiUser]:
    """The users of a users file; ValueError names the line that is wrong (never its hash)."""
    users: dict[str, UiUser] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        role, _, hashed = rest.partition(":")
        where = f"users file line {number}"
        if not _NAME.fullmatch(name):
            raise ValueError(f"{where}: expected name:role:hash with a name of letters and digits")
        if role not in ROLES:
            raise ValueError(f"{where}: role must be viewer or operator")
        if not hashed.startswith("$argon2"):
            raise ValueError(
                f"{where}: the password must be an argon2 hash (make one with "
                "`closedloop ui-user NAME`)"
            )
        if name in users:
            raise ValueError(f"{where}: user {name!r} is listed twice")
        users[name] = UiUser(name, role, hashed)
    return users


class ProxySettings(BaseModel):
    """A reverse proxy that signs people in and tells closedloop who they are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    header: str
    trusted: list[str] = Field(min_length=1)
    operators: list[str] = Field(default_factory=list)

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not _HEADER.fullmatch(value):
            raise ValueError("a header name of letters, digits and dashes")
        return value

    @field_validator("trusted")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)  # ValueError names the bad one
        return value

    def trusts(self, address: str | None) -> bool:
        """Whether a request from ``address`` may name its user in the header."""
        if not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(n, strict=False) for n in self.trusted)


class UiSettings(BaseModel):
    """The ``ui:`` section (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True  # false: serve mounts no page (webhooks, probes and /metrics only)
    users: SecretStr | None = None  # the content of users_file
    proxy: ProxySettings | None = None
    secure_cookie: Literal["auto", "always", "never"] = "auto"
    session_hours: float = Field(default=8.0, gt=0, le=24 * 30)
    sign_in_attempts: int = Field(default=5, ge=1, le=1000)  # failures per address per 5 min

    @model_validator(mode="after")
    def _users_parse(self) -> UiSettings:
        if self.users is not None:
            parse_users(self.users.get_secret_value())
        return self

    def user_table(self) -> dict[str, UiUser]:
        """The users of ``users_file`` by name (empty without one)."""
        return parse_users(self.users.get_secret_value()) if self.users is not None else {}

    @property
    def has_credentials(self) -> bool:
        """Whether anyone can be signed in: a users file with a user, or a trusted proxy."""
        return bool(self.user_table()) or self.proxy is not None
