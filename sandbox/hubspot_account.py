"""The emulated HubSpot portal as the app serves it: its data, tokens and rate-limit windows.

``HubSpotStore`` holds the portal's data (``hubspot_store.PortalData``) and clock, mints and
checks the OAuth app's tokens, accounts every call against the limits of the caller's app type
(the private app's rolling 10 s and daily limits, the OAuth app's 10 s limit, CRM search's
per-second limit) with the ``X-HubSpot-RateLimit-*`` headers, loads the world
(``hubspot_world``) and dumps its state. The HTTP side is ``sandbox.hubspot``.
"""

from __future__ import annotations

import threading
import time
import uuid
from bisect import bisect_right
from collections import Counter, deque
from typing import Any

from sandbox import credentials
from sandbox.hubspot_clock import StoreClock
from sandbox.hubspot_store import PortalData
from sandbox.hubspot_world import WorldSeeding
from sandbox.world import World

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "REFRESH_TOKEN",
    "TEN_SECONDS",
    "HubSpotStore",
    "is_oauth",
]

CLIENT_ID = "sandbox-hubspot-client"
CLIENT_SECRET = "sandbox-hubspot-secret"
REFRESH_TOKEN = "sandbox-refresh-token"
TEN_SECONDS = 10.0


def is_oauth(token: str) -> bool:
    """Whether ``token`` is an OAuth (public app) token: anything but the private app's."""
    return token != credentials.HUBSPOT_TOKEN


