"""Who is who: the identity graph of people, with conversions and merges folded together.

A Lead converted into a Contact, and a record merged into another, are one person: their ids
all resolve to one *canonical* id (the end of the ``converted_to`` / ``merged_into`` chain), and
touches of any of those ids count for that person. The canonical person takes the earliest
creation time of its records (the Lead's, which is when the lead was created) and the first
account found along the chain. Deleted records that were not merged away drop out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sync.attribution.records import AttributionPerson

__all__ = ["IdentityGraph", "PersonNode"]


@dataclass(frozen=True, slots=True)
class PersonNode:
    """One canonical person: the ids that fold into it, its account and its creation time."""

    id: str
    aliases: tuple[str, ...]
    account_id: str | None
    created_at: datetime | None
    deleted: bool


class IdentityGraph:
    """Canonical ids, people per account, and email lookups (current and former addresses).

    ``by_email`` maps trimmed, lower-cased addresses (as the ledger stores them) to canonical
    ids; ``person_for_email`` cleans the address first."""

    def __init__(self, people: Iterable[AttributionPerson]) -> None:
        self._records = {p.id: p for p in people}
        self._canonical: dict[str, str] = {}
        members: dict[str, list[AttributionPerson]] = {}
        for record in sorted(self._records.values(), key=lambda p: p.id):
            members.setdefault(self.canonical(record.id), []).append(record)
        self.nodes: dict[str, PersonNode] = {}
        for root, records in members.items():
            head = self._records.get(root)
            # Most people are one record with no chain: their node is that record.
            if head is not None and len(records) == 1 and records[0] is head:
                self.nodes[root] = PersonNode(
                    root, (root,), head.account_id or None, head.created_at, head.deleted
                )
                continue
            ordered = ([head] if head is not None else []) + [r for r in records if r is not head]
            created = [r.created_at for r in ordered if r.created_at is not None]
            self.nodes[root] = PersonNode(
                id=root,
                aliases=tuple(r.id for r in ordered),
                account_id=next((r.account_id for r in ordered if r.account_id), None),
                created_at=min(created) if created else None,
                # A node is gone when its surviving record is deleted (or, if that record is
                # unknown, when every record folding into it is).
                deleted=head.deleted if head is not None else all(r.deleted for r in records),
            )
        self.by_account: dict[str, list[str]] = {}
        for node in self.nodes.values():
            if node.account_id and not node.deleted:
                self.by_account.setdefault(node.account_id, []).append(node.id)
        for ids in self.by_account.values():
            ids.sort()
        self.by_email = self._email_index()

    @property
    def canonical_ids(self) -> dict[str, str]:
        """Every id resolved so far (all known records after construction) -> canonical id."""
        return self._canonical

    def canonical(self, person_id: str) -> str:
        """The id every touch of ``person_id`` counts for (cycles in bad data stop the walk)."""
        known = self._canonical.get(person_id)
        if known is not None:
            return known
        path = [person_id]
        seen = {person_id}
        current = person_id
        while True:
            record = self._records.get(current)
            if record is None:
                break
            target = record.merged_into or record.converted_to
            if not target or target in seen:
                break
            path.append(target)
            seen.add(target)
            current = target
        for step in path:
            self._canonical[step] = current
        return current

    def _email_index(self) -> dict[str, str]:
        """Email -> canonical id; current addresses beat former ones, contacts beat leads."""
        ranked: dict[str, tuple[tuple[int, int, str], str]] = {}
        canonical = self._canonical  # every record was resolved while grouping the members
        for record in self._records.values():
            root = canonical[record.id]
            node = self.nodes[root]
            if node.deleted:
                continue
            for position, email in enumerate(record.emails):
                rank = (min(position, 1), 1 if record.is_lead else 0, record.id)
                address = email.strip().lower()
                best = ranked.get(address)
                if best is None or rank < best[0]:
                    ranked[address] = (rank, root)
        return {email: root for email, (_, root) in ranked.items()}

    def person_for_email(self, email: str) -> str | None:
        """The canonical person an address belongs (or belonged) to, if any."""
        return self.by_email.get(email.strip().lower())
