"""One call to the Salesforce emulator's REST API, as its handlers see it: ``Call`` and ``Reply``.

A handler (``Handler``) is a plain function from a ``Call`` (a real HTTP request or a composite
subrequest, after the version prefix) to a ``Reply``; it runs under the store lock and raises
``ApiError`` or ``DmlError`` for Salesforce's error answers. The helpers here are the ones every
group of handlers shares: the org's sObject by name, 404 NOT_FOUND, a DML error as a reply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from sandbox.core import Faults
from sandbox.salesforce_schema import ObjectDef
from sandbox.salesforce_store import SalesforceStore
from sandbox.salesforce_values import ApiError, DmlError

__all__ = [
    "API",
    "JSON_TYPE",
    "Call",
    "Handler",
    "Reply",
    "dml_reply",
    "get_sobject",
    "not_found",
]

API = "salesforce"
JSON_TYPE = "application/json;charset=UTF-8"


@dataclass
class Call:
    """One REST call (a real HTTP request or a composite subrequest) after the version prefix."""

    store: SalesforceStore
    method: str
    parts: list[str]
    params: dict[str, str]
    headers: Mapping[str, str]
    body: bytes
    version: str
    # A composite subrequest's body, already parsed (saves a JSON round trip per subrequest).
    parsed: Any = None
    # The sandbox's injected faults (record-level kinds are drawn per saved record).
    faults: Faults | None = None

    @property
    def base(self) -> str:
        """The versioned path prefix, ``/services/data/v59.0``."""
        return f"/services/data/v{self.version}"

    def json(self) -> Any:
        """The JSON body; malformed JSON is JSON_PARSER_ERROR, as Salesforce answers."""
        if self.parsed is not None:
            return self.parsed
        if not self.body:
            return None
        try:
            return orjson.loads(self.body)
        except ValueError as exc:
            raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from None


@dataclass
class Reply:
    """A handler's answer: status, JSON-able body (or text), extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None
    content_type: str = JSON_TYPE


Handler = Callable[[Call], Reply]


def not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def get_sobject(call: Call, name: str) -> ObjectDef:
    """The sObject ``name`` of this org (its custom fields included), or 404 NOT_FOUND."""
    obj = call.store.object_def(name)
    if obj is None:
        raise not_found()
    return obj


def dml_reply(exc: DmlError) -> Reply:
    err = exc.as_api_error()
    return Reply(err.status, err.errors)
