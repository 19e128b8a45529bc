"""The HubSpot caller: one SDK client, one urllib3 pool, the limits, the error table, retries.

hubspot-api-client builds a new ``ApiClient`` (and urllib3 pool) on every attribute access, so
``HubSpotClient`` creates each API object it needs once, through the SDK's ``api_factory`` hook,
and gives all of them one shared ``_ObservingPool``. That pool is the single place every request
passes through, whatever SDK package sent it:

- it reads the ``X-HubSpot-RateLimit-*`` headers of every response (429s included) and feeds them
  to the limiters: the burst window adopts the portal's ``Max``, an exhausted ``Remaining`` holds
  every caller until the window frees, ``Daily``/``Daily-Remaining`` size and spend the daily
  budget share (CRM search answers carry none of these headers);
- it applies closedloop's timeouts (the SDK sets none) and turns urllib3's own retries off, so
  a connection failure reaches ``classify`` raw and is retried only here, only when safe.

HubSpot's limits depend on the app type
(https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details):

- a private app may make 100 (Free/Starter), 190 (Professional/Enterprise) or 250 (API limit
  increase) calls per rolling 10 s, and the account 250,000 to 1,000,000 a day: closedloop keeps
  to ``daily_budget_share`` of that day (``DailyQuota``, sized by the ``Daily`` header);
- a public (OAuth) app may make 110 calls per 10 s per account it is installed in and has no
  daily limit: HubSpot sends it no ``Daily`` headers, and closedloop keeps no daily budget;
- CRM search has its own limit of 5 requests per second and takes no slot of the 10-s window:
  a search waits only for the search window (``search_per_second``).

``call`` runs one SDK method under the limits: the daily budget share of a private app
(``RateLimited`` once spent), the burst window or, for CRM search, the search window, then the
call with ``_preload_content=False`` (raw JSON, no model deserialization). On failure it follows
``connectors.hubspot.errors``: 429 waits for the interval and repeats (a 429 guarantees nothing
was applied, so even a batch create may repeat), 401 refreshes an OAuth token and repeats once,
transient failures repeat with backoff only when the caller says the call is idempotent
(``connectors.retry.RetryPolicy``). The marketing endpoints the SDK has no typed API for go
through ``request``, which uses the same SDK ``ApiClient.call_api`` (and so the same pool, auth
and limits), not a second HTTP stack.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import urllib3
from hubspot import HubSpot

from connectors.errors import AuthError, RateLimited, Transient
from connectors.hubspot.errors import Action, Failure, classify, to_error
from connectors.hubspot.settings import HubSpotSettings, OAuthAuth
from connectors.ratelimit import Clock, DailyQuota, RollingWindowLimiter, SystemClock
from connectors.retry import RepeatNow, RetryPolicy

__all__ = ["USER_AGENT", "CallError", "HubSpotClient"]

USER_AGENT = "closedloop/0.1 (+hubspot-api-client)"
# Before the first response tells a private app the account's daily limit, assume the smallest
# (Free/Starter): https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details
_DEFAULT_DAILY_LIMIT = 250_000
# Refresh an OAuth token this long before HubSpot says it expires.
_TOKEN_MARGIN_S = 60.0


class CallError(Exception):
    """A classified failure the caller asked to handle itself (``raw_failures=True``)."""

    def __init__(self, failure: Failure, error: Exception) -> None:
        super().__init__(str(error))
        self.failure = failure
        self.error = error


class _ObservingPool(urllib3.PoolManager):
    """A urllib3 pool that reports every response's headers to ``observer``."""

    def __init__(
        self,
        observer: Callable[[Mapping[str, str]], None],
        timeout: urllib3.Timeout,
        maxsize: int,
    ) -> None:
        super().__init__(num_pools=2, maxsize=maxsize, retries=False, timeout=timeout)
        self._observer = observer
        self._default_timeout = timeout

    def urlopen(  # type: ignore[override]
        self,
        method: str,
        url: str,
        redirect: bool = True,  # noqa: ARG002 - the API never redirects; never follow one
        **kw: Any,
    ) -> urllib3.BaseHTTPResponse:
        if kw.get("timeout") is None:
            kw["timeout"] = self._default_timeout
        kw["retries"] = False
        # Read bodies at once so connections go back to the pool even on error answers.
        kw["preload_content"] = True
        response = super().urlopen(method, url, redirect=False, **kw)
        self._observer(response.headers)
        return response


