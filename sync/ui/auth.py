"""Signing in to the page: password users (argon2) or a trusted proxy's header, sessions, CSRF.

Sessions live in this process (a restart signs everyone out; behind a load balancer use sticky
sessions or the proxy header). The cookie holds only a random token: HttpOnly, SameSite=Strict,
and Secure when the request came over TLS (or ``ui.secure_cookie: always``). Every action form
carries the session's CSRF token, compared in constant time. Failed sign-ins are counted per
client address and per user name; past ``ui.sign_in_attempts`` in five minutes the next tries
are refused (429) until the window has passed.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sync.ui.settings import UiSettings, UiUser

__all__ = ["COOKIE", "Authenticator", "Session", "SignInLimiter"]

COOKIE = "closedloop_ui"
WINDOW_SECONDS = 300.0


@dataclass
class Session:
    """A signed-in person: name, role, CSRF token, expiry (monotonic seconds)."""

    user: str
    role: str
    csrf: str
    expires: float
    via_proxy: bool = False
    flash: str | None = None  # the outcome of the last action, shown once

    @property
    def operator(self) -> bool:
        """Whether this person may act (replay, discard, run now)."""
        return self.role == "operator"

    def csrf_ok(self, token: str | None) -> bool:
        """Whether ``token`` is this session's CSRF token (constant-time)."""
        return bool(token) and hmac.compare_digest(self.csrf.encode(), (token or "").encode())


@dataclass
class SignInLimiter:
    """Failed sign-ins per key (address, user name) within a sliding window."""

    limit: int
    window: float = WINDOW_SECONDS
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def blocked_for(self, *keys: str) -> float:
        """Seconds until any of ``keys`` may try again (0: may try now)."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                times = self._failures.get(key)
                if not times:
                    continue
                while times and times[0] <= now - self.window:
                    times.popleft()
                if len(times) >= self.limit:
                    wait = max(wait, times[0] + self.window - now)
        return wait

    def failed(self, *keys: str) -> None:
        """Count one failure for each of ``keys``."""
        now = self.clock()
        with self._lock:
            for key in keys:
                self._failures.setdefault(key, deque()).append(now)
            if len(self._failures) > 100_000:  # bounded memory under a spray of names
                self._failures.clear()


class Authenticator:
    """Checks passwords and proxy headers, and keeps the sessions of this process."""

    def __init__(self, settings: UiSettings, clock: Callable[[], float] = time.monotonic) -> None:
        from argon2 import PasswordHasher

        self.settings = settings
        self.users: dict[str, UiUser] = settings.user_table()
        self.clock = clock
        self.limiter = SignInLimiter(settings.sign_in_attempts, clock=clock)
        self._hasher = PasswordHasher()
        # Checked against when the name is unknown, so both cases take the same time.
        self._decoy = self._hasher.hash(secrets.token_hex(16))
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    @property
    def lifetime(self) -> float:
        """Seconds a session lasts."""
        return self.settings.session_hours * 3600

    def check_password(self, name: str, password: str) -> UiUser | None:
        """The user when ``password`` is theirs, else None."""
        from argon2.exceptions import Argon2Error, InvalidHashError

        user = self.users.get(name)
        try:
            self._hasher.verify(user.password_hash if user else self._decoy, password)
        except (Argon2Error, InvalidHashError):
            return None
        return user

    def open_session(self, user: str, role: str, *, via_proxy: bool = False) -> str:
        """A new session's token (what the cookie carries)."""
        token = secrets.token_urlsafe(32)
        session = Session(
            user, role, secrets.token_urlsafe(32), self.clock() + self.lifetime, via_proxy
        )
        with self._lock:
            now = self.clock()
            for old in [t for t, s in self._sessions.items() if s.expires <= now]:
                del self._sessions[old]
            self._sessions[token] = session
        return token

    def session(self, token: str | None) -> Session | None:
        """The live session of ``token``, if any."""
        if not token:
            return None
        with self._lock:
            found = self._sessions.get(token)
            if found is None:
                return None
            if found.expires <= self.clock():
                del self._sessions[token]
                return None
            return found

    def close_session(self, token: str | None) -> None:
        """Sign out."""
        if token:
            with self._lock:
                self._sessions.pop(token, None)

    def proxy_user(self, client: str | None, headers: dict[str, str]) -> tuple[str, str] | None:
        """(name, role) the trusted proxy vouches for, or None."""
        proxy = self.settings.proxy
        if proxy is None or not proxy.trusts(client):
            return None
        name = headers.get(proxy.header.lower(), "").strip()
        if not name or len(name) > 128:
            return None
        return name, ("operator" if name in proxy.operators else "viewer")
