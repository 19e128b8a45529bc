"""Seeding a HubSpot portal from the sandbox world: owners, companies, contacts, deals, history.

The world's lifecycle stages, lead statuses and deal stages map to HubSpot's values; the seed's
status events become property history (with the reason properties set in the same edit), and its
e-mail and form activities become the marketing side's e-mail events and form submissions.
``WorldSeeding`` is mixed into ``hubspot_account.HubSpotStore``, whose ``load_world`` calls it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sandbox.hubspot_clock import to_ms
from sandbox.hubspot_store import PortalData
from sandbox.world import World

__all__ = ["WorldSeeding"]

_LIFECYCLE = {
    "inquiry": "lead",
    "mql": "marketingqualifiedlead",
    "sal": "salesqualifiedlead",
    "sql": "salesqualifiedlead",
    "opportunity": "opportunity",
    "customer": "customer",
    "recycled": "lead",
    "disqualified": "other",
}
_LEAD_STATUS = {
    "Open - Not Contacted": "NEW",
    "Working - Contacted": "IN_PROGRESS",
    "Closed - Converted": "OPEN_DEAL",
    "Closed - Not Converted": "UNQUALIFIED",
    "Recycled": "BAD_TIMING",
    "Disqualified": "UNQUALIFIED",
}
# Lead status -> the contact property the portal's reps fill in with why they set it, in the
# same edit: the properties `closedloop check hubspot --fix` creates and the shipped mapping's
# lifecycle.reason_fields name; the demo portal's admin created them before the reps' history.
_REASON_PROPERTIES = {
    "Disqualified": ("closedloop_disqualified_reason", "closedloop disqualified reason"),
    "Recycled": ("closedloop_recycle_reason", "closedloop recycle reason"),
}
_DEAL_STAGE = {
    "Prospecting": "appointmentscheduled",
    "Qualification": "qualifiedtobuy",
    "Needs Analysis": "presentationscheduled",
    "Proposal/Price Quote": "decisionmakerboughtin",
    "Negotiation/Review": "contractsent",
    "Closed Won": "closedwon",
    "Closed Lost": "closedlost",
}
_EMAIL_EVENT = {
    "email_sent": "SENT",
    "email_delivered": "DELIVERED",
    "email_open": "OPEN",
    "email_click": "CLICK",
    "email_bounce": "BOUNCE",
    "email_unsubscribe": "STATUSCHANGE",
}


def _current_reasons(world: World) -> dict[str, dict[str, str]]:
    """World person id -> reason property -> the last reason its reps gave for that status."""
    found: dict[str, dict[str, str]] = {}
    for event in sorted(world.status_events, key=lambda e: e.changed_at):
        reason = _REASON_PROPERTIES.get(event.new_value)
        if event.field == "lead_status" and event.reason is not None and reason is not None:
            found.setdefault(event.object_id, {})[reason[0]] = event.reason
    return found


class WorldSeeding:
    """Loads the world into ``data`` and records the HubSpot id given to each world id."""

    data: PortalData
    owner_ids: dict[str, str]
    company_ids: dict[str, str]
    contact_ids: dict[str, str]
    deal_ids: dict[str, str]

    def _load(self, world: World) -> None:
        data = self.data
        for name, label in _REASON_PROPERTIES.values():
            if name not in data.properties["contacts"]:
                data.create_property(
                    "contacts",
                    {"name": name, "label": label, "type": "string", "fieldType": "text",
                     "groupName": "contactinformation"},
                )  # fmt: skip
        reasons = _current_reasons(world)
        for owner_id, name, email in world.owners:
            self.owner_ids[owner_id] = data.add_owner(name, email)
        for account in world.accounts:
            props = {
                "name": account.name,
                "domain": account.domain,
                "industry": account.industry,
                "numberofemployees": str(account.employees),
            }
            self.company_ids[account.id] = self._seed(
                "companies", props, account.created_at, account.created_at
            )
        for person in world.people:
            if person.crm_kind == "none" or person.duplicate_of is not None:
                continue
            if data._resolve_id("contacts", person.email, "email") is not None:
                continue
            props = {
                "email": person.email,
                "firstname": person.first_name,
                "lastname": person.last_name,
                "company": person.company,
                "jobtitle": person.title,
                "lifecyclestage": _LIFECYCLE.get(person.lifecycle_stage, "lead"),
                "hs_analytics_source": person.lead_source,
            }
            if person.lead_status:
                props["hs_lead_status"] = _LEAD_STATUS.get(person.lead_status, "OPEN")
            props.update(reasons.get(person.id, {}))
            owner = self.owner_ids.get(person.owner_id)
            if owner:
                props["hubspot_owner_id"] = owner
            contact_id = self._seed("contacts", props, person.created_at, person.updated_at)
            self.contact_ids[person.id] = contact_id
            company = self.company_ids.get(person.account_id or "")
            if company:
                data.associate("contacts", contact_id, "companies", company, 1)
                data.associate("contacts", contact_id, "companies", company, 279)
        for person in world.people:
            if person.duplicate_of and person.duplicate_of in self.contact_ids:
                self.contact_ids.setdefault(person.id, self.contact_ids[person.duplicate_of])
        for opp in world.opportunities:
            props = {
                "dealname": opp.name,
                "dealstage": _DEAL_STAGE.get(opp.stage, "appointmentscheduled"),
                "pipeline": "default",
                "amount": str(opp.amount),
                "closedate": str(to_ms(opp.close_date)),
            }
            owner = self.owner_ids.get(opp.owner_id)
            if owner:
                props["hubspot_owner_id"] = owner
            deal_id = self._seed(
                "deals",
                props,
                opp.created_at,
                max(opp.created_at, opp.close_date if opp.is_closed else opp.created_at),
            )
            self.deal_ids[opp.id] = deal_id
            company = self.company_ids.get(opp.account_id)
            if company:
                data.associate("deals", deal_id, "companies", company, 5)
                data.associate("deals", deal_id, "companies", company, 341)
        for role in world.contact_roles:
            deal = self.deal_ids.get(role.opportunity_id)
            contact = self.contact_ids.get(role.person_id)
            if deal and contact:
                data.associate("deals", deal, "contacts", contact, 3)
        self._load_history(world)
        self._load_marketing(world)

    def _load_history(self, world: World) -> None:
        """Property history of lifecyclestage, hs_lead_status and dealstage from the seed's
        status events: the value at creation, then each change (repeats of a value that the
        mapping to HubSpot's values merges are dropped); and of the reason properties, set in
        the same edit as the lead status the reason was given for (so at the same time)."""
        properties = {
            ("lead", "lifecycle_stage"): ("contacts", "lifecyclestage", _LIFECYCLE),
            ("lead", "lead_status"): ("contacts", "hs_lead_status", _LEAD_STATUS),
            ("opportunity", "stage"): ("deals", "dealstage", _DEAL_STAGE),
        }
        own = {p.id for p in world.people if p.duplicate_of is None}
        ids = {"contacts": self.contact_ids, "deals": self.deal_ids}
        for event in sorted(world.status_events, key=lambda e: e.changed_at):
            found = properties.get((event.object_type, event.field))
            if found is None or (event.object_type == "lead" and event.object_id not in own):
                continue
            object_type, name, values = found
            record_id = ids[object_type].get(event.object_id)
            record = self.data.objects[object_type].get(record_id or "")
            if record is None or name not in record.properties:
                continue
            at = max(event.changed_at, record.created)
            record.history = record.history or {}
            reason = _REASON_PROPERTIES.get(event.new_value)
            if event.field == "lead_status" and event.reason is not None and reason is not None:
                given = record.history.get(reason[0], [])
                if not given or given[-1][0] != event.reason:
                    record.history[reason[0]] = [*given, (event.reason, at, "CRM_UI")]
            entries = record.history.get(name)
            if entries is None and event.old_value is not None:
                entries = [(values.get(event.old_value, "OPEN"), record.created, "CRM_UI")]
            value = values.get(event.new_value, "OPEN")
            if entries and entries[-1][0] == value:
                continue
            record.history[name] = [*(entries or []), (value, at, "CRM_UI")]

    def _seed(
        self, object_type: str, props: dict[str, str], created: datetime, updated: datetime
    ) -> str:
        clean, errors = self.data._validate(object_type, props, creating=True)
        if errors:
            raise ValueError(f"world record rejected by the HubSpot schema: {errors}")
        record = self.data._store(object_type, clean)
        record.created = created
        record.updated = max(created, updated)
        self.data._stamp(object_type, record, created=True)
        return record.id

    def _load_marketing(self, world: World) -> None:
        data = self.data
        people = {p.id: p for p in world.people}
        campaigns: dict[str, int] = {}
        for activity in world.activities:
            person = people.get(activity.person_id)
            if person is None:
                continue
            stamp = to_ms(activity.occurred_at)
            event_type = _EMAIL_EVENT.get(activity.kind)
            if event_type is not None:
                campaign = campaigns.setdefault(activity.asset, 10_000_000 + len(campaigns) + 1)
                event: dict[str, Any] = {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"hubspot-email-event:{activity.id}")),
                    "type": event_type,
                    "recipient": person.email,
                    "created": stamp,
                    "emailCampaignId": campaign,
                    "appId": 113,
                    "appName": "BatchEmail",
                    "portalId": 4_000_001,
                    "sentBy": {"id": f"sent-{activity.id}", "created": stamp},
                }
                if event_type == "CLICK":
                    event["url"] = activity.attributes.get(
                        "link", activity.attributes.get("url", "https://example.com/")
                    )
                if event_type == "BOUNCE":
                    event["category"] = "HARD_BOUNCE"
                if event_type == "STATUSCHANGE":
                    event["subscriptions"] = [{"id": 1, "status": "UNSUBSCRIBED"}]
                data.email_events.append(event)
            elif activity.kind == "form_fill":
                form_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"hubspot-form:{activity.asset}"))
                if form_id not in data.forms:
                    created = activity.occurred_at
                    data.forms[form_id] = {
                        "id": form_id,
                        "name": activity.asset,
                        "formType": "hubspot",
                        "createdAt": created.isoformat().replace("+00:00", "Z"),
                        "updatedAt": created.isoformat().replace("+00:00", "Z"),
                        "archived": False,
                        "fieldGroups": [
                            {
                                "groupType": "default_group",
                                "richTextType": "text",
                                "fields": [
                                    {
                                        "objectTypeId": "0-1",
                                        "name": name,
                                        "label": name.title(),
                                        "required": name == "email",
                                        "hidden": False,
                                        "fieldType": "single_line_text"
                                        if name != "email"
                                        else "email",
                                    }
                                    for name in ("email", "firstname", "lastname", "company")
                                ],
                            }
                        ],
                    }
                data.submissions[form_id].append(
                    {
                        "conversionId": str(
                            uuid.uuid5(uuid.NAMESPACE_OID, f"hubspot-form-submission:{activity.id}")
                        ),
                        "submittedAt": stamp,
                        "pageUrl": activity.attributes.get("webpage", "https://example.com/"),
                        "values": [
                            {"name": "email", "value": person.email},
                            {"name": "firstname", "value": person.first_name},
                            {"name": "lastname", "value": person.last_name},
                            {"name": "company", "value": person.company},
                        ],
                    }
                )
        data.email_events.sort(key=lambda e: (-e["created"], e["id"]))
        for rows in data.submissions.values():
            rows.sort(key=lambda s: (-s["submittedAt"], s["conversionId"]))
