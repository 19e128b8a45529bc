"""The Salesforce emulator's org schema as plain data: objects, fields, picklists, key prefixes.

Other parts read this too (mapping validation uses field lengths and picklist values), so it holds
data only: no store, no HTTP. Field attributes follow the names of the real describe result
(``createable``, ``nillable``, ``externalId``, ``referenceTo``...). The org is a plain Enterprise
org with the standard fields closedloop touches plus its custom fields (``Closedloop_Key__c`` on
Task, ``Domain__c`` on Account, ``Disqualified_Reason__c`` on Lead, ``Channel__c`` on Campaign).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = [
    "CAMPAIGN_MEMBER_STATUSES",
    "CAMPAIGN_STATUSES",
    "CAMPAIGN_TYPES",
    "HISTORY_OBJECTS",
    "HISTORY_TRACKED",
    "INDUSTRIES",
    "KEY_PREFIXES",
    "LEAD_SOURCES",
    "LEAD_STATUSES",
    "OBJECTS",
    "OPPORTUNITY_STAGES",
    "TASK_PRIORITIES",
    "TASK_STATUSES",
    "TASK_TYPES",
    "FieldDef",
    "ObjectDef",
    "object_for_prefix",
]

# Types use the describe "type" names. Strings carry a length; numbers a precision/scale.
STRING_TYPES = frozenset({"string", "textarea", "email", "phone", "url", "picklist", "combobox"})


@dataclass(frozen=True)
class FieldDef:
    """One field as describe reports it, plus the emulator's own ``required`` and ``default``."""

    name: str
    type: str
    label: str
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    id_lookup: bool = False
    unique: bool = False
    custom: bool = False
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    default: object = None
    precision: int = 0
    scale: int = 0
    # Indexed fields let equality/IN filters skip a full scan (Email lookups by the connector).
    indexed: bool = False

    @property
    def required(self) -> bool:
        """A value must be given on create (not nillable, createable and without a default)."""
        return (
            not self.nillable
            and self.createable
            and self.default is None
            and self.type != "boolean"
        )


@dataclass(frozen=True)
class ObjectDef:
    """One sObject: API name, key prefix and its fields by API name (in describe order)."""

    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: dict[str, FieldDef] = field(default_factory=dict)
    custom: bool = False
    # False for objects only the platform writes (field history): no create, update or delete.
    writable: bool = True

    def field_ci(self, name: str) -> FieldDef | None:
        """The field whose API name matches ``name`` case-insensitively (SOQL and JSON allow it)."""
        found = self.fields.get(name)
        if found is not None:
            return found
        return _lower_index(self).get(name.lower())

    def relationship_ci(self, name: str) -> FieldDef | None:
        """The reference field whose relationship name matches ``name`` case-insensitively."""
        lowered = name.lower()
        for candidate in self.fields.values():
            if candidate.relationship_name and candidate.relationship_name.lower() == lowered:
                return candidate
        return None


_LOWER_CACHE: dict[str, dict[str, FieldDef]] = {}


def _lower_index(obj: ObjectDef) -> dict[str, FieldDef]:
    cached = _LOWER_CACHE.get(obj.name)
    if cached is None:
        cached = {name.lower(): f for name, f in obj.fields.items()}
        _LOWER_CACHE[obj.name] = cached
    return cached


