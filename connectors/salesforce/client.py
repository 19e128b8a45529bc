"""One Salesforce org session on simple-salesforce: auth refresh, API budget, error translation.

``SalesforceClient`` owns the ``requests.Session`` (``verify`` = the CA bundle or the system
store, ``trust_env=False`` so REQUESTS_CA_BUNDLE and proxies from the environment never win) and
the ``simple_salesforce.Salesforce`` built on it from a token we fetched ourselves
(``connectors.salesforce.auth``). Every call goes through ``run``, which (under
``retry_policy``, the client's ``connectors.retry.RetryPolicy``):

- refuses to start when the org's usage (``Sforce-Limit-Info``, read by a response hook on
  every answer) has reached this connection's ``daily_budget_share``: ``RateLimited`` saying
  when to resume;
- on 401 INVALID_SESSION_ID logs in again, rebuilds the client and repeats the call once (only
  for methods that can log in; ``session`` auth is an ``AuthError`` with a remedy);
- repeats calls that are safe to repeat after a transient failure (5xx, timeouts, resets);
- translates every simple-salesforce / requests exception with one table, ``ERROR_ACTIONS``.

``api_calls`` counts the calls this client made to ``/services/data`` (logins are not API calls).
"""

from __future__ import annotations

import csv
import enum
import io
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceOperationError

from connectors.errors import (
    AuthError,
    ClosedloopError,
    ConfigError,
    Fatal,
    RateLimited,
    Transient,
)
from connectors.http import unreachable
from connectors.retry import RetryPolicy
from connectors.salesforce.auth import can_relogin, login, remedy_for
from connectors.salesforce.settings import SalesforceSettings

__all__ = ["ERROR_ACTIONS", "Action", "SalesforceClient", "error_code", "error_message"]

T = TypeVar("T")

_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
_DAY_S = 86_400.0
# Without usage figures, wait this long after REQUEST_LIMIT_EXCEEDED.
_DEFAULT_LIMIT_WAIT_S = 3_600.0
_VENDOR_ERRORS = (SalesforceError, SalesforceOperationError, requests.RequestException)
# Composite allows 25 subrequests, of which at most 5 sObject Collections or queries.
MAX_COMPOSITE_HEAVY = 5


class Action(enum.Enum):
    """What the client does after a failed call."""

    REFRESH = "log in again, then repeat the call once"
    RATE_LIMITED = "RateLimited: stop until the rolling daily allocation frees up"
    RETRY = "Transient: repeat if the call is safe to repeat, else report"
    AUTH = "AuthError: stop the pipeline"
    CONFIG = "ConfigError: the org lacks an object, field or permission we were told to use"
    FATAL = "Fatal: unknown failure"


# (HTTP status, Salesforce errorCode or "*") -> action. First match of the exact code, then "*".
ERROR_ACTIONS: dict[tuple[int, str], Action] = {
    (401, "INVALID_SESSION_ID"): Action.REFRESH,
    (401, "*"): Action.AUTH,
    (403, "REQUEST_LIMIT_EXCEEDED"): Action.RATE_LIMITED,
    (403, "API_DISABLED_FOR_ORG"): Action.AUTH,
    (403, "API_CURRENTLY_DISABLED"): Action.AUTH,
    (403, "*"): Action.AUTH,
    (400, "INVALID_FIELD"): Action.CONFIG,
    (400, "INVALID_TYPE"): Action.CONFIG,
    (400, "NOT_FOUND"): Action.CONFIG,
    (400, "*"): Action.FATAL,
    (404, "*"): Action.CONFIG,
    (408, "*"): Action.RETRY,
    (500, "*"): Action.RETRY,
    (502, "*"): Action.RETRY,
    (503, "*"): Action.RETRY,
    (504, "*"): Action.RETRY,
}


def error_code(content: Any) -> str:
    """The first errorCode (or statusCode) in a Salesforce error body, else ""."""
    first = content[0] if isinstance(content, list) and content else content
    if isinstance(first, Mapping):
        return str(first.get("errorCode") or first.get("statusCode") or "")
    return ""


