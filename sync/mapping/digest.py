"""Digests: many low-intent touches of one kind rolled up per person per window into one touch.

A rep does not want forty "Viewed page" tasks; they want one "Viewed 40 pages on 3 May" with
the list, while a pricing-page view or a form fill still lands at once. ``digest_touches`` is
pure and deterministic: the digest's key is built from source, kind, person and window only,
so re-running over the same (or more) touches upserts the same CRM record instead of adding
another. The digest touch carries ``attributes``: ``count``, ``first_at``, ``last_at``,
``window``, ``assets`` (up to ``max_items``, time order), ``more`` (assets not listed), and
``raw["touch_keys"]`` (every touch rolled in).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from connectors.base import Touch, TouchKind

__all__ = ["DIGEST_MARK", "DigestPlan", "digest_touches", "is_digest"]

DIGEST_MARK = "closedloop_digest"


@dataclass(frozen=True, slots=True)
class DigestPlan:
    """How one kind is digested: window, listed items, and which assets skip the digest."""

    window: str
    max_items: int
    immediate: Callable[[str | None], bool]


def is_digest(touch: Touch) -> bool:
    """Whether ``touch`` is a digest built here (not a touch from a source)."""
    return touch.raw.get(DIGEST_MARK) is True


def _person(touch: Touch) -> str:
    if touch.email:
        return touch.email.strip().lower()
    return f"ref:{touch.person_ref}" if touch.person_ref else "unknown"


def _window(touch: Touch, window: str, zone: tzinfo) -> str:
    local = touch.occurred_at.astimezone(zone)
    if window == "hour":
        return local.strftime("%Y-%m-%dT%H")
    return local.date().isoformat()


def digest_touches(
    touches: Iterable[Touch], plans: Mapping[TouchKind, DigestPlan], zone: tzinfo
) -> list[Touch]:
    """Touches with digest kinds rolled up; sorted by (time, key) so output order is stable."""
    passed: list[Touch] = []
    groups: dict[tuple[str, TouchKind, str, str], list[Touch]] = {}
    for touch in touches:
        plan = plans.get(touch.kind)
        if plan is None or is_digest(touch) or plan.immediate(touch.asset):
            passed.append(touch)
            continue
        group = (touch.source, touch.kind, _person(touch), _window(touch, plan.window, zone))
        groups.setdefault(group, []).append(touch)
    for (source, kind, person, window), members in groups.items():
        passed.append(_roll_up(source, kind, person, window, members, plans[kind].max_items))
    passed.sort(key=lambda t: (t.occurred_at, t.key))
    return passed


def _roll_up(  # noqa: PLR0917 - one private call site passing the group key apart
    source: str, kind: TouchKind, person: str, window: str, members: list[Touch], max_items: int
) -> Touch:
    members = sorted({t.key: t for t in members}.values(), key=lambda t: (t.occurred_at, t.key))
    first, last = members[0], members[-1]
    assets: list[str] = []
    for touch in members:
        if touch.asset and touch.asset not in assets:
            assets.append(touch.asset)
    digest_id = hashlib.sha256(f"{source}|{kind}|{person}".encode()).hexdigest()[:16]
    campaigns = sorted({t.campaign for t in members if t.campaign})
    attributes: dict[str, Any] = {
        "count": len(members),
        "first_at": first.occurred_at.isoformat(),
        "last_at": last.occurred_at.isoformat(),
        "window": window,
        "assets": assets[:max_items],
        "more": max(0, len(assets) - max_items),
        "campaigns": campaigns,
    }
    return Touch(
        source=source,
        source_id=f"digest-{kind.value}-{window}-{digest_id}",
        kind=kind,
        occurred_at=first.occurred_at,
        email=next((t.email for t in members if t.email), None),
        person_ref=next((t.person_ref for t in members if t.person_ref), None),
        campaign=campaigns[0] if len(campaigns) == 1 else None,
        channel=first.channel,
        asset=assets[0] if len(assets) == 1 else None,
        attributes=attributes,
        raw={DIGEST_MARK: True, "touch_keys": [t.key for t in members]},
    )


def window_start(value: datetime, window: str, zone: tzinfo) -> str:
    """The label of the window ``value`` falls in (for tests and previews)."""
    local = value.astimezone(zone)
    return local.strftime("%Y-%m-%dT%H") if window == "hour" else local.date().isoformat()