LEAD_STATUSES = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Marketing Qualified",
    "Sales Accepted",
    "Sales Qualified",
    "Closed - Converted",
    "Closed - Not Converted",
    "Recycled",
    "Disqualified",
)
LEAD_SOURCES = (
    "Web",
    "Advertisement",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Trade Show",
    "Webinar",
    "Email",
    "Paid Search",
    "Paid Social",
    "Content",
    "Event",
    "Other",
)
INDUSTRIES = (
    "Agriculture",
    "Banking",
    "Biotechnology",
    "Consulting",
    "Education",
    "Energy",
    "Finance",
    "Government",
    "Healthcare",
    "Insurance",
    "Manufacturing",
    "Media",
    "Retail",
    "Technology",
    "Telecommunications",
    "Transportation",
    "Other",
)
OPPORTUNITY_STAGES = (
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
)
# (IsClosed, IsWon) per stage, as the standard stage settings define them.
STAGE_OUTCOMES = {
    stage: (stage.startswith("Closed"), stage == "Closed Won") for stage in OPPORTUNITY_STAGES
}
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
CLOSED_TASK_STATUSES = frozenset({"Completed"})
TASK_PRIORITIES = ("High", "Normal", "Low")
TASK_TYPES = ("Call", "Email", "Meeting", "Marketing Touch", "Other")
CAMPAIGN_TYPES = (
    "Conference",
    "Webinar",
    "Trade Show",
    "Public Relations",
    "Partners",
    "Referral Program",
    "Advertisement",
    "Banner Ads",
    "Direct Mail",
    "Email",
    "Telemarketing",
    "Content",
    "Other",
)
CAMPAIGN_STATUSES = ("Planned", "In Progress", "Completed", "Aborted")
CAMPAIGN_MEMBER_STATUSES = ("Sent", "Responded", "Registered", "Attended", "Clicked", "Opened")
CONTACT_ROLES = (
    "Business User",
    "Decision Maker",
    "Economic Buyer",
    "Economic Decision Maker",
    "Evaluator",
    "Executive Sponsor",
    "Influencer",
    "Technical Buyer",
    "Other",
)


def _id() -> FieldDef:
    return FieldDef(
        "Id",
        "id",
        "Record ID",
        length=18,
        nillable=False,
        createable=False,
        updateable=False,
        id_lookup=True,
    )


def _audit() -> list[FieldDef]:
    return [
        _ro(FieldDef("IsDeleted", "boolean", "Deleted", nillable=False)),
        _ro(FieldDef("CreatedDate", "datetime", "Created Date", nillable=False)),
        _ro(FieldDef("LastModifiedDate", "datetime", "Last Modified Date", nillable=False)),
        _ro(FieldDef("SystemModstamp", "datetime", "System Modstamp", nillable=False)),
    ]


def _text(name: str, label: str, length: int, **kw: object) -> FieldDef:
    return FieldDef(name, "string", label, length=length, **kw)  # type: ignore[arg-type]


def _pick(name: str, label: str, values: tuple[str, ...], **kw: object) -> FieldDef:
    return FieldDef(name, "picklist", label, length=255, picklist=values, **kw)  # type: ignore[arg-type]


def _ref(name: str, label: str, targets: tuple[str, ...], rel: str, **kw: object) -> FieldDef:
    return FieldDef(
        name,
        "reference",
        label,
        length=18,
        reference_to=targets,
        relationship_name=rel,
        **kw,  # type: ignore[arg-type]
    )


def _owner() -> FieldDef:
    return _ref("OwnerId", "Owner ID", ("User",), "Owner", nillable=False, default="$user")


def _ro(f: FieldDef) -> FieldDef:
    return replace(f, createable=False, updateable=False)


def _obj(name: str, label: str, plural: str, prefix: str, fields: list[FieldDef]) -> ObjectDef:
    return ObjectDef(name, label, plural, prefix, {f.name: f for f in fields})


def _history(name: str, label: str, parent: str, parent_field: str) -> ObjectDef:
    """A field-history object (LeadHistory, OpportunityFieldHistory): rows the org writes when
    a tracked field changes; read-only through the API. Key prefix 017 is shared by every
    history object in a real org."""
    fields = [
        _id(),
        _ro(_ref(parent_field, f"{parent} ID", (parent,), parent, nillable=False, indexed=True)),
        _ro(_text("Field", "Changed Field", 255, nillable=False)),
        _ro(_text("DataType", "Data Type", 255)),
        _ro(FieldDef("OldValue", "anyType", "Old Value", length=255)),
        _ro(FieldDef("NewValue", "anyType", "New Value", length=255)),
        _ro(_ref("CreatedById", "Created By ID", ("User",), "CreatedBy", nillable=False)),
        _ro(FieldDef("IsDeleted", "boolean", "Deleted", nillable=False)),
        _ro(FieldDef("CreatedDate", "datetime", "Created Date", nillable=False)),
    ]
    return ObjectDef(name, label, f"{label}s", "017", {f.name: f for f in fields}, writable=False)