def error_message(content: Any) -> str:
    """The first message of a Salesforce error body (or the raw text, shortened)."""
    first = content[0] if isinstance(content, list) and content else content
    if isinstance(first, Mapping):
        return str(first.get("message") or "")
    return str(content or "")[:300]


class _Failed(Exception):
    """A failed attempt: the action its failure calls for and the closedloop error it ends in."""

    def __init__(self, action: Action, error: ClosedloopError) -> None:
        super().__init__(str(error))
        self.action = action
        self.error = error


def _action(status: int, code: str) -> Action:
    found = ERROR_ACTIONS.get((status, code)) or ERROR_ACTIONS.get((status, "*"))
    if found is not None:
        return found
    return Action.RETRY if status >= 500 else Action.FATAL


class SalesforceClient:
    """A logged-in Salesforce org: counted, budgeted and translated calls (see module doc)."""

    def __init__(
        self, settings: SalesforceSettings, *, sleep: Callable[[float], None] = time.sleep
    ):
        self.settings = settings
        self.api_calls = 0
        self.logins = 0
        # (used, max) of the org's rolling 24 h allocation, from the newest Sforce-Limit-Info,
        # and when it was read (the window frees calls as time passes).
        self.usage: tuple[int, int] | None = None
        self.usage_at = 0.0
        self._sleep = sleep
        self._sf: Salesforce | None = None
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = str(settings.ca_bundle) if settings.ca_bundle else True
        self.session.hooks["response"].append(self._on_response)

    # ------------------------------------------------------------------ session

    def _on_response(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        if "/services/data" in response.url:
            self.api_calls += 1
        header = response.headers.get("Sforce-Limit-Info")
        if header:
            match = _USAGE.search(header)
            if match:
                self.usage = (int(match.group(1)), int(match.group(2)))
                self.usage_at = time.monotonic()

    @property
    def sf(self) -> Salesforce:
        """The simple-salesforce client, logging in first if needed."""
        if self._sf is None:
            done = login(self.settings, self.session)
            self.logins += 1
            self._sf = Salesforce(
                instance_url=done.instance_url,
                session_id=done.access_token,
                session=self.session,
                version=self.settings.api_version,
            )
        return self._sf

    @property
    def base_path(self) -> str:
        """The versioned REST path prefix, ``/services/data/v59.0``."""
        return f"/services/data/v{self.settings.api_version}"

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.session.close()

    def wait(self, seconds: float) -> None:
        """Pause before trying again (the sleep given to the client: tests pass a fake)."""
        self._sleep(seconds)

    # ------------------------------------------------------------------ budget

    def allowed_calls(self) -> int | None:
        """How many calls of the org's allocation this connection may reach (None: unknown)."""
        if self.usage is None:
            return None
        return int(self.usage[1] * self.settings.daily_budget_share)

    def _resume_after(self) -> float:
        if self.usage is None or self.usage[0] <= 0:
            return _DEFAULT_LIMIT_WAIT_S
        used, _total = self.usage
        allowed = self.allowed_calls() or 0
        # The allocation is a rolling 24 h window; assuming calls were spread evenly over it,
        # usage drops by used/24h per second.
        wait = (used - allowed + 1) * _DAY_S / used
        return min(_DAY_S, max(60.0, wait))

    def _rate_limited(self, why: str) -> RateLimited:
        retry_after = self._resume_after()
        resume_at = datetime.now(UTC) + timedelta(seconds=retry_after)
        usage = ""
        if self.usage is not None:
            usage = (
                f" (org usage {self.usage[0]:,} of {self.usage[1]:,} daily calls; this "
                f"connection's share is {self.settings.daily_budget_share:.0%})"
            )
        return RateLimited(
            f"Salesforce {why}{usage}; resume at about {resume_at:%Y-%m-%d %H:%M} UTC, or raise "
            "daily_budget_share if the org can spare more",
            retry_after=retry_after,
            resume_at=resume_at,
        )

    def current_usage(self) -> tuple[int, int] | None:
        """The org's (used, max) as last read, or None once the rolling window may have freed
        calls since (past the resume time it implied): the next call reads it again."""
        if self.usage is None:
            return None
        allowed = self.allowed_calls() or 0
        if self.usage[0] >= allowed and time.monotonic() >= self.usage_at + self._resume_after():
            return None
        return self.usage

    def check_budget(self) -> None:
        """RateLimited when the org's usage has reached this connection's share."""
        allowed = self.allowed_calls()
        usage = self.current_usage()
        if allowed is not None and usage is not None and usage[0] >= allowed:
            raise self._rate_limited("API budget reached")

    # ------------------------------------------------------------------ calls

    def run(
        self,
        fn: Callable[[Salesforce], T],
        *,
        what: str,
        repeatable: bool = True,
        budgeted: bool = True,
    ) -> T:
        """Call ``fn`` with the client under the budget, refresh and retry policy
        (``budgeted=False``: a diagnostic call that must run even over the budget)."""

        def attempt() -> T:
            sf = self.sf  # logs in (again, after a refresh); a failed login is not repeated
            try:
                return fn(sf)
            except _VENDOR_ERRORS as exc:
                action, error = self.translate(exc, what)
            # Raised outside the except block: the vendor exception (and the response its
            # traceback holds, with an open socket) must not ride along as __context__.
            raise _Failed(action, error)

        policy = self.retry_policy(
            repeatable=repeatable, before_attempt=self.check_budget if budgeted else None
        )
        try:
            return policy.call(attempt)
        except _Failed as failed:
            raise failed.error from None

    def retry_policy(
        self, *, repeatable: bool, before_attempt: Callable[[], None] | None = None
    ) -> RetryPolicy:
        """How a call is repeated: a transient failure with backoff (``repeatable`` calls only),
        an expired session once after logging in again (when the auth method can)."""
        return RetryPolicy(
            attempts=self.settings.max_attempts if repeatable else 1,
            backoff_s=self.settings.retry_backoff_s,
            transient=lambda exc: isinstance(exc, _Failed) and exc.action is Action.RETRY,
            stale=lambda exc: isinstance(exc, _Failed) and exc.action is Action.REFRESH,
            refresh=self._forget_session if can_relogin(self.settings) else None,
            before_attempt=before_attempt,
            sleep=self._sleep,
        )

    def _forget_session(self) -> None:
        self._sf = None

    def translate(self, exc: Exception, what: str) -> tuple[Action, ClosedloopError]:
        """The action and closedloop error for a vendor exception raised while doing ``what``."""
        if isinstance(exc, requests.RequestException):
            return Action.RETRY, Transient(
                f"Salesforce {what}: {unreachable(exc, self.settings.instance_url)}"
            )
        if isinstance(exc, SalesforceOperationError) and not isinstance(exc, SalesforceError):
            return Action.RETRY, Transient(f"Salesforce {what}: bulk job failed: {exc}")
        assert isinstance(exc, SalesforceError)
        code = error_code(exc.content)
        message = error_message(exc.content)
        action = _action(exc.status, code)
        detail = f"Salesforce {what}: HTTP {exc.status} {code or ''} {message}".rstrip()
        if action is Action.REFRESH:
            remedy = remedy_for(self.settings)
            return action, AuthError(f"{detail}; {remedy}")
        if action is Action.AUTH:
            remedy = (
                remedy_for(self.settings)
                if exc.status == 401
                else "give the integration user API Enabled and access to the objects"
            )
            return action, AuthError(f"{detail}; {remedy}")
        if action is Action.RATE_LIMITED:
            return action, self._rate_limited(
                "daily request limit exceeded (REQUEST_LIMIT_EXCEEDED)"
            )
        if action is Action.RETRY:
            return action, Transient(detail)
        if action is Action.CONFIG:
            return action, ConfigError(detail)
        return action, Fatal(detail)

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        repeatable: bool = True,
        budgeted: bool = True,
    ) -> Any:
        """One REST call below the versioned prefix (``sobjects/Task/describe``); parsed JSON."""
        what = f"{method} {path.split('?', 1)[0]}"
        return self.run(
            lambda sf: sf.restful(
                path,
                params=dict(params) if params else None,
                method=method,
                json=json,
                timeout=self.settings.timeout_s,
            ),
            what=what,
            repeatable=repeatable,
            budgeted=budgeted,
        )

    def versions(self, *, budgeted: bool = True) -> list[str]:
        """The API versions the org serves (``GET /services/data``)."""

        def fetch(sf: Salesforce) -> Any:
            url = f"https://{sf.sf_instance}/services/data/"
            return sf._call_salesforce("GET", url, name="versions", timeout=self.settings.timeout_s)

        response = self.run(fetch, what="GET /services/data", budgeted=budgeted)
        return [str(v.get("version")) for v in response.json() if isinstance(v, dict)]

    def composite(
        self, subrequests: Sequence[Mapping[str, Any]], *, repeatable: bool = True
    ) -> list[dict[str, Any]]:
        """One Composite request (allOrNone false); the subresponses in request order."""
        body = {"allOrNone": False, "compositeRequest": list(subrequests)}
        answer = self.call("POST", "composite", json=body, repeatable=repeatable)
        responses = answer.get("compositeResponse") if isinstance(answer, dict) else None
        if not isinstance(responses, list) or len(responses) != len(subrequests):
            raise Fatal("Salesforce composite: the answer does not match the request")
        return cast(list[dict[str, Any]], responses)

    def subrequest(
        self,
        method: str,
        path: str,
        ref: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """A composite subrequest on ``path`` below the versioned prefix (``headers``: its own
        request headers, e.g. ``Sforce-Auto-Assign``)."""
        sub: dict[str, Any] = {
            "method": method,
            "url": f"{self.base_path}/{path}",
            "referenceId": ref,
        }
        if body is not None:
            sub["body"] = body
        if headers:
            sub["httpHeaders"] = dict(headers)
        return sub

    def relative(self, url: str) -> str:
        """A ``/services/data/vNN.0/...`` URL (nextRecordsUrl) as a path below the prefix."""
        path = urlsplit(url).path
        marker = "/services/data/"
        tail = path.split(marker, 1)[1] if marker in path else path
        return tail.split("/", 1)[1] if tail.startswith("v") and "/" in tail else tail

    def query_pages(self, soql: str, *, include_deleted: bool) -> Iterator[dict[str, Any]]:
        """Every page of a SOQL query (queryAll when ``include_deleted``), following the cursor."""
        endpoint = "queryAll" if include_deleted else "query"
        page = self.call("GET", endpoint, params={"q": soql})
        while True:
            yield page
            if page.get("done", True) or not page.get("nextRecordsUrl"):
                return
            page = self.call("GET", self.relative(str(page["nextRecordsUrl"])))

    def bulk_query(
        self, sobject: str, soql: str, *, include_deleted: bool
    ) -> Iterator[list[dict[str, str]]]:
        """Rows of a Bulk API 2.0 query job, one list per result page (values are CSV text).

        An expired session mid-job is refreshed once and the job started again from scratch;
        callers must tolerate rows seen twice (pulls do: records are keyed).
        """
        policy = self.retry_policy(repeatable=False, before_attempt=self.check_budget)
        try:
            for attempt in policy.retrying():
                with attempt:
                    handler = getattr(self.sf.bulk2, sobject)
                    method = handler.query_all if include_deleted else handler.query
                    try:
                        for text in method(soql, wait=self.settings.bulk_poll_interval_s):
                            yield list(csv.DictReader(io.StringIO(text)))
                    except _VENDOR_ERRORS as exc:
                        action, error = self.translate(exc, f"bulk query of {sobject}")
                    else:
                        return
                    raise _Failed(action, error)
        except _Failed as failed:
            raise failed.error from None
