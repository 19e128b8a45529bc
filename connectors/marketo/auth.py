"""Marketo OAuth client credentials as an httpx auth flow: token reuse and refresh on 601/602.

The flow fetches a token from ``/identity/oauth/token`` when it has none (or it is about to
expire), sends the call with ``Authorization: Bearer``, and whenever Marketo answers 601
(invalid) or 602 (expired) it renews the token and repeats the call, up to ``max_renewals``
times for one call; after that the 601/602 answer goes back to the client, which fails the call
with an AuthError saying how often the token was renewed. A 601/602 call did nothing, so
repeating it is always safe. Identity calls do not count against Marketo's API limits, so they
bypass the limiters; each repeated API call does count, so ``before_retry`` lets the client
charge it to its limiters.

Marketo hands out the current token, with its remaining life, until that token has expired
(https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/authentication): a
renewal in a token's last seconds may get back the very token just refused. The flow then waits
out that remaining life (at most ``_EXPIRY_MARGIN_S``) and asks again, instead of spending its
renewals on a dying token.

The client secret travels in the token request only (as Marketo's identity API requires) and
never appears in an error message.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Generator
from typing import Any

import httpx

from connectors.errors import AuthError, Transient
from connectors.ratelimit import Clock, SystemClock

__all__ = ["MAX_RENEWALS", "TOKEN_PATH", "MarketoAuth", "error_codes"]

TOKEN_PATH = "/identity/oauth/token"  # noqa: S105 - a URL path, not a secret
# Renew this long before Marketo's stated expiry, so a call never leaves with a dying token.
_EXPIRY_MARGIN_S = 60.0
# Token renewals one call may make on 601/602 before it fails (each repeats the call once).
MAX_RENEWALS = 5
_TOKEN_CODES = frozenset({"601", "602"})


def error_codes(response: httpx.Response) -> list[str]:
    """The Marketo error codes in a JSON response body (empty for success or non-JSON bodies)."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return []
    if not isinstance(body, dict) or body.get("success", True):
        return []
    errors = body.get("errors") or []
    return [str(e.get("code")) for e in errors if isinstance(e, dict)]


class MarketoAuth(httpx.Auth):
    """Client-credentials auth for one Marketo instance; thread-safe, one token for all calls."""

    requires_response_body = True

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        clock: Clock | None = None,
        before_retry: Callable[[], None] | None = None,
        max_renewals: int = MAX_RENEWALS,
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock: Clock = clock or SystemClock()
        self._before_retry = before_retry
        self.max_renewals = max_renewals
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._stated_expiry = 0.0  # when Marketo said the token dies (no safety margin)
        self.token_requests = 0

    def _current(self) -> str | None:
        with self._lock:
            if self._token and self._clock.monotonic() < self._expires_at:
                return self._token
            return None

    def _forget(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None

    def valid_token(self) -> str | None:
        """The token a call may use now, or None: for a streamed download, which cannot go
        through ``auth_flow`` (the flow reads every answer whole to look for 601/602)."""
        return self._current()

    def refused(self, token: str) -> None:
        """Drop ``token`` after Marketo refused it (601/602) on a call made outside the flow."""
        self._forget(token)

    def token_request(self, request: httpx.Request) -> httpx.Request:
        """The identity call for the instance ``request`` goes to."""
        with self._lock:
            self.token_requests += 1
        url = request.url.copy_with(path=TOKEN_PATH, query=None, fragment=None)
        return httpx.Request(
            "GET",
            url,
            params={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            },
            headers={"Accept": "application/json"},
        )

    def accept(self, response: httpx.Response) -> str:
        """Keep the token of an identity answer; AuthError/Transient when there is none."""
        status = response.status_code
        if status >= 500:
            raise Transient(f"Marketo identity service answered HTTP {status}")
        try:
            body: Any = json.loads(response.content)
        except ValueError:
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        if status != 200 or not isinstance(token, str) or not token:
            reason = ""
            if isinstance(body, dict) and isinstance(body.get("error"), str):
                reason = f" ({body['error']})"
            raise AuthError(
                f"Marketo refused the client credentials: HTTP {status}{reason}; check "
                "client_id and client_secret of the API-only user (Admin > LaunchPoint)"
            )
        expires_in = body.get("expires_in", 3600)
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
        with self._lock:
            now = self._clock.monotonic()
            self._token = token
            self._stated_expiry = now + max(0.0, lifetime)
            self._expires_at = now + max(0.0, lifetime - min(_EXPIRY_MARGIN_S, lifetime / 2))
        return token

    def _seconds_left(self) -> float:
        with self._lock:
            return max(0.0, self._stated_expiry - self._clock.monotonic())

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Attach a valid token; on 601/602 renew it and repeat the call (``max_renewals``)."""
        token = self._current()
        if token is None:
            token = self.accept((yield self.token_request(request)))
        for renewal in range(self.max_renewals + 1):
            request.headers["Authorization"] = f"Bearer {token}"
            response = yield request
            if renewal == self.max_renewals or not _TOKEN_CODES & set(error_codes(response)):
                return
            self._forget(token)
            fresh = self._current()  # another thread may have renewed it meanwhile
            if fresh is None:
                fresh = self.accept((yield self.token_request(request)))
                left = self._seconds_left()
                if fresh == token and left <= _EXPIRY_MARGIN_S:
                    # Marketo gave back the token it just refused, in its last seconds.
                    self._clock.sleep(left + 1.0)
                    self._forget(fresh)
                    fresh = self.accept((yield self.token_request(request)))
            token = fresh
            if self._before_retry is not None:
                self._before_retry()
