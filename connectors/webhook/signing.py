"""Request signatures: HMAC-SHA256 over ``"<timestamp>.<raw body>"`` with the sender's secret.

A sender sets two headers::

    X-Closedloop-Timestamp: 1714557600            (unix seconds, when it signed)
    X-Closedloop-Signature: sha256=<hex digest>   (HMAC-SHA256(secret, b"1714557600." + body))

The timestamp is inside the signed text, so an old request cannot be re-dated; a request more
than the tolerance away from our clock is refused. Inside the window an exact re-delivery is
recognised by ``ReplayCache`` and answered like the first delivery without committing again.
Several signatures may be sent comma-separated (while a sender rotates its secret).
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from dataclasses import dataclass

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "CachedAnswer",
    "ReplayCache",
    "SignatureError",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "X-Closedloop-Signature"
TIMESTAMP_HEADER = "X-Closedloop-Timestamp"
_PREFIX = "sha256="


class SignatureError(ValueError):
    """The request is not authentic or not fresh; ``code`` says which check failed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = message


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Closedloop-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return _PREFIX + digest.hexdigest()


def verify(
    secret: str,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    *,
    now: float,
    tolerance: int,
) -> str:
    """Check freshness and signature; returns the matching signature, or raises SignatureError."""
    if not timestamp_header:
        raise SignatureError("missing_timestamp", f"the {TIMESTAMP_HEADER} header is missing")
    if not signature_header:
        raise SignatureError("missing_signature", f"the {SIGNATURE_HEADER} header is missing")
    text = timestamp_header.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise SignatureError(
            "bad_timestamp", f"{TIMESTAMP_HEADER} must be unix seconds (an integer)"
        )
    timestamp = int(text)
    if abs(now - timestamp) > tolerance:
        raise SignatureError(
            "stale_timestamp",
            f"{TIMESTAMP_HEADER} is more than {tolerance} s away from the server's clock",
        )
    expected = sign(secret, timestamp, body)
    for part in signature_header.split(","):
        candidate = part.strip()
        if not candidate.startswith(_PREFIX):
            continue
        if hmac.compare_digest(candidate.encode("ascii", "replace"), expected.encode("ascii")):
            return expected
    raise SignatureError("bad_signature", "the signature does not match the body and timestamp")


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """The answer given to a committed delivery, repeated for its exact re-deliveries."""

    status: int
    body: bytes
    expires_at: float


class ReplayCache:
    """Recently committed signatures (per source) and their answers, bounded in size and time.

    Only used from the event loop, so it needs no lock. Entries live as long as the timestamp
    tolerance: after that the timestamp check refuses the request anyway.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[tuple[str, str], CachedAnswer] = OrderedDict()
        self._max = max_entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, source: str, signature: str, now: float) -> CachedAnswer | None:
        """The answer already given to this delivery, if it is still inside its window."""
        answer = self._entries.get((source, signature))
        if answer is None:
            return None
        if answer.expires_at < now:
            del self._entries[(source, signature)]
            return None
        return answer

    def put(self, source: str, signature: str, answer: CachedAnswer, now: float) -> None:
        """Remember ``answer``; drops expired entries, then the oldest ones beyond the bound."""
        self._entries[(source, signature)] = answer
        self._entries.move_to_end((source, signature))
        while self._entries:
            oldest_key, oldest = next(iter(self._entries.items()))
            if oldest.expires_at >= now and len(self._entries) <= self._max:
                break
            del self._entries[oldest_key]