# Fields whose changes the org records in field history (Setup > Object Manager > <object> >
# Fields & Relationships > Set History Tracking), with the name history rows give each field.
HISTORY_TRACKED: dict[str, dict[str, str]] = {
    "Lead": {
        "Status": "Status",
        "OwnerId": "Owner",
        "Disqualified_Reason__c": "Disqualified_Reason__c",
    },
    "Opportunity": {"StageName": "StageName", "Amount": "Amount", "CloseDate": "CloseDate"},
}
# Parent object -> (history object, its parent-id field).
HISTORY_OBJECTS: dict[str, tuple[str, str]] = {
    "Lead": ("LeadHistory", "LeadId"),
    "Opportunity": ("OpportunityFieldHistory", "OpportunityId"),
}


OBJECTS: dict[str, ObjectDef] = {
    o.name: o
    for o in [
        _obj(
            "User",
            "User",
            "Users",
            "005",
            [
                _id(),
                _text("Username", "Username", 80, nillable=False, unique=True, id_lookup=True),
                _text("FirstName", "First Name", 40),
                _text("LastName", "Last Name", 80, nillable=False),
                _ro(_text("Name", "Full Name", 121)),
                FieldDef("Email", "email", "Email", length=128, nillable=False, id_lookup=True),
                _text("Title", "Title", 80),
                FieldDef("IsActive", "boolean", "Active", nillable=False, default=True),
                *_audit(),
            ],
        ),
        _obj(
            "Account",
            "Account",
            "Accounts",
            "001",
            [
                _id(),
                _text("Name", "Account Name", 255, nillable=False),
                FieldDef("Website", "url", "Website", length=255),
                _text(
                    "Domain__c",
                    "Domain",
                    255,
                    custom=True,
                    external_id=True,
                    id_lookup=True,
                    indexed=True,
                ),
                _pick("Industry", "Industry", INDUSTRIES),
                _pick("Type", "Account Type", ("Prospect", "Customer", "Partner", "Other")),
                FieldDef("NumberOfEmployees", "int", "Employees", precision=8),
                FieldDef("AnnualRevenue", "currency", "Annual Revenue", precision=18, scale=0),
                _owner(),
                FieldDef("Description", "textarea", "Account Description", length=32000),
                *_audit(),
            ],
        ),
        _obj(
            "Contact",
            "Contact",
            "Contacts",
            "003",
            [
                _id(),
                _ref("AccountId", "Account ID", ("Account",), "Account", indexed=True),
                _text("FirstName", "First Name", 40),
                _text("LastName", "Last Name", 80, nillable=False),
                _ro(_text("Name", "Full Name", 121)),
                FieldDef("Email", "email", "Email", length=80, id_lookup=True, indexed=True),
                FieldDef("Phone", "phone", "Business Phone", length=40),
                _text("Title", "Title", 128),
                _pick("LeadSource", "Lead Source", LEAD_SOURCES),
                _owner(),
                FieldDef("Description", "textarea", "Contact Description", length=32000),
                *_audit(),
            ],
        ),
        _obj(
            "Lead",
            "Lead",
            "Leads",
            "00Q",
            [
                _id(),
                _text("FirstName", "First Name", 40),
                _text("LastName", "Last Name", 80, nillable=False),
                _ro(_text("Name", "Full Name", 121)),
                _text("Title", "Title", 128),
                _text("Company", "Company", 255, nillable=False),
                FieldDef("Email", "email", "Email", length=80, id_lookup=True, indexed=True),
                FieldDef("Phone", "phone", "Phone", length=40),
                FieldDef("Website", "url", "Website", length=255),
                _pick(
                    "Status",
                    "Status",
                    LEAD_STATUSES,
                    nillable=False,
                    restricted=True,
                    default="Open - Not Contacted",
                ),
                _pick("LeadSource", "Lead Source", LEAD_SOURCES),
                _pick("Rating", "Rating", ("Hot", "Warm", "Cold")),
                _pick("Industry", "Industry", INDUSTRIES),
                FieldDef("NumberOfEmployees", "int", "Employees", precision=8),
                _owner(),
                _ro(FieldDef("IsConverted", "boolean", "Converted", nillable=False)),
                _ro(
                    _ref(
                        "ConvertedContactId",
                        "Converted Contact ID",
                        ("Contact",),
                        "ConvertedContact",
                    )
                ),
                _ro(
                    _ref(
                        "ConvertedAccountId",
                        "Converted Account ID",
                        ("Account",),
                        "ConvertedAccount",
                    )
                ),
                _ro(
                    _ref(
                        "ConvertedOpportunityId",
                        "Converted Opportunity ID",
                        ("Opportunity",),
                        "ConvertedOpportunity",
                    )
                ),
                _ro(FieldDef("ConvertedDate", "date", "Converted Date")),
                _text("Disqualified_Reason__c", "Disqualified Reason", 255, custom=True),
                FieldDef("Description", "textarea", "Description", length=32000),
                *_audit(),
            ],
        ),
        _obj(
            "Campaign",
            "Campaign",
            "Campaigns",
            "701",
            [
                _id(),
                _text("Name", "Name", 80, nillable=False),
                _pick("Type", "Type", CAMPAIGN_TYPES),
                _pick("Status", "Status", CAMPAIGN_STATUSES, default="Planned"),
                _text("Channel__c", "Channel", 255, custom=True),
                FieldDef("StartDate", "date", "Start Date"),
                FieldDef("EndDate", "date", "End Date"),
                FieldDef(
                    "BudgetedCost", "currency", "Budgeted Cost in Campaign", precision=18, scale=0
                ),
                FieldDef(
                    "ActualCost", "currency", "Actual Cost in Campaign", precision=18, scale=0
                ),
                FieldDef("IsActive", "boolean", "Active", nillable=False, default=False),
                _owner(),
                *_audit(),
            ],
        ),
        _obj(
            "Opportunity",
            "Opportunity",
            "Opportunities",
            "006",
            [
                _id(),
                _ref("AccountId", "Account ID", ("Account",), "Account", indexed=True),
                _text("Name", "Name", 120, nillable=False),
                _pick("StageName", "Stage", OPPORTUNITY_STAGES, nillable=False, restricted=True),
                FieldDef("CloseDate", "date", "Close Date", nillable=False),
                FieldDef("Amount", "currency", "Amount", precision=18, scale=2),
                FieldDef("Probability", "percent", "Probability (%)", precision=3, scale=0),
                _ro(FieldDef("IsClosed", "boolean", "Closed", nillable=False)),
                _ro(FieldDef("IsWon", "boolean", "Won", nillable=False)),
                _ref("CampaignId", "Campaign ID", ("Campaign",), "Campaign"),
                _pick("LeadSource", "Lead Source", LEAD_SOURCES),
                _pick("Type", "Opportunity Type", ("New Business", "Existing Business")),
                _owner(),
                FieldDef("Description", "textarea", "Description", length=32000),
                *_audit(),
            ],
        ),
        _obj(
            "OpportunityContactRole",
            "Opportunity Contact Role",
            "Opportunity Contact Roles",
            "00K",
            [
                _id(),
                _ref(
                    "OpportunityId",
                    "Opportunity ID",
                    ("Opportunity",),
                    "Opportunity",
                    nillable=False,
                    updateable=False,
                    indexed=True,
                ),
                _ref(
                    "ContactId", "Contact ID", ("Contact",), "Contact", nillable=False, indexed=True
                ),
                _pick("Role", "Role", CONTACT_ROLES),
                FieldDef("IsPrimary", "boolean", "Primary", nillable=False, default=False),
                *_audit(),
            ],
        ),
        _obj(
            "CampaignMember",
            "Campaign Member",
            "Campaign Members",
            "00v",
            [
                _id(),
                _ref(
                    "CampaignId",
                    "Campaign ID",
                    ("Campaign",),
                    "Campaign",
                    nillable=False,
                    updateable=False,
                    indexed=True,
                ),
                _ref("LeadId", "Lead ID", ("Lead",), "Lead", updateable=False, indexed=True),
                _ref(
                    "ContactId",
                    "Contact ID",
                    ("Contact",),
                    "Contact",
                    updateable=False,
                    indexed=True,
                ),
                _pick("Status", "Status", CAMPAIGN_MEMBER_STATUSES, default="Sent"),
                _ro(FieldDef("HasResponded", "boolean", "Responded", nillable=False)),
                FieldDef("FirstRespondedDate", "date", "First Responded Date"),
                *_audit(),
            ],
        ),
        _obj(
            "Task",
            "Task",
            "Tasks",
            "00T",
            [
                _id(),
                _ref("WhoId", "Name ID", ("Contact", "Lead"), "Who", indexed=True),
                _ref("WhatId", "Related To ID", ("Account", "Opportunity", "Campaign"), "What"),
                FieldDef("Subject", "combobox", "Subject", length=255),
                FieldDef("ActivityDate", "date", "Due Date Only"),
                _pick(
                    "Status",
                    "Status",
                    TASK_STATUSES,
                    nillable=False,
                    restricted=True,
                    default="Not Started",
                ),
                _pick(
                    "Priority",
                    "Priority",
                    TASK_PRIORITIES,
                    nillable=False,
                    restricted=True,
                    default="Normal",
                ),
                _pick("Type", "Type", TASK_TYPES),
                FieldDef("Description", "textarea", "Description", length=32000),
                _ro(FieldDef("IsClosed", "boolean", "Closed", nillable=False)),
                _owner(),
                _text(
                    "Closedloop_Key__c",
                    "Closedloop Key",
                    255,
                    custom=True,
                    external_id=True,
                    unique=True,
                    id_lookup=True,
                ),
                *_audit(),
            ],
        ),
        # CampaignInfluence's key prefix is not in the docs we could check: "0wI" is ours.
        _obj(
            "CampaignInfluence",
            "Campaign Influence",
            "Campaign Influence",
            "0wI",
            [
                _id(),
                _ref(
                    "CampaignId",
                    "Campaign ID",
                    ("Campaign",),
                    "Campaign",
                    nillable=False,
                    indexed=True,
                ),
                _ref(
                    "OpportunityId",
                    "Opportunity ID",
                    ("Opportunity",),
                    "Opportunity",
                    nillable=False,
                    indexed=True,
                ),
                _ref("ContactId", "Contact ID", ("Contact",), "Contact"),
                _text("ModelId", "Model ID", 18, nillable=False),
                FieldDef("Influence", "percent", "Influence (%)", precision=5, scale=2),
                _ro(FieldDef("RevenueShare", "currency", "Revenue Share", precision=18, scale=2)),
                *_audit(),
            ],
        ),
        _history("LeadHistory", "Lead History", "Lead", "LeadId"),
        _history("OpportunityFieldHistory", "Opportunity Field History", "Opportunity",
                 "OpportunityId"),
    ]
}  # fmt: skip

# Field history objects share one prefix; ids of the other objects name their object.
KEY_PREFIXES: dict[str, str] = {o.key_prefix: o.name for o in OBJECTS.values() if o.writable}


def object_for_prefix(record_id: str) -> str | None:
    """The sObject an id belongs to, from its 3-character key prefix (None when unknown)."""
    return KEY_PREFIXES.get(record_id[:3])
