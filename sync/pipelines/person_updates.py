"""Person fields for the Deliverer: the mapping's ``people.fields`` rules applied to the people
the CRM already had (one batched read of the CRM's values, one batched update), and the ledger's
``person.fields_digest`` that says a person is settled (see ``sync.pipelines.deliveries``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Connection, select

from connectors.base import Crm, Person, PersonUpdate, Touch
from sync.ledger.dialect import AnyOf, update_each
from sync.ledger.engine import reading
from sync.ledger.models import PersonRow
from sync.pipelines.rows import (
    _LOOKUP_CHUNK,
    _email,
    _text,
    remember,
    source_person,
    upsert_people,
)

if TYPE_CHECKING:
    from sync.mapping import CompiledMapping
    from sync.pipelines.context import RunContext

__all__ = ["PersonUpdates"]

log = structlog.get_logger(__name__)

_PERSON = PersonRow.__table__  # type: ignore[attr-defined]


class PersonUpdates:
    """The Deliverer's person-field updates (a mixin: ``Deliverer`` sets what it reads)."""

    ctx: RunContext
    crm: Crm
    sink: str
    mapping: CompiledMapping
    # Emails whose person fields this run has settled (created or updated): once a run.
    _fields_done: set[str]

    if TYPE_CHECKING:

        def _call(self, fn: Callable[[], Any]) -> Any: ...

        def _cache(self, email: str, person: Person | None) -> None: ...

    def _update_people(self, people: Mapping[str, Person], ready: Sequence[Touch]) -> None:
        """Apply the mapping's ``people.fields`` rules to the people of ``ready`` touches that
        the CRM already had: one batched read of the CRM's values, one batched update."""
        rules = [
            r for r in self.mapping.person_rules if r.direction != "from_crm" and r.rule != "never"
        ]
        read = getattr(self.crm, "read_person_fields", None)
        write = getattr(self.crm, "update_people", None)
        if not rules or read is None or write is None:
            return
        newest: dict[str, Person] = {}
        for touch in sorted(ready, key=lambda t: (t.occurred_at, t.key)):
            email = _email(touch)
            person = people.get(email)
            if email in self._fields_done or person is None or not person.external_id:
                continue
            given = source_person(touch, email)
            if given is not None:
                newest[email] = given  # the newest touch's person wins
        if not newest:
            return
        remember(self._fields_done, newest)
        digests = {email: self._fields_digest(given) for email, given in newest.items()}
        settled = self._settled_digests([people[email].external_id for email in newest])
        newest = {
            email: given
            for email, given in newest.items()
            if settled.get(people[email].external_id) != digests[email]
        }
        if not newest:
            return
        targets = [people[email] for email in newest]
        self.ctx.add("people_checked", len(targets))
        fields = list(dict.fromkeys(r.crm_field for r in rules))
        two_way = [r.crm_field for r in rules if r.direction == "both"]
        snapshots = self._call(lambda: read(targets, fields, two_way))
        updates: list[PersonUpdate] = []
        unchanged: list[str] = []
        for email, given in newest.items():
            person = people[email]
            snapshot = snapshots.get(person.external_id)
            if snapshot is None:  # gone from the CRM since it was resolved
                continue
            current = replace(
                person, first_name=None, last_name=None, company=None, owner_id=None,
                status=None, lead_source=None, lifecycle_stage=None,
                fields=dict(snapshot.values), updated_at=snapshot.updated_at,
            )  # fmt: skip
            plan = self.mapping.plan_person(given, current, snapshot.changed_at)
            # Only fields the record has (a Contact has no Company): the snapshot holds those.
            values = {k: v for k, v in plan.crm_updates.items() if k in snapshot.values}
            if values:
                updates.append(PersonUpdate(person, values))
            else:
                unchanged.append(email)
        refusals = {
            (r.key or ""): r for r in self._call(lambda: write(updates)) if r.key is not None
        } if updates else {}  # fmt: skip
        for email, why in refusals.items():
            log.warning("person update refused", sink=self.sink, email=email, code=why.code,
                        reason=str(why))  # fmt: skip
        done = [u for u in updates if (u.person.email or "").lower() not in refusals]
        merged = [_with_values(u.person, u.values) for u in done]
        settled_now = {
            people[email].external_id: digests[email]
            for email in [*unchanged, *((u.person.email or "").lower() for u in done)]
        }
        with self.ctx.transaction() as conn:
            if merged:
                upsert_people(conn, self.sink, merged)
            self._settled(conn, settled_now)
        for person in merged:
            self._cache((person.email or "").lower(), person)
        self.ctx.add("people_updated", len(done))
        self.ctx.add("person_updates_refused", len(refusals))

    def _fields_digest(self, given: Person) -> str:
        """What settling ``given`` depends on: its values and time, and the mapping's rules."""
        rules = [
            (r.crm_field, r.source_path, r.direction, r.rule) for r in self.mapping.person_rules
        ]
        person = [given.first_name, given.last_name, given.company, dict(given.fields)]
        stamp = given.updated_at.isoformat() if given.updated_at else None
        text = json.dumps([rules, person, stamp], sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    def _settled(self, conn: Connection, digests: Mapping[str, str]) -> None:
        """Record that these CRM people (by id) were settled against these source digests."""
        update_each(
            conn,
            _PERSON,
            "external_id",
            [{"external_id": xid, "fields_digest": digest} for xid, digest in digests.items()],
            where={"crm": self.sink},
            fixed={},
        )

    def _settled_digests(self, external_ids: Sequence[str]) -> dict[str, str]:
        """The ledger's ``fields_digest`` of these CRM people (those that have one)."""
        out: dict[str, str] = {}
        with reading(self.ctx.engine) as conn:
            for start in range(0, len(external_ids), _LOOKUP_CHUNK):
                rows = conn.execute(
                    select(_PERSON.c.external_id, _PERSON.c.fields_digest).where(
                        _PERSON.c.crm == self.sink,
                        AnyOf(_PERSON.c.external_id, external_ids[start : start + _LOOKUP_CHUNK]),
                        _PERSON.c.fields_digest.is_not(None),
                    )
                )
                out.update({row.external_id: row.fields_digest for row in rows})
        return out


def _with_values(person: Person, values: Mapping[str, Any]) -> Person:
    """``person`` after the CRM fields ``values`` were written on it (for the ledger's copy)."""
    return replace(
        person,
        first_name=_text(values, "FirstName", "firstname") or person.first_name,
        last_name=_text(values, "LastName", "lastname") or person.last_name,
        company=_text(values, "Company", "company") or person.company,
        fields={**person.fields, **values},
    )