class HubSpotClient:
    """One HubSpot portal's API; ``call`` returns the decoded JSON body of a successful call."""

    def __init__(self, settings: HubSpotSettings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.window = RollingWindowLimiter(settings.burst_limit_per_10s, 10.0, self.clock)
        self.search_window = RollingWindowLimiter(settings.search_per_second, 1.0, self.clock)
        # Only private apps have a daily limit; OAuth apps have none (see the module docstring).
        self.quota: DailyQuota | None = (
            None
            if isinstance(settings.auth, OAuthAuth)
            else DailyQuota(
                max(1, int(_DEFAULT_DAILY_LIMIT * settings.daily_budget_share)),
                ZoneInfo(settings.portal_timezone),
                self.clock,
                name="closedloop's share of the HubSpot daily API limit",
            )
        )
        # (used today, daily limit) of the account from the newest Daily headers, and when.
        self.daily_usage: tuple[int, int] | None = None
        self.daily_usage_at: datetime | None = None
        self.calls = 0
        self.calls_by: Counter[str] = Counter()
        self.rate_waits = 0
        self._lock = threading.Lock()
        timeout = urllib3.Timeout(connect=min(10.0, settings.timeout_s), read=settings.timeout_s)
        self._pool = _ObservingPool(self._observe, timeout, maxsize=4)
        self._configs: list[Any] = []
        self._token_expires_at: float | None = None
        auth = settings.auth
        self._token: str | None = (
            None if isinstance(auth, OAuthAuth) else auth.access_token.get_secret_value()
        )
        self.sdk = HubSpot(access_token=self._token, host=settings.host, api_factory=self._factory)
        self._apis: dict[str, Any] = {}

    # -- SDK wiring ---------------------------------------------------------------------------

    def _factory(self, package: Any, api_name: str, _config: Mapping[str, Any]) -> Any:
        configuration = package.Configuration()
        configuration.host = self.settings.host
        configuration.access_token = self._token
        api_client = package.ApiClient(configuration=configuration)
        api_client.user_agent = USER_AGENT
        api_client.rest_client.pool_manager.clear()
        api_client.rest_client.pool_manager = self._pool
        with self._lock:
            self._configs.append(configuration)
        return getattr(package, api_name)(api_client=api_client)

    def api(self, name: str) -> Any:
        """The SDK API object ``name`` (e.g. ``objects_batch``), created on first use only."""
        found = self._apis.get(name)
        if found is None:
            builders: dict[str, Callable[[], Any]] = {
                "objects_batch": lambda: self.sdk.crm.objects.batch_api,
                "objects_search": lambda: self.sdk.crm.objects.search_api,
                "properties": lambda: self.sdk.crm.properties.core_api,
                "owners": lambda: self.sdk.crm.owners.owners_api,
                "associations": lambda: self.sdk.crm.associations.v4.batch_api,
                "list_memberships": lambda: self.sdk.crm.lists.memberships_api,
                "timeline_events": lambda: self.sdk.crm.timeline.events_api,
                "behavioral_events": lambda: self.sdk.events.send.batch_api,
                "tokens": lambda: self.sdk.oauth.tokens_api,
            }
            found = builders[name]()
            self._apis[name] = found
        return found

    def close(self) -> None:
        """Close the connection pool."""
        self._pool.clear()

    # -- rate-limit headers -------------------------------------------------------------------

    def _observe(self, headers: Mapping[str, str]) -> None:
        burst = _int_header(headers, "X-HubSpot-RateLimit-Max")
        if burst is not None and burst > 0:
            self.window.calls = min(self.settings.burst_limit_per_10s, burst)
        remaining = _int_header(headers, "X-HubSpot-RateLimit-Remaining")
        if remaining is not None and remaining <= 0:
            # HubSpot counts the 10-s window per private app, or per OAuth app per account it is
            # installed in: only other processes using the same app (another closedloop run, a
            # script with the same token) spend it beside us. Wait until our oldest call leaves.
            self.window.hold(self.window.time_until_free())
        if self.quota is None:
            return
        daily = _int_header(headers, "X-HubSpot-RateLimit-Daily")
        if daily is not None and daily > 0:
            self.quota.limit = max(1, int(daily * self.settings.daily_budget_share))
        daily_left = _int_header(headers, "X-HubSpot-RateLimit-Daily-Remaining")
        if daily is not None and daily > 0 and daily_left is not None:
            self.daily_usage = (max(0, daily - daily_left), daily)
            self.daily_usage_at = self.clock.now()
        if daily_left is not None and daily_left <= 0:
            self.quota.exhaust()

    # -- auth ---------------------------------------------------------------------------------

    @property
    def uses_oauth(self) -> bool:
        """Whether the connection authenticates as a public (OAuth) app."""
        return isinstance(self.settings.auth, OAuthAuth)

    def _set_token(self, token: str) -> None:
        self._token = token
        with self._lock:
            for configuration in self._configs:
                configuration.access_token = token

    def refresh_token(self) -> None:
        """Exchange the refresh token for a new access token (OAuth apps only)."""
        auth = self.settings.auth
        if not isinstance(auth, OAuthAuth):
            return
        tokens = self.api("tokens")
        self.calls += 1
        self.calls_by["oauth token"] += 1
        try:
            response = tokens.create(
                grant_type="refresh_token",
                client_id=auth.client_id,
                client_secret=auth.client_secret.get_secret_value(),
                refresh_token=auth.refresh_token.get_secret_value(),
                _preload_content=False,
            )
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            if failure.action is Action.RETRY:
                raise to_error(failure, "OAuth token refresh") from None
            raise AuthError(
                f"HubSpot refused the OAuth refresh token: {failure.category}: {failure.message} "
                "(re-authorise the app and update client_id, client_secret and refresh_token)"
            ) from None
        body = _decode(response, "OAuth token refresh")
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError("HubSpot's OAuth token answer carried no access_token")
        expires = body.get("expires_in")
        self._token_expires_at = (
            self.clock.monotonic() + float(expires) - _TOKEN_MARGIN_S
            if isinstance(expires, int | float)
            else None
        )
        self._set_token(token)

    def _ensure_token(self) -> None:
        if not self.uses_oauth:
            return
        expired = (
            self._token_expires_at is not None and self.clock.monotonic() >= self._token_expires_at
        )
        if self._token is None or expired:
            self.refresh_token()

    # -- calls --------------------------------------------------------------------------------

    def call(
        self,
        what: str,
        fn: Callable[..., Any],
        *args: Any,
        idempotent: bool,
        search: bool = False,
        raw_failures: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Run SDK method ``fn`` under the limits and return its JSON body.

        ``idempotent`` allows repeating it after a transient failure; ``raw_failures`` raises
        ``CallError`` (with the classified failure) instead of the closedloop error, for callers
        that recover themselves (batch create after an unknown outcome).
        """
        rate_waits = 0

        def prepare() -> None:
            self._ensure_token()
            self._admit(what, search)

        def attempt() -> Any:
            nonlocal rate_waits
            try:
                return fn(*args, _preload_content=False, **kwargs)
            except Exception as exc:
                failure = classify(exc)
                if failure is None:
                    raise
            if failure.action is not Action.WAIT:
                raise CallError(failure, to_error(failure, what))
            if failure.policy == "DAILY":
                if self.quota is None:
                    raise to_error(failure, what)
                self.quota.exhaust()
                raise self.quota.rate_limited()
            rate_waits += 1
            self.rate_waits += 1
            if rate_waits > self.settings.max_rate_waits:
                raise RateLimited(
                    f"HubSpot {what} was still rate limited after "
                    f"{self.settings.max_rate_waits} waits; another process using the "
                    "same app (another closedloop run, or a script with this app's "
                    "token) may be spending its 10-second limit: stop it or lower "
                    "burst_limit_per_10s",
                    retry_after=failure.retry_after or 10.0,
                )
            self._wait(failure, search)
            raise RepeatNow

        def repeatable(exc: BaseException) -> bool:
            # A transient failure that HubSpot may have applied repeats only when idempotent.
            return (
                isinstance(exc, CallError)
                and exc.failure.action is Action.RETRY
                and (idempotent or not exc.failure.applied_unknown)
            )

        policy = RetryPolicy(
            attempts=self.settings.max_attempts,
            backoff_s=0.5,
            backoff_max_s=30.0,
            transient=repeatable,
            stale=lambda exc: isinstance(exc, CallError) and exc.failure.action is Action.REFRESH,
            refresh=self.refresh_token if self.uses_oauth else None,
            refresh_is_attempt=True,
            before_attempt=prepare,
            sleep=self.clock.sleep,
        )
        try:
            response = policy.call(attempt)
        except CallError as exc:
            if raw_failures:
                raise
            raise exc.error from None
        return _decode(response, what)

    def _admit(self, what: str, search: bool) -> None:
        if self.quota is not None:
            self.quota.spend()
        # Search has its own per-second limit and no slot in the 10-second window.
        (self.search_window if search else self.window).acquire()
        with self._lock:
            self.calls += 1
            self.calls_by[what.split(" [", 1)[0]] += 1

    def _wait(self, failure: Failure, search: bool) -> None:
        if failure.policy == "SECONDLY" or search:
            self.search_window.hold(failure.retry_after or 1.0)
            return
        # Our own count may be low when other processes use the same app (its window is per app,
        # not per portal): hold every caller until the oldest call we know of leaves the window
        # (a whole interval if none).
        interval = failure.retry_after or 10.0
        self.window.hold(min(interval, self.window.time_until_free()))

    def request(
        self,
        what: str,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, Any]] = (),
        idempotent: bool = True,
        body: Any = None,
    ) -> dict[str, Any]:
        """An endpoint without a typed SDK API, through the SDK's generic ``call_api``
        (``body``: a JSON request body)."""
        api_client = self.api("objects_batch").api_client
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"

        def send(**kwargs: Any) -> Any:
            return api_client.call_api(
                path,
                method,
                {},
                list(query),
                dict(headers),
                body=body,
                response_types_map={},
                auth_settings=["oauth2"],
                _return_http_data_only=True,
                **kwargs,
            )

        return self.call(what, send, idempotent=idempotent)

    def __enter__(self) -> HubSpotClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _decode(response: Any, what: str) -> dict[str, Any]:
    data = getattr(response, "data", b"")
    if not data:
        return {}
    try:
        body = json.loads(data)
    except ValueError:
        raise Transient(f"HubSpot answered {what} with a body that is not JSON") from None
    if isinstance(body, list):
        return {"results": body}
    if not isinstance(body, dict):
        raise Transient(f"HubSpot answered {what} with unexpected JSON")
    return body
