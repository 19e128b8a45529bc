"""Loading the sandbox world into the Salesforce emulator's org.

Users, Accounts, Campaigns, Leads and Contacts (converted leads too), Opportunities with their
contact roles, campaign members from the world's activities, and the field history of lead
status and stage changes with the reasons reps gave. ``WorldLoading`` is mixed into
``salesforce_store.SalesforceStore``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sandbox.salesforce_clock import StoreClock
from sandbox.salesforce_soql import format_datetime
from sandbox.world import World

__all__ = ["WorldLoading"]

# Lead status -> the field the demo org's reps fill in with why they set it, in the same save
# (the org keeps why a lead was disqualified apart from why it was recycled).
_REASON_FIELDS = {"Disqualified": "Disqualified_Reason__c", "Recycled": "Recycle_Reason__c"}
_RESPONDED_KINDS = frozenset(
    {
        "email_click",
        "form_fill",
        "webinar_registered",
        "webinar_attended",
        "event_attended",
        "content_download",
        "ad_click",
    }
)


class WorldLoading:
    """Projects the world into the org's records; the store supplies the state and its writes."""

    lock: threading.RLock
    clock: StoreClock
    records: dict[str, dict[str, dict[str, Any]]]
    world_ids: dict[str, str]
    user_id: str

    if TYPE_CHECKING:

        def insert(self, sobject: str, values: Mapping[str, Any]) -> str: ...

        def modify(self, sobject: str, record_id: str, values: Mapping[str, Any]) -> None: ...

        def _put(self, sobject: str, row: dict[str, Any]) -> None: ...

        def record_history(
            self,
            sobject: str,
            record_id: str,
            field_label: str,
            old: Any,
            new: Any,
            *,
            created: str,
            by: str | None = None,
            data_type: str | None = None,
        ) -> str: ...

    def load_world(self, world: World) -> None:
        """Project the seed world into Users, Accounts, Leads/Contacts, Opportunities, ...; the
        org clock restarts at the world's ``now``."""
        with self.lock:
            self.clock.rebase(world.now)
            # The integration user was created with the store, on the wall clock: date it with
            # the world's users, so a pull up to the world's present reads it whatever the hour.
            integration = self.records["User"].get(str(self.user_id))
            if integration is not None:
                integration.update(_audit(world.now, world.now))
            ids = self.world_ids
            for owner_id, name, email in world.owners:
                first, _, last = name.partition(" ")
                ids[owner_id] = self.insert(
                    "User",
                    {
                        "FirstName": first,
                        "LastName": last or first,
                        "Email": email,
                        "Username": email,
                    },
                )
            for account in world.accounts:
                ids[account.id] = self.insert(
                    "Account",
                    {
                        "Name": account.name,
                        "Website": f"https://{account.domain}",
                        "Domain__c": account.domain,
                        "Industry": account.industry,
                        "NumberOfEmployees": account.employees,
                        **_audit(account.created_at, account.created_at),
                    },
                )
            for campaign in world.campaigns:
                ended = campaign.end_date < world.now
                ids[campaign.id] = self.insert(
                    "Campaign",
                    {
                        "Name": campaign.name[:80],
                        "Type": campaign.type,
                        "Channel__c": campaign.channel,
                        "Status": "Completed" if ended else "In Progress",
                        "IsActive": not ended,
                        "StartDate": campaign.start_date.date().isoformat(),
                        "EndDate": campaign.end_date.date().isoformat(),
                        "BudgetedCost": _money(campaign.budgeted_cost),
                        "ActualCost": _money(campaign.actual_cost),
                        **_audit(campaign.start_date, campaign.start_date),
                    },
                )
            reasons = _current_reasons(world)
            for person in world.people:
                self._load_person(person, ids, reasons.get(person.id, {}))
            for opp in world.opportunities:
                ids[opp.id] = self.insert(
                    "Opportunity",
                    {
                        "Name": opp.name[:120],
                        "AccountId": ids.get(opp.account_id),
                        "StageName": opp.stage,
                        "Amount": _money(opp.amount),
                        "CloseDate": opp.close_date.date().isoformat(),
                        "OwnerId": ids.get(opp.owner_id, self.user_id),
                        "CampaignId": ids.get(opp.campaign_id) if opp.campaign_id else None,
                        **_audit(opp.created_at, opp.created_at),
                    },
                )
                row = self.records["Opportunity"][ids[opp.id]]
                self._put("Opportunity", {**row, "IsClosed": opp.is_closed, "IsWon": opp.is_won})
                lead_id = ids.get(f"{opp.lead_person_id}#lead") if opp.lead_person_id else None
                if lead_id is not None:
                    self.modify("Lead", lead_id, {"ConvertedOpportunityId": ids[opp.id]})
            for role in world.contact_roles:
                contact_id = ids.get(role.person_id)
                if (
                    contact_id is None
                    or not contact_id.startswith("003")
                    or role.opportunity_id not in ids
                ):
                    continue
                ids[role.id] = self.insert(
                    "OpportunityContactRole",
                    {
                        "OpportunityId": ids[role.opportunity_id],
                        "ContactId": contact_id,
                        "Role": role.role,
                        "IsPrimary": role.is_primary,
                    },
                )
            self._load_members(world, ids)
            self._load_history(world, ids)

    def _load_person(self, person: Any, ids: dict[str, str], reasons: Mapping[str, str]) -> None:
        owner = ids.get(person.owner_id, self.user_id)
        common = {
            "FirstName": person.first_name,
            "LastName": person.last_name,
            "Email": person.email,
            "Title": (person.title or "")[:128] or None,
            "OwnerId": owner,
            "LeadSource": person.lead_source,
        }
        audit = _audit(person.created_at, person.updated_at)
        if person.crm_kind == "contact":
            contact_id = self.insert(
                "Contact", {**common, "AccountId": ids.get(person.account_id or ""), **audit}
            )
            ids[person.id] = contact_id
            if person.converted_at is not None:
                ids[f"{person.id}#lead"] = self.insert(
                    "Lead",
                    {
                        **common,
                        "Company": person.company or person.last_name,
                        "Status": "Closed - Converted",
                        "IsConverted": True,
                        "ConvertedContactId": contact_id,
                        "ConvertedAccountId": ids.get(person.account_id or ""),
                        "ConvertedDate": person.converted_at.date().isoformat(),
                        **audit,
                    },
                )
        elif person.crm_kind == "lead":
            ids[person.id] = self.insert(
                "Lead",
                {
                    **common,
                    "Company": person.company or person.last_name,
                    "Status": person.lead_status,
                    **reasons,
                    **audit,
                },
            )

    def _load_history(self, world: World, ids: dict[str, str]) -> None:
        """Field history of the seed's lead status and deal stage changes, and of the reasons
        reps gave with a status (written in the same save, so at the same time). A record's
        value at creation has no field row (a real org writes a "created" row without values;
        the emulator writes none), so an opportunity's first stage has none."""
        given: dict[tuple[str, str], str] = {}  # (lead id, reason field) -> value so far
        for event in world.status_events:
            if event.old_value is None or event.old_value == event.new_value:
                continue
            by = ids.get(event.owner_id)
            at = format_datetime(event.changed_at)
            if event.field == "lead_status":
                lead_id = ids.get(f"{event.object_id}#lead") or ids.get(event.object_id, "")
                if not lead_id.startswith("00Q"):
                    continue
                self.record_history(
                    "Lead", lead_id, "Status", event.old_value, event.new_value, created=at, by=by
                )
                field_name = _REASON_FIELDS.get(event.new_value)
                if event.reason is not None and field_name is not None:
                    before = given.get((lead_id, field_name))
                    if before != event.reason:
                        self.record_history(
                            "Lead", lead_id, field_name, before, event.reason, created=at, by=by
                        )
                        given[(lead_id, field_name)] = event.reason
            elif event.field == "stage" and event.object_id in ids:
                self.record_history(
                    "Opportunity",
                    ids[event.object_id],
                    "StageName",
                    event.old_value,
                    event.new_value,
                    created=at,
                    by=by,
                )

    def _load_members(self, world: World, ids: dict[str, str]) -> None:
        members: dict[tuple[str, str], tuple[datetime, bool]] = {}
        for activity in world.activities:
            if activity.campaign_id is None:
                continue
            key = (activity.campaign_id, activity.person_id)
            responded = activity.kind in _RESPONDED_KINDS
            first, seen_response = members.get(key, (activity.occurred_at, False))
            members[key] = (min(first, activity.occurred_at), seen_response or responded)
        for (campaign_id, person_id), (first, responded) in members.items():
            person_ref = ids.get(person_id)
            if person_ref is None or campaign_id not in ids:
                continue
            field_name = "ContactId" if person_ref.startswith("003") else "LeadId"
            self.insert(
                "CampaignMember",
                {
                    "CampaignId": ids[campaign_id],
                    field_name: person_ref,
                    "Status": "Responded" if responded else "Sent",
                    **_audit(first, first),
                },
            )


def _current_reasons(world: World) -> dict[str, dict[str, str]]:
    """Person id -> reason field -> the last reason the world's reps gave for that status."""
    found: dict[str, dict[str, str]] = {}
    for event in sorted(world.status_events, key=lambda e: e.changed_at):
        field_name = _REASON_FIELDS.get(event.new_value)
        if event.field == "lead_status" and event.reason is not None and field_name is not None:
            found.setdefault(event.object_id, {})[field_name] = event.reason
    return found


def _audit(created: datetime, modified: datetime) -> dict[str, str]:
    return {
        "CreatedDate": format_datetime(created),
        "LastModifiedDate": format_datetime(modified),
        "SystemModstamp": format_datetime(modified),
    }


def _money(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)
