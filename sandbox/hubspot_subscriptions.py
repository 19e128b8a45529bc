"""HubSpot's communication preferences (email subscription types and statuses), v3 and v4.

Emulated (docs/vendor-behaviour.md; the HubSpot public API spec collection for paths and
shapes):

- subscription types (``definitions``): "Marketing Information" and "One to One" by default;
- per address and type a status, ``NOT_SPECIFIED`` until set, and a portal-wide opt-out of all
  email (``wideStatuses``);
- v3 ``subscribe`` refuses an address that unsubscribed from the type or from all email
  ("will not allow you to resubscribe contacts who have opted out"); v3 ``unsubscribe`` refuses
  an address already unsubscribed (assumed message);
- v4 batch read / write / unsubscribe-all / unsubscribe-all read, ``channel=EMAIL`` required
  where the spec requires it. v4 writes SUBSCRIBED even after an opt-out (HubSpot documents v4
  as able to resubscribe); an unsubscribe-all sets every type UNSUBSCRIBED too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from sandbox.hubspot_clock import iso_ms

__all__ = ["SubscriptionError", "Subscriptions"]

_STATES = ("SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED")


class SubscriptionError(Exception):
    """An error answer: HTTP status, category, message."""

    def __init__(self, status: int, category: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message


class Subscriptions:
    """The portal's subscription types and every address's statuses."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self.definitions: dict[int, dict[str, Any]] = {}
        # email -> subscription id -> (status, source, timestamp)
        self.statuses: dict[str, dict[int, tuple[str, str, str]]] = {}
        # email -> (UNSUBSCRIBED, timestamp) for the portal-wide opt-out of all email
        self.wide: dict[str, tuple[str, str]] = {}
        self.add_definition("Marketing Information", "Marketing offers and updates.")
        self.add_definition("One to One", "One to one emails.")

    # -- setup ---------------------------------------------------------------------------------

    def add_definition(self, name: str, description: str = "") -> int:
        """A subscription type; returns its id."""
        sub_id = 1000 + len(self.definitions) + 1
        stamp = iso_ms(self._now())
        self.definitions[sub_id] = {
            "id": str(sub_id), "name": name, "description": description,
            "isActive": True, "isDefault": sub_id == 1001, "isInternal": False,
            "purpose": "Marketing", "communicationMethod": "Email",
            "createdAt": stamp, "updatedAt": stamp,
        }  # fmt: skip
        return sub_id

    # -- reads ---------------------------------------------------------------------------------

    def status_of(self, email: str, sub_id: int) -> str:
        return self.statuses.get(email.lower(), {}).get(sub_id, ("NOT_SPECIFIED", "", ""))[0]

    def opted_out_of_all(self, email: str) -> bool:
        return email.lower() in self.wide

    def _public(self, email: str, sub_id: int) -> dict[str, Any]:
        state, source, stamp = self.statuses.get(email.lower(), {}).get(
            sub_id, ("NOT_SPECIFIED", "", iso_ms(self._now()))
        )
        return {
            "channel": "EMAIL", "source": source or "NOT_SPECIFIED", "status": state,
            "subscriberIdString": email, "subscriptionId": sub_id, "timestamp": stamp,
            "subscriptionName": self.definitions[sub_id]["name"],
        }  # fmt: skip

    def _set(self, email: str, sub_id: int, state: str, source: str) -> None:
        self.statuses.setdefault(email.lower(), {})[sub_id] = (
            state, source, iso_ms(self._now()),
        )  # fmt: skip

    def _definition(self, raw: Any) -> int:
        try:
            sub_id = int(raw)
        except (TypeError, ValueError):
            sub_id = -1
        if sub_id not in self.definitions:
            raise SubscriptionError(
                400, "VALIDATION_ERROR", f"Subscription {raw} does not exist in this portal."
            )
        return sub_id

    # -- v3 ------------------------------------------------------------------------------------

    def v3_definitions(self) -> dict[str, Any]:
        return {"subscriptionDefinitions": list(self.definitions.values())}

    def v3_status(self, email: str) -> dict[str, Any]:
        out = []
        for sub_id, definition in self.definitions.items():
            state = self.status_of(email, sub_id)
            out.append({
                "id": str(sub_id), "name": definition["name"],
                "description": definition["description"],
                "status": "SUBSCRIBED" if state == "SUBSCRIBED" else "NOT_SUBSCRIBED",
                "sourceOfStatus": "PORTAL_WIDE_STATUS" if self.opted_out_of_all(email)
                else "SUBSCRIPTION_STATUS",
            })  # fmt: skip
        return {"recipient": email, "subscriptionStatuses": out}

    def v3_change(self, body: Any, *, subscribe: bool) -> dict[str, Any]:
        if not isinstance(body, dict) or not body.get("emailAddress"):
            raise SubscriptionError(400, "VALIDATION_ERROR", "emailAddress is required.")
        email = str(body["emailAddress"]).strip()
        sub_id = self._definition(body.get("subscriptionId"))
        state = self.status_of(email, sub_id)
        if subscribe:
            if state == "UNSUBSCRIBED" or self.opted_out_of_all(email):
                # "will not allow you to resubscribe contacts who have opted out" (v3 guide).
                raise SubscriptionError(
                    400, "VALIDATION_ERROR",
                    f"{email} has opted out of email and cannot be resubscribed through this API.",
                )  # fmt: skip
            self._set(email, sub_id, "SUBSCRIBED", "API")
        else:
            if state == "UNSUBSCRIBED" or self.opted_out_of_all(email):
                raise SubscriptionError(
                    400, "VALIDATION_ERROR", f"{email} is already unsubscribed from {sub_id}."
                )
            self._set(email, sub_id, "UNSUBSCRIBED", "API")
        definition = self.definitions[sub_id]
        return {
            "id": str(sub_id), "name": definition["name"],
            "description": definition["description"],
            "status": "SUBSCRIBED" if subscribe else "NOT_SUBSCRIBED",
            "sourceOfStatus": "SUBSCRIPTION_STATUS",
        }  # fmt: skip

    # -- v4 ------------------------------------------------------------------------------------

    def v4_definitions(self) -> dict[str, Any]:
        return {"results": list(self.definitions.values())}

    def _batch(self, results: list[Any], errors: list[dict[str, Any]]) -> dict[str, Any]:
        stamp = iso_ms(self._now())
        body: dict[str, Any] = {
            "status": "COMPLETE", "results": results, "startedAt": stamp, "completedAt": stamp,
        }  # fmt: skip
        if errors:
            body["errors"] = errors
            body["numErrors"] = len(errors)
        return body

    @staticmethod
    def _inputs(body: Any) -> list[Any]:
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise SubscriptionError(400, "VALIDATION_ERROR", "inputs is required.")
        return list(body["inputs"])

    @classmethod
    def _addresses(cls, body: Any, errors: list[dict[str, Any]]) -> Iterator[str]:
        """The e-mail addresses of a batch's ``inputs``; one without an @ becomes an error."""
        for raw in cls._inputs(body):
            email = str(raw).strip()
            if "@" in email:
                yield email
            else:
                errors.append(cls._bad_address(email))

    @staticmethod
    def _bad_address(email: str) -> dict[str, Any]:
        # Assumed shape: a standard batch error naming the input.
        return {
            "status": "error", "category": "VALIDATION_ERROR",
            "message": f"{email} is not a valid email address.",
            "context": {"subscriberIdString": [email]},
        }  # fmt: skip

    def v4_read(self, body: Any) -> dict[str, Any]:
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for email in self._addresses(body, errors):
            statuses = [self._public(email, s) for s in self.definitions]
            results.append({"subscriberIdString": email, "statuses": statuses})
        return self._batch(results, errors)

    def v4_write(self, body: Any) -> dict[str, Any]:
        results, errors = [], []
        for item in self._inputs(body):
            if not isinstance(item, dict):
                raise SubscriptionError(400, "VALIDATION_ERROR", "Invalid input.")
            email = str(item.get("subscriberIdString") or "").strip()
            state = item.get("statusState")
            if item.get("channel") != "EMAIL" or state not in _STATES:
                raise SubscriptionError(
                    400, "VALIDATION_ERROR", "channel must be EMAIL and statusState one of "
                    + ", ".join(_STATES),
                )  # fmt: skip
            if "@" not in email:
                errors.append(self._bad_address(email))
                continue
            sub_id = self._definition(item.get("subscriptionId"))
            self._set(email, sub_id, str(state), "API")
            if state == "SUBSCRIBED":
                self.wide.pop(email.lower(), None)
            results.append(self._public(email, sub_id))
        return self._batch(results, errors)

    def v4_unsubscribe_all(self, body: Any) -> dict[str, Any]:
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for email in self._addresses(body, errors):
            self.wide[email.lower()] = ("UNSUBSCRIBED", iso_ms(self._now()))
            for sub_id in self.definitions:
                self._set(email, sub_id, "UNSUBSCRIBED", "API")
            statuses = [self._public(email, s) for s in self.definitions]
            results.append({"subscriberIdString": email, "statuses": statuses})
        return self._batch(results, errors)

    def v4_unsubscribe_all_read(self, body: Any) -> dict[str, Any]:
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for email in self._addresses(body, errors):
            wide = self.wide.get(email.lower())
            status, stamp = wide if wide else ("NOT_SPECIFIED", iso_ms(self._now()))
            results.append({
                "subscriberIdString": email,
                "wideStatuses": [{
                    "channel": "EMAIL", "status": status, "subscriberIdString": email,
                    "timestamp": stamp, "wideStatusType": "PORTAL_WIDE",
                }],
            })  # fmt: skip
        return self._batch(results, errors)
