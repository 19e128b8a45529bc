"""The sync log of delivering: the Deliverer's ``sync_log`` entries for a prepared batch (people
matched, records refused before the push, records the key audit found) and for a pushed batch
(one per touch, with the payload sent and the CRM's answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from connectors.base import DeliveryResult
from sync.pipelines.rows import _PEOPLE_CACHE_MAX, _email
from sync.synclog import LogEntry

if TYPE_CHECKING:
    from sync.pipelines.context import RunContext
    from sync.pipelines.deliveries import Prepared, _Batch

__all__ = ["DeliveryLog"]


class DeliveryLog:
    """The Deliverer's sync-log steps (a mixin: ``Deliverer`` sets what it reads)."""

    ctx: RunContext
    sink: str
    # Emails whose person this run has logged as matched (once per run, not per batch).
    _matched: set[str]

    def _step(
        self,
        operation: str,
        touch_key: str | None,
        email: str | None,
        *,
        crm_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
        answer: str | None = None,
    ) -> LogEntry:
        return LogEntry(
            pipeline=self.ctx.name, crm=self.sink, operation=operation, touch_key=touch_key,
            email=email, crm_id=crm_id, payload=payload, answer=answer, run_id=self.ctx.run_id,
        )  # fmt: skip

    def _prepare_log(self, work: _Batch, prepared: Prepared) -> list[LogEntry]:
        """The sync log of a prepared batch: people matched (once per run), records filtered
        out or refused before the push, records the key audit found in the CRM."""
        entries = list(prepared.log)
        emails = {_email(p.touch) for p in work.batch if p.touch.key not in work.rejected}
        if len(self._matched) >= _PEOPLE_CACHE_MAX:
            self._matched.clear()
        for email in sorted((emails & work.people.keys()) - self._matched):
            self._matched.add(email)
            person = work.people[email]
            how = "created" if email in work.created else "found"
            entries.append(self._step(
                "match", None, email, crm_id=person.external_id or None,
                answer=f"{how} {person.kind.value} {person.external_id}",
            ))  # fmt: skip
        for _tid, rejection, stage in work.rejects:
            address = rejection.payload.get("email")
            entries.append(self._step(
                "refuse", rejection.key, address if isinstance(address, str) else None,
                answer=f"{stage}: {rejection.code}: {rejection.reason}",
            ))  # fmt: skip
        for key, crm_id in prepared.found.items():
            entries.extend(
                self._step("skip", touch_key, email, crm_id=crm_id,
                           answer=f"{self.sink} already holds this record; not written again")
                for touch_key, email in prepared.sources.get(key, [])
            )  # fmt: skip
        return entries

    def _push_log(
        self,
        prepared: Prepared,
        by_key: Mapping[str, DeliveryResult],
        member_later: Mapping[str, str],
    ) -> list[LogEntry]:
        """The sync log of a pushed batch: one row per touch, with the payload sent and the
        CRM's answer."""
        entries: list[LogEntry] = []
        for rendered in prepared.rendered:
            result = by_key.get(rendered.key)
            crm_id: str | None = None
            if result is None:
                operation, answer = "refuse", f"{self.sink} returned no result; will retry"
            elif result.ok:
                created = rendered.crm_id is None if result.created is None else result.created
                operation = "create" if created else "update"
                crm_id = result.crm_id
                answer = f"ok: {operation}d {rendered.target} {crm_id or ''}".rstrip()
                if rendered.key in member_later:
                    answer += f"; {member_later[rendered.key]}"
            else:
                operation = "refuse"
                answer = f"{result.error_code or 'REJECTED'}: {result.error_message or ''}".strip()
                if result.retryable:
                    answer += "; will retry"
            payload = {"key": rendered.key, "target": rendered.target,
                       "payload": dict(rendered.payload)}  # fmt: skip
            entries.extend(
                self._step(operation, touch_key, email, crm_id=crm_id, payload=payload,
                           answer=answer)
                for touch_key, email in prepared.sources.get(rendered.key, [])
            )  # fmt: skip
        return entries
