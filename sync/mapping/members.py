"""Campaign members compiled: which Campaign and member status a delivered touch stands for.

Pure code over the ``campaign_members`` section of a mapping: ``campaign_for`` turns a touch's
campaign (a source-side program name or id) into a reference to a Salesforce Campaign, by Id
when ``campaigns`` lists it, by Campaign Name otherwise (``match: name``) or not at all
(``match: map``); ``status_for`` gives the member status of a touch kind, spelled as in
``status_order``, whose order the connector keeps (a status only moves up).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from connectors.base import TouchKind
from sync.mapping.model import CampaignMembers

__all__ = ["CampaignRef", "MemberPlan", "compile_members"]


@dataclass(frozen=True, slots=True)
class CampaignRef:
    """A Salesforce Campaign: its Id (``by_id``) or its Name."""

    value: str
    by_id: bool


@dataclass(frozen=True)
class MemberPlan:
    """The compiled ``campaign_members`` section of an enabled mapping."""

    by_name: bool
    campaigns: Mapping[str, str]  # folded source campaign -> Campaign Id
    statuses: Mapping[TouchKind, str]
    status_order: tuple[str, ...]

    def campaign_for(self, campaign: str | None) -> CampaignRef | None:
        """The Campaign a touch's campaign stands for; None when it adds no member."""
        text = (campaign or "").strip()
        if not text:
            return None
        mapped = self.campaigns.get(text.casefold())
        if mapped is not None:
            return CampaignRef(mapped, by_id=True)
        return CampaignRef(text, by_id=False) if self.by_name else None

    def status_for(self, kind: TouchKind) -> str | None:
        """The member status a touch of ``kind`` earns; None: this kind adds no member."""
        return self.statuses.get(kind)


def compile_members(section: CampaignMembers | None) -> MemberPlan | None:
    """The plan of a validated section; None when the section is absent or not enabled."""
    if section is None or not section.enabled:
        return None
    order = tuple(dict.fromkeys(s.strip() for s in section.status_order))
    spelled = {s.casefold(): s for s in order}
    return MemberPlan(
        by_name=section.match == "name",
        campaigns={k.strip().casefold(): v for k, v in section.campaigns.items()},
        statuses={
            kind: spelled.get(status.strip().casefold(), status.strip())
            for kind, status in section.statuses.items()
        },
        status_order=order,
    )
