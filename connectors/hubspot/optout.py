"""Email opt-outs through HubSpot's communication preferences (v4), and the owner check.

``opt_out(client, people, subscription)`` (mapping ``opt_out``):

- ``subscription: all``: reads the contacts' opt-out-of-all status
  (``POST /communication-preferences/v4/statuses/batch/unsubscribe-all/read?channel=EMAIL``)
  and opts out of all email those not already out
  (``POST .../v4/statuses/batch/unsubscribe-all?channel=EMAIL``);
- a subscription type id: reads the contacts' statuses (``.../v4/statuses/batch/read``) and
  writes ``UNSUBSCRIBED`` for that subscription where it is not already
  (``.../v4/statuses/batch/write``).

Both in batches of ``BATCH`` e-mail addresses. closedloop only ever writes UNSUBSCRIBED: nobody
is opted (back) in, and a contact HubSpot already has unsubscribed gets no write (``changed``
False). The v3 API (``/communication-preferences/v3/subscribe``) refuses to resubscribe a
contact who opted out; v4 would allow it, which is one more reason never to send SUBSCRIBED.

``check_owner`` reads ``GET /crm/v3/owners/{ownerId}`` (HubSpot answers 404 for an unknown or
archived owner); ``check_subscription`` reads the subscription definitions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from connectors.base import CheckResult, OptOutResult, Person
from connectors.errors import ClosedloopError
from connectors.hubspot.client import HubSpotClient

__all__ = ["BATCH", "check_owner", "check_subscription", "opt_out"]

# E-mail addresses per batch call (HubSpot documents no lower limit for these endpoints; the
# CRM batch size is used: assumed, docs/vendor-behaviour.md).
BATCH = 100
_BASE = "/communication-preferences/v4/statuses"
_EMAIL = [("channel", "EMAIL")]


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


def _refusals(answer: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """E-mail -> (code, message) of the errors of a batch answer that name their inputs."""
    out: dict[str, tuple[str, str]] = {}
    for error in answer.get("errors") or []:
        if not isinstance(error, dict):
            continue
        context = error.get("context") or {}
        ids = context.get("subscriberIdString") or context.get("ids") or []
        code = str(error.get("category") or error.get("status") or "REJECTED")
        for email in ids if isinstance(ids, list) else [ids]:
            out[str(email).lower()] = (code, str(error.get("message") or ""))
    return out


def opt_out(
    client: HubSpotClient, people: Sequence[Person], subscription: str
) -> list[OptOutResult]:
    """Unsubscribe the people's e-mail addresses (all email, or one subscription type)."""
    emails = list(dict.fromkeys((p.email or "").strip().lower() for p in people if p.email))
    emails = [e for e in emails if e]
    every = subscription == "all"
    already: set[str] = set()
    for chunk in _chunks(emails):
        if every:
            answer = client.request(
                "subscriptions unsubscribe-all read", "POST",
                f"{_BASE}/batch/unsubscribe-all/read", query=_EMAIL, body={"inputs": list(chunk)},
            )  # fmt: skip
            for result in answer.get("results") or []:
                if any(s.get("status") == "UNSUBSCRIBED" for s in result.get("wideStatuses") or []):
                    already.add(str(result.get("subscriberIdString", "")).lower())
        else:
            answer = client.request(
                "subscriptions batch read", "POST", f"{_BASE}/batch/read", query=_EMAIL,
                body={"inputs": list(chunk)},
            )  # fmt: skip
            for result in answer.get("results") or []:
                for status in result.get("statuses") or []:
                    if (
                        str(status.get("subscriptionId")) == subscription
                        and status.get("status") == "UNSUBSCRIBED"
                    ):
                        already.add(str(result.get("subscriberIdString", "")).lower())
    todo = [e for e in emails if e not in already]
    results = {e: OptOutResult(e, True, changed=False) for e in already}
    for chunk in _chunks(todo):
        if every:
            answer = client.request(
                "subscriptions unsubscribe-all", "POST", f"{_BASE}/batch/unsubscribe-all",
                query=_EMAIL, body={"inputs": list(chunk)},
            )  # fmt: skip
        else:
            inputs = [
                {"subscriberIdString": e, "subscriptionId": int(subscription),
                 "statusState": "UNSUBSCRIBED", "channel": "EMAIL"}
                for e in chunk
            ]  # fmt: skip
            answer = client.request(
                "subscriptions batch write", "POST", f"{_BASE}/batch/write",
                body={"inputs": inputs},
            )  # fmt: skip
        done = {str(r.get("subscriberIdString", "")).lower() for r in answer.get("results") or []}
        refused = _refusals(answer)
        for email in chunk:
            if email in refused:
                code, message = refused[email]
                results[email] = OptOutResult(email, False, error_code=code, error_message=message)
            elif email in done:
                results[email] = OptOutResult(email, True, changed=True)
            else:
                results[email] = OptOutResult(
                    email, False, error_code="NO_RESULT",
                    error_message="HubSpot returned no status for this address",
                )  # fmt: skip
    return [results[e] for e in emails if e in results]


def check_owner(client: HubSpotClient, owner_id: str) -> CheckResult:
    """Whether ``owner_id`` is a live owner of the portal."""
    name = "contact owner"
    try:
        owner = client.request("owners get", "GET", f"/crm/v3/owners/{owner_id}")
    except ClosedloopError as exc:
        return CheckResult(name, False, f"owner {owner_id}: {exc}",
                           "set people.owner.hubspot_owner_id to an owner id from Settings > "
                           "Users (or GET /crm/v3/owners)")  # fmt: skip
    who = " ".join(str(owner.get(k) or "") for k in ("firstName", "lastName")).strip()
    return CheckResult(name, True, f"owner {owner_id} ({who or owner.get('email')})")


def check_subscription(client: HubSpotClient, subscription: str) -> CheckResult:
    """Whether the opt-out's subscription type exists ("all" needs none)."""
    name = "opt-out subscription"
    if subscription == "all":
        return CheckResult(name, True, "opt-outs unsubscribe from all email")
    try:
        answer = client.request(
            "subscriptions definitions", "GET", "/communication-preferences/v4/definitions"
        )
    except ClosedloopError as exc:
        return CheckResult(name, False, str(exc), "grant the communication_preferences scopes")
    known = {str(d.get("id")): d.get("name") for d in answer.get("results") or []}
    if subscription not in known:
        listed = ", ".join(f"{k} ({v})" for k, v in sorted(known.items())) or "none"
        return CheckResult(name, False, f"no subscription type {subscription} (found: {listed})",
                           "set opt_out.subscription to one of them, or all")  # fmt: skip
    return CheckResult(name, True, f"subscription {subscription} ({known[subscription]})")
