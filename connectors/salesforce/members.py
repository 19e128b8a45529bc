"""Campaign membership in Salesforce: who is in which Campaign, with a status that only rises.

The pure parts of ``SalesforceConnector.sync_campaign_members`` (whose item and result types,
``MemberItem`` and ``MemberResult``, are in ``connectors.base`` so the engine needs no vendor
module): the SOQL that reads existing memberships, and the plan that decides, per Campaign and
person, whether to create a member, raise its status, or leave it alone.

Salesforce allows one CampaignMember per Campaign and Lead/Contact (a second create is
``DUPLICATE_VALUE`` "Already a campaign member"), so membership is keyed by (Campaign, person):
several touches of one person in one Campaign become one write carrying the highest status
among them, and every touch gets that write's outcome. A member whose current status is not in
``status_order`` was set by someone else on purpose and is never changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from connectors.salesforce.identity import in_list_queries

__all__ = [
    "CAMPAIGN_LOOKUP",
    "Membership",
    "member_queries",
    "person_field",
    "plan",
    "rank_of",
    "short_id",
]

CAMPAIGN_LOOKUP = "SELECT Id, Name FROM Campaign WHERE Name IN ("
_MEMBER_FIELDS = "SELECT Id, CampaignId, LeadId, ContactId, Status FROM CampaignMember WHERE "
# Record key prefixes of the two kinds of person a CampaignMember can hold.
_PERSON_FIELDS = {"00Q": "LeadId", "003": "ContactId"}


@dataclass
class Membership:
    """One (Campaign, person) pair to settle, with the items that claim it."""

    campaign_id: str
    person_id: str
    status: str
    items: list[int] = field(default_factory=list)  # positions of the items claiming it
    member_id: str | None = None
    current: str | None = None


def short_id(record_id: str) -> str:
    """The case-sensitive 15-character form of a Salesforce id (18-character ids add a suffix)."""
    return record_id.strip()[:15]


def person_field(person_id: str) -> str | None:
    """``LeadId`` or ``ContactId`` for a person id (by its key prefix); None for anything else."""
    return _PERSON_FIELDS.get(person_id.strip()[:3])


def member_queries(
    campaign_field: Literal["CampaignId", "Campaign.Name"],
    campaigns: Iterable[str],
    people: Mapping[str, Sequence[str]],
    max_chars: int,
) -> list[str]:
    """SOQL reading the memberships of ``people`` (``LeadId``/``ContactId`` -> ids) in
    ``campaigns`` (ids or names), every statement at most ``max_chars`` long."""
    budget = max_chars // 2  # half for the campaign list, half for the people
    head = f"{_MEMBER_FIELDS}{campaign_field} IN ("
    heads = in_list_queries(head, sorted(set(campaigns)), budget)
    queries: list[str] = []
    for head in heads:
        for name, ids in people.items():
            if ids:
                prefix = f"{head} AND {name} IN ("
                queries.extend(in_list_queries(prefix, sorted(set(ids)), max_chars))
    return queries


def rank_of(order: Sequence[str]) -> dict[str, int]:
    """Status (case-folded) -> its rank in ``order``."""
    return {status.casefold(): i for i, status in enumerate(order)}


def plan(
    wanted: Iterable[Membership], existing: Mapping[tuple[str, str], tuple[str, str | None]],
    ranks: Mapping[str, int],
) -> tuple[list[Membership], list[Membership], list[Membership]]:  # fmt: skip
    """(to create, to update, unchanged) given ``existing`` (campaign, person) -> (member id,
    status), each pair keyed by short ids."""
    creates: list[Membership] = []
    updates: list[Membership] = []
    unchanged: list[Membership] = []
    for item in wanted:
        found = existing.get((short_id(item.campaign_id), short_id(item.person_id)))
        if found is None:
            creates.append(item)
            continue
        item.member_id, item.current = found
        now = ranks.get((item.current or "").casefold())
        if now is not None and ranks[item.status.casefold()] > now:
            updates.append(item)
        else:
            unchanged.append(item)
    return creates, updates, unchanged
