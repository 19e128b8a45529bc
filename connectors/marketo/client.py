"""The Marketo REST caller: limiters, the error table, retries; nothing vendor-typed escapes it.

Every API call goes through ``MarketoClient.call``, which

1. charges the daily quota (``RateLimited`` with the reset time once it is spent),
2. waits for a slot in the 100-calls-per-20-s window and one of the 10 concurrency slots,
3. sends the request (``MarketoAuth`` adds the token, and renews it and repeats the call on
   each 601/602, up to ``MAX_RENEWALS`` times; then the call fails with an AuthError),
4. translates the answer with ``connectors.marketo.errors``: 606 and 615 wait and repeat,
   607 marks the quota spent until midnight US Central, 5xx/timeouts are ``Transient`` and
   retried with exponential backoff (``connectors.retry``) when the call is safe to repeat.

Which calls are safe to repeat: GETs; adding leads to or removing them from a static list
(POST/DELETE, but idempotent in Marketo: a lead already in the list stays there once, a lead not
in it stays out); cancelling a bulk export job. Creating and enqueueing a bulk export job are
not repeated here: ``connectors.marketo.exports`` repeats them only after finding out what the
lost attempt did.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

import httpx
from tenacity import Retrying

from connectors.errors import AuthError, Fatal, RateLimited, Transient
from connectors.http import UNREACHABLE_REMEDY, describe_transport_error, make_client
from connectors.marketo.auth import MarketoAuth, error_codes
from connectors.marketo.errors import Action, Rule, exception_for, rule_for_code, rule_for_status
from connectors.marketo.settings import MarketoSettings
from connectors.ratelimit import (
    Clock,
    ConcurrencyLimiter,
    DailyQuota,
    RollingWindowLimiter,
    SystemClock,
)
from connectors.retry import RetryPolicy

__all__ = ["MARKETO_TZ", "MarketoClient"]

# Marketo resets the daily quota at midnight US Central time (CST/CDT).
MARKETO_TZ = ZoneInfo("America/Chicago")
# Error codes of a refused access token (expired, invalid): renew it and ask again.
_TOKEN_REFUSED = frozenset({"601", "602"})
# Seconds to wait after 615 before trying again: one of the other calls will have ended.
_CONCURRENCY_BACKOFF_S = 2.0


class MarketoClient:
    """One Marketo instance's API: ``call`` returns the decoded JSON body of a successful call."""

    def __init__(
        self,
        settings: MarketoSettings,
        *,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.window = RollingWindowLimiter(settings.calls_per_20s, 20.0, self.clock)
        self.concurrency = ConcurrencyLimiter(settings.max_concurrency)
        self.quota = DailyQuota(
            settings.daily_quota, MARKETO_TZ, self.clock, name="Marketo daily API quota"
        )
        self.auth = MarketoAuth(
            settings.client_id,
            settings.client_secret.get_secret_value(),
            clock=self.clock,
            before_retry=self._charge,
        )
        self.calls = 0
        self._http = make_client(
            settings.base_url,
            timeout_s=settings.timeout_s,
            auth=self.auth,
            max_connections=settings.max_concurrency,
            transport=transport,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def refresh_token(self) -> None:
        """Fetch a new access token now (identity calls do not count against the limits)."""
        request = self.auth.token_request(self._http.build_request("GET", "/"))
        try:
            response = self._http.send(request, auth=None)
        except httpx.HTTPError as exc:
            raise Transient(
                f"Marketo identity call failed: {describe_transport_error(exc)} "
                f"({UNREACHABLE_REMEDY})"
            ) from None
        self.auth.accept(response)

    def _charge(self) -> None:
        self.quota.spend()
        self.window.acquire()
        self.calls += 1

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        retry_safe: bool | None = None,
    ) -> dict[str, Any]:
        """Send one API call under the limits and return its JSON body (``success`` true).

        ``retry_safe`` (default: only for GET) allows repeating the call after a transient error.
        """
        safe = method.upper() == "GET" if retry_safe is None else retry_safe
        retrying = self.retrying(attempts=None if safe else 1)
        result: dict[str, Any] = retrying(self._call_with_waits, method, path, params, json_body)
        return result

    def retrying(self, attempts: int | None = None) -> Retrying:
        """Repeats on Transient with exponential backoff (1 s to 30 s), ``max_attempts`` tries."""
        policy = RetryPolicy(
            attempts=attempts or self.settings.max_attempts,
            backoff_s=1.0,
            backoff_min_s=1.0,
            backoff_max_s=30.0,
            sleep=self.clock.sleep,
        )
        return policy.retrying()

    def download_to(self, path: str, out: BinaryIO) -> None:
        """GET a file (bulk export) into ``out`` chunk by chunk, never whole in memory.

        A transfer that breaks off is retried from the bytes ``out`` already holds (HTTP
        ``Range: bytes=N-``, which Marketo's file endpoints support for resumable retrieval), so a
        large file is not fetched twice; a server that answers the whole file instead (200, not
        206) is written from the start again.
        """
        out.seek(0)
        out.truncate()
        self.retrying()(self._download_once, path, out)

    def _download_once(self, path: str, out: BinaryIO) -> None:
        for _ in range(self.auth.max_renewals + 1):
            token = self.auth.valid_token()
            if token is None:
                self.refresh_token()
                token = self.auth.valid_token() or ""
            if self._stream_into(path, out, token):
                return
            self.auth.refused(token)  # 601/602: renew the token and ask again
        raise AuthError(
            f"Marketo GET {path} failed: the access token was refused "
            f"{self.auth.max_renewals + 1} times in a row"
        )

    def _stream_into(self, path: str, out: BinaryIO, token: str) -> bool:
        """One streamed GET of ``path`` appended to ``out``; False when the token was refused."""
        have = out.tell()
        headers = {"Authorization": f"Bearer {token}"}
        if have:
            headers["Range"] = f"bytes={have}-"
        self._charge()
        with (
            self.concurrency.slot(),
            _transport_errors("download"),
            self._http.stream("GET", path, headers=headers, auth=None) as response,
        ):
            if have and response.status_code == 416:
                return True  # nothing after ``have``: the checksum judges the file
            rule = rule_for_status(response.status_code)
            if rule is not None:
                raise exception_for(rule, f"GET {path}", f"HTTP {response.status_code}")
            if response.headers.get("content-type", "").startswith("application/json"):
                response.read()
                if _TOKEN_REFUSED & set(error_codes(response)):
                    return False
                self._check_body(self._decode(response, path), f"GET {path}")
            if have and response.status_code != 206:
                out.seek(0)
                out.truncate()
            # As the network delivers them (a fixed chunk size would buffer, and lose,
            # the bytes of a transfer that breaks off before the chunk is full).
            for chunk in response.iter_bytes():
                out.write(chunk)
        return True

    def _send(
        self, method: str, path: str, params: Mapping[str, Any] | None, json_body: Any
    ) -> httpx.Response:
        self._charge()
        with self.concurrency.slot(), _transport_errors("call"):
            return self._http.request(
                method, path, params=dict(params) if params else None, json=json_body
            )

    @staticmethod
    def _decode(response: httpx.Response, path: str) -> dict[str, Any]:
        try:
            body = json.loads(response.content)
        except ValueError:
            raise Transient(
                f"Marketo answered {path} with a non-JSON body (HTTP {response.status_code})"
            ) from None
        if not isinstance(body, dict):
            raise Fatal(f"Marketo answered {path} with unexpected JSON (not an object)")
        return body

    def _call_with_waits(
        self, method: str, path: str, params: Mapping[str, Any] | None, json_body: Any
    ) -> dict[str, Any]:
        what = f"{method.upper()} {path}"
        for _ in range(self.settings.max_rate_waits + 1):
            response = self._send(method, path, params, json_body)
            status_rule = rule_for_status(response.status_code)
            if status_rule is not None:
                if self._wait(status_rule):
                    continue
                raise exception_for(status_rule, what, f"HTTP {response.status_code}")
            body = self._decode(response, path)
            rule = self._check_body(body, what)
            if rule is None:
                return body
            if not self._wait(rule):  # pragma: no cover - _check_body raised for the rest
                break
        raise RateLimited(
            f"Marketo {what} was still rate limited after {self.settings.max_rate_waits} waits; "
            "other integrations may be using this instance's budget",
            retry_after=20.0,
        )

    def _check_body(self, body: dict[str, Any], what: str) -> Rule | None:
        """None for a successful body; the waiting rule for 606/615; raises for the rest."""
        if body.get("success", False):
            return None
        errors = body.get("errors") or []
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        code = str(first.get("code", "?"))
        message = str(first.get("message", "no error message"))
        rule = rule_for_code(code)
        if rule.action is Action.REFRESH_TOKEN:
            raise AuthError(
                f"Marketo {what} failed: {code} {message}, still after renewing the access "
                f"token {self.auth.max_renewals} times for this call ({rule.remedy})"
            )
        if rule.action in (Action.WAIT_WINDOW, Action.WAIT_CONCURRENCY):
            return rule
        if rule.action is Action.EMPTY:
            body["result"] = []
            return None
        if rule.action is Action.DAILY_QUOTA:
            self.quota.exhaust()
            raise self.quota.rate_limited()
        if rule.action is Action.BUSY and "quota" in message.lower():
            # 1029 "Export daily quota exceeded": nothing exports again before midnight Central.
            wait = (self.quota.resets_at() - self.clock.now()).total_seconds()
            raise RateLimited(
                f"Marketo {what} failed: {code} {message} (the 500 MB daily bulk export "
                "allocation is spent until midnight US Central)",
                retry_after=max(1.0, wait),
            )
        raise exception_for(rule, what, f"{code} {message}")

    def _wait(self, rule: Rule) -> bool:
        """Wait as ``rule`` says and return True, or return False when it is not a waiting rule."""
        if rule.action is Action.WAIT_WINDOW:
            # Our own count may be low when other integrations share the instance: hold every
            # caller until the oldest call we know of leaves the window (a full window if none).
            self.window.hold(self.window.time_until_free())
            return True
        if rule.action is Action.WAIT_CONCURRENCY:
            self.clock.sleep(_CONCURRENCY_BACKOFF_S)
            return True
        return False

    def __enter__(self) -> MarketoClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextmanager
def _transport_errors(what: str) -> Iterator[None]:
    """httpx's timeouts and connection failures as ``Transient``, said the way users read them
    (``what``: "call" or "download")."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise Transient(f"Marketo {what} timed out: {describe_transport_error(exc)}") from None
    except httpx.HTTPError as exc:
        raise Transient(
            f"Marketo {what} failed: {describe_transport_error(exc)} ({UNREACHABLE_REMEDY})"
        ) from None
