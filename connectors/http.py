"""The one httpx client factory: explicit timeouts, no proxy surprises, a closedloop User-Agent.

Every httpx-based connector builds its client here so that timeouts and connection limits are
set in one place. Tests pass a ``transport`` (``httpx.MockTransport``) or use respx; integration
tests point ``base_url`` at the sandbox. ``describe_transport_error`` turns an httpx failure
into a message that names the host and the failure but never a query string (which may carry
credentials).
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

__all__ = ["USER_AGENT", "describe_transport_error", "make_client", "make_timeout"]

USER_AGENT = "closedloop/0.1 (+httpx)"


def make_timeout(timeout_s: float, connect_s: float | None = None) -> httpx.Timeout:
    """A timeout of ``timeout_s`` per read/write/pool wait and ``connect_s`` (default 10 s max)."""
    return httpx.Timeout(
        timeout_s, connect=connect_s if connect_s is not None else min(10.0, timeout_s)
    )


def make_client(
    base_url: str,
    *,
    timeout_s: float = 30.0,
    connect_timeout_s: float | None = None,
    auth: httpx.Auth | None = None,
    headers: Mapping[str, str] | None = None,
    max_connections: int = 10,
    verify: bool | str = True,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """A synchronous client for one vendor base URL with closedloop's timeout and pool defaults.

    ``trust_env`` is off: proxy and CA variables of the environment must not silently redirect
    or re-trust a connector; configure them explicitly instead.
    """
    all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    all_headers.update(headers or {})
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        auth=auth,
        headers=all_headers,
        timeout=make_timeout(timeout_s, connect_timeout_s),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        verify=verify,
        transport=transport,
        trust_env=False,
        follow_redirects=False,
    )


UNREACHABLE_REMEDY = (
    "check the connection's URL setting and that this machine can reach it; for the local "
    "sandbox, is `closedloop sandbox serve` running?"
)


def unreachable(exc: BaseException, url: str) -> str:
    """What a failed request to ``url`` (scheme://host[:port], no path) says to a user: the
    error's kind, the host, and the remedy (TLS failures point at ``ca_bundle``)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    where = parts.netloc or url
    name = type(exc).__name__
    text = str(exc)
    if "SSL" in name or "CERTIFICATE" in text.upper():
        return (
            f"{name}: TLS with {where} failed (the server's certificate is not trusted): check "
            "ca_bundle (the local sandbox: the CA file `closedloop sandbox serve` wrote)"
        )
    if "Connect" in name and "Timeout" not in name:
        return f"{name}: cannot connect to {where} ({UNREACHABLE_REMEDY})"
    return f"{name} talking to {where} ({UNREACHABLE_REMEDY})"


def describe_transport_error(exc: httpx.HTTPError) -> str:
    """``"<ExceptionType> on <METHOD> <scheme://host/path>"``, without query strings or bodies."""
    try:
        request = exc.request
    except RuntimeError:
        return type(exc).__name__
    url = request.url.copy_with(query=None, fragment=None)
    return f"{type(exc).__name__} on {request.method} {url}"