class HubSpotStore(WorldSeeding):
    """One emulated HubSpot portal: data, tokens, rate-limit windows and the store clock.

    Tests may lower ``rate_limit_max`` (the private app's calls per rolling 10 s, default 190),
    ``oauth_rate_limit_max`` (the OAuth app's, default 110), ``search_per_second`` (default 5)
    or ``daily_limit`` (the private app's, default 1,000,000) to reach the limits quickly, read
    ``refused`` (429 answers by policy name), and move ``clock`` to test windowed pulls on the
    modification time (contacts' ``lastmodifieddate``, the other objects' ``hs_lastmodifieddate``).
    """

    def __init__(self) -> None:
        self.clock = StoreClock()
        self.data = PortalData(self.clock)
        self.lock = self.data.lock
        self.rate_limit_max = 190
        self.oauth_rate_limit_max = 110
        self.search_per_second = 5
        self.daily_limit = 1_000_000
        self.token_lifetime_s = 1800
        self.refused: Counter[str] = Counter()
        self._tokens: dict[str, float] = {}
        self._windows: dict[str, deque[float]] = {}
        self._search_window: deque[float] = deque()
        self._daily = 0
        self._rate_lock = threading.Lock()
        # world ids -> HubSpot ids
        self.owner_ids: dict[str, str] = {}
        self.company_ids: dict[str, str] = {}
        self.contact_ids: dict[str, str] = {}
        self.deal_ids: dict[str, str] = {}

    def reset(self) -> None:
        """Empty the portal and forget minted tokens and rate-limit windows."""
        with self.lock:
            self.data.clear()
            self.owner_ids.clear()
            self.company_ids.clear()
            self.contact_ids.clear()
            self.deal_ids.clear()
        with self._rate_lock:
            self._tokens.clear()
            self._windows.clear()
            self._search_window.clear()
            self._daily = 0
            self.refused.clear()

    # ------------------------------------------------------------------- tokens
    def mint_token(self) -> str:
        """A new OAuth access token (what ``POST /oauth/v1/token`` hands out)."""
        token = f"sandbox-oauth-{uuid.uuid4().hex}"
        with self._rate_lock:
            self._tokens[token] = time.monotonic() + self.token_lifetime_s
        return token

    def revoke(self, token: str) -> None:
        """Expire a minted token; the fixed private-app token is never revoked."""
        with self._rate_lock:
            self._tokens.pop(token, None)

    def token_state(self, token: str) -> str:
        """``valid``, ``expired`` or ``invalid`` for a bearer token."""
        if token == credentials.HUBSPOT_TOKEN:
            return "valid"
        with self._rate_lock:
            expiry = self._tokens.get(token)
        if expiry is None:
            return "expired" if token.startswith("sandbox-oauth-") else "invalid"
        return "valid" if time.monotonic() < expiry else "expired"

    # --------------------------------------------------------------- rate limit
    def take_call(self, token: str, *, search: bool) -> tuple[str | None, dict[str, str]]:
        """Account one call: the breached policy (or None) and the rate-limit headers to send."""
        oauth = is_oauth(token)
        now = time.monotonic()
        with self._rate_lock:
            breached: str | None = None
            if not oauth and self._daily >= self.daily_limit:
                breached = "DAILY"
            if search:
                # Its own window per account, no slot of the 10-s one, and no headers at all.
                seconds = self._search_window
                while seconds and seconds[0] <= now - 1.0:
                    seconds.popleft()
                if breached is None and len(seconds) >= self.search_per_second:
                    breached = "SECONDLY"
                self._account(breached, oauth, seconds, now)
                return breached, {}
            window, limit = self._window(token, now)
            if breached is None and len(window) >= limit:
                breached = "TEN_SECONDLY_ROLLING"
            self._account(breached, oauth, window, now)
            return breached, self._headers(oauth, window, limit, now)

    def exhausted_headers(self, token: str) -> dict[str, str]:
        """The headers of a 10-s window ``token``'s app has just used up (an injected 429)."""
        now = time.monotonic()
        with self._rate_lock:
            window, limit = self._window(token, now)
            headers = self._headers(is_oauth(token), window, limit, now)
        headers["X-HubSpot-RateLimit-Remaining"] = "0"
        return headers

    def _window(self, token: str, now: float) -> tuple[deque[float], int]:
        """The 10-s window of ``token``'s app, pruned to ``now``, and that app's limit."""
        # One window per private app, and one per OAuth app install: its tokens share it.
        oauth = is_oauth(token)
        limit = self.oauth_rate_limit_max if oauth else self.rate_limit_max
        window = self._windows.setdefault(f"oauth:{CLIENT_ID}" if oauth else token, deque())
        while window and window[0] <= now - TEN_SECONDS:
            window.popleft()
        return window, limit

    def _headers(self, oauth: bool, window: deque[float], limit: int, now: float) -> dict[str, str]:
        """The ``X-HubSpot-RateLimit-*`` headers of an answer; ``Daily`` ones for private apps."""
        # The window is in time order: count its last second by bisection, not by a scan.
        last_second = len(window) - bisect_right(window, now - 1.0)
        secondly = max(1, limit // 10)
        headers = {
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(TEN_SECONDS * 1000)),
            "X-HubSpot-RateLimit-Max": str(limit),
            "X-HubSpot-RateLimit-Remaining": str(max(0, limit - len(window))),
            "X-HubSpot-RateLimit-Secondly": str(secondly),
            "X-HubSpot-RateLimit-Secondly-Remaining": str(max(0, secondly - last_second)),
        }
        if not oauth:
            headers["X-HubSpot-RateLimit-Daily"] = str(self.daily_limit)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(
                max(0, self.daily_limit - self._daily)
            )
        return headers

    def _account(self, breached: str | None, oauth: bool, window: deque[float], now: float) -> None:
        """Count an admitted call in its window and the private daily total, or the refusal."""
        if breached is not None:
            self.refused[breached] += 1
            return
        window.append(now)
        if not oauth:
            self._daily += 1  # assumed: searches count toward a private app's daily limit too

    # ------------------------------------------------------------------- world
    def load_world(self, world: World) -> None:
        """Replace the content with ``world``: owners, companies, contacts, deals, events."""
        self.reset()
        self.clock.rebase(world.now)
        with self.lock:
            self._load(world)

    # --------------------------------------------------------------------- dump
    def dump(self) -> dict[str, Any]:
        """JSON-able state: records per type, associations, lists, events and world id maps."""
        with self.lock:
            data = self.data
            objects = {
                object_type: {rid: dict(record.properties) for rid, record in records.items()}
                for object_type, records in data.objects.items()
            }
            associations = [
                {"from": f"{ft}:{fid}", "to": f"{tt}:{tid}", "types": sorted(types)}
                for (ft, fid, tt), targets in data.associations.items()
                for tid, types in targets.items()
            ]
            return {
                "objects": objects,
                "archived": {t: sorted(r) for t, r in data.archived.items() if r},
                "associations": associations,
                "custom_properties": {
                    t: sorted(n for n, d in props.items() if not d["hubspotDefined"])
                    for t, props in data.properties.items()
                },
                "owners": sorted(data.owners),
                "lists": {
                    lid: {**meta, "members": sorted(data.memberships[lid])}
                    for lid, meta in data.lists.items()
                },
                "timeline_events": list(data.timeline_events.values()),
                "behavioral_events": list(data.behavioral_events),
                "email_events": len(data.email_events),
                "forms": sorted(data.forms),
                "world_ids": {
                    "owners": dict(self.owner_ids),
                    "companies": dict(self.company_ids),
                    "contacts": dict(self.contact_ids),
                    "deals": dict(self.deal_ids),
                },
            }
