"""The Salesforce emulator's org schema as plain data: objects, fields, picklists, key prefixes.

Other parts read this too (mapping validation uses field lengths and picklist values), so it holds
data only: no store, no HTTP. Field attributes follow the names of the real describe result
(``createable``, ``nillable``, ``externalId``, ``referenceTo``...). The org is a plain Enterprise
org with the standard fields closedloop touches plus its custom fields (``Closedloop_Key__c`` on
Task, ``Domain__c`` on Account, ``Disqualified_Reason__c`` and ``Recycle_Reason__c`` on Lead,
``Channel__c`` on Campaign): its admin keeps why sales disqualified a lead apart from why it was
recycled, and tracks the history of both.

``OBJECTS`` is the org as it starts; each ``SalesforceStore`` keeps its own copy, to which an
admin (or a test) adds custom fields the way a real org gets them: the Tooling API's
``CustomField`` create, whose ``Metadata`` is the Metadata API's CustomField
(https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_customfield.htm,
https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/customfield.htm).
``custom_field`` turns that body into the ``FieldDef`` describe then reports; Task and Event
custom fields are defined on ``Activity`` and appear on both (Task only here: the sandbox has
no Event). ``describe_field`` is one field as the describe call answers it.

Field-level security: a field deployed through the Tooling or Metadata API is readable and
editable by no profile until an admin grants it, and a user does not see a field he has no read
access to (not in describe, not in SOQL, not writable). Access is granted with a ``PermissionSet``
assigned to the user (``PermissionSetAssignment``: ``AssigneeId``, ``PermissionSetId``) holding a
``FieldPermissions`` row (``ParentId``, ``SobjectType``, ``Field`` = ``Task.Campaign_Name__c``,
``PermissionsRead``, ``PermissionsEdit``; an activity field is granted on Task and Event apart)
(https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_fieldpermissions.htm,
https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/meta_profile.htm). The
stock fields of this org are granted to the integration user's profile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "ACTIVITY_OBJECTS",
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
    "CustomFieldError",
    "FieldDef",
    "ObjectDef",
    "custom_field",
    "describe_field",
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
    # Lower-cased API name -> field, filled on first use (each copy of an object has its own).
    lower: dict[str, FieldDef] = field(default_factory=dict, init=False, compare=False, repr=False)

    def field_ci(self, name: str) -> FieldDef | None:
        """The field whose API name matches ``name`` case-insensitively (SOQL and JSON allow it)."""
        found = self.fields.get(name)
        if found is not None:
            return found
        if not self.lower:
            self.lower.update((n.lower(), f) for n, f in self.fields.items())
        return self.lower.get(name.lower())

    def with_field(self, new: FieldDef) -> ObjectDef:
        """A copy of this object with ``new`` added (custom fields)."""
        return replace(self, fields={**self.fields, new.name: new})

    def relationship_ci(self, name: str) -> FieldDef | None:
        """The reference field whose relationship name matches ``name`` case-insensitively."""
        lowered = name.lower()
        for candidate in self.fields.values():
            if candidate.relationship_name and candidate.relationship_name.lower() == lowered:
                return candidate
        return None


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


def _opted_out() -> FieldDef:
    return FieldDef("HasOptedOutOfEmail", "boolean", "Email Opt Out", nillable=False,
                    default=False)  # fmt: skip


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
        "Recycle_Reason__c": "Recycle_Reason__c",
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
                _text("MailingCountry", "Mailing Country", 80),
                _pick("LeadSource", "Lead Source", LEAD_SOURCES),
                _opted_out(),
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
                _text("Country", "Country", 80),
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
                _opted_out(),
                # A Lead's owner is a User or a queue (a Group of type Queue that holds Leads).
                replace(_owner(), reference_to=("Group", "User")),
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
                _text("Recycle_Reason__c", "Recycle Reason", 255, custom=True),
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
        # Field-level security (see the module docstring). The key prefixes (0PS, 0Pa, 01k) are
        # the ones ids of these objects carry in orgs; the docs we could check do not list them.
        _obj(
            "PermissionSet",
            "Permission Set",
            "Permission Sets",
            "0PS",
            [
                _id(),
                _text("Name", "Permission Set Name", 80, nillable=False, unique=True),
                _text("Label", "Permission Set Label", 80, nillable=False),
                _text("Description", "Description", 255),
                _ro(FieldDef("IsOwnedByProfile", "boolean", "Is Owned By Profile", nillable=False)),
                _ro(FieldDef("IsCustom", "boolean", "Is Custom", nillable=False, default=True)),
                *_audit(),
            ],
        ),
        _obj(
            "PermissionSetAssignment",
            "Permission Set Assignment",
            "Permission Set Assignments",
            "0Pa",
            [
                _id(),
                _ref("AssigneeId", "Assignee ID", ("User",), "Assignee", nillable=False,
                     updateable=False),
                _ref("PermissionSetId", "Permission Set ID", ("PermissionSet",), "PermissionSet",
                     nillable=False, updateable=False),
                *_audit(),
            ],
        ),
        _obj(
            "FieldPermissions",
            "Field Permissions",
            "Field Permissions",
            "01k",
            [
                _id(),
                _ref("ParentId", "Parent ID", ("PermissionSet",), "Parent", nillable=False,
                     updateable=False),
                _text("SobjectType", "SObject Type Name", 40, nillable=False, updateable=False),
                _text("Field", "Field Name", 255, nillable=False, updateable=False),
                FieldDef("PermissionsRead", "boolean", "Read Field", nillable=False, default=False),
                FieldDef("PermissionsEdit", "boolean", "Edit Field", nillable=False, default=False),
                *_audit(),
            ],
        ),
        # Queues (Setup > Queues): a Group of type Queue, and one QueueSobject per object the
        # queue may own ("Supported Objects"; Leads, Cases, custom objects, never Contacts).
        _obj(
            "Group",
            "Group",
            "Groups",
            "00G",
            [
                _id(),
                _text("Name", "Name", 40, nillable=False),
                _text("DeveloperName", "Developer Name", 80, nillable=False),
                _pick("Type", "Type", ("Queue", "Regular"), nillable=False, restricted=True),
                *_audit(),
            ],
        ),
        _obj(
            "QueueSobject",
            "Queue Sobject",
            "Queue Sobjects",
            "03g",
            [
                _id(),
                _ref("QueueId", "Group ID", ("Group",), "Queue", nillable=False, indexed=True),
                _text("SobjectType", "Sobject Type", 40, nillable=False),
                *_audit(),
            ],
        ),
        # Assignment rules are setup metadata: read through the API, written in Setup (the
        # sandbox's ``SalesforceStore.add_assignment_rule``).
        ObjectDef(
            "AssignmentRule",
            "Assignment Rule",
            "Assignment Rules",
            "01Q",
            {
                f.name: f
                for f in [
                    _id(),
                    _ro(_text("Name", "Name", 120, nillable=False)),
                    _ro(_text("SobjectType", "Sobject Type", 40, nillable=False)),
                    _ro(FieldDef("Active", "boolean", "Active", nillable=False, default=False)),
                    *_audit(),
                ]
            },
            writable=False,
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


# ------------------------------------------------------------------------------ describe


_SOAP_TYPES = {
    "id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "int": "xsd:int",
    "double": "xsd:double", "currency": "xsd:double", "percent": "xsd:double",
    "date": "xsd:date", "datetime": "xsd:dateTime", "anyType": "xsd:anyType",
}  # fmt: skip


def describe_field(f: FieldDef) -> dict[str, Any]:
    """One field as ``GET /sobjects/{Object}/describe`` lists it."""
    return {
        "name": f.name,
        "label": f.label,
        "type": f.type,
        "soapType": _SOAP_TYPES.get(f.type, "xsd:string"),
        "length": f.length,
        "byteLength": f.length * 3,
        "precision": f.precision,
        "scale": f.scale,
        "digits": f.precision if f.type == "int" else 0,
        "nillable": f.nillable,
        "createable": f.createable,
        "updateable": f.updateable,
        "defaultedOnCreate": f.default is not None or f.type == "boolean" or not f.createable,
        "defaultValue": f.default if f.default != "$user" else None,
        "externalId": f.external_id,
        "idLookup": f.id_lookup,
        "unique": f.unique,
        "caseSensitive": False,
        "custom": f.custom,
        "calculated": False,
        "filterable": True,
        "sortable": f.type != "textarea",
        "restrictedPicklist": f.restricted,
        "picklistValues": [
            {
                "active": True,
                "defaultValue": value == f.default,
                "label": value,
                "validFor": None,
                "value": value,
            }
            for value in f.picklist
        ],
        "referenceTo": list(f.reference_to),
        "relationshipName": f.relationship_name,
        "polymorphicForeignKey": len(f.reference_to) > 1,
    }


# ------------------------------------------------------------------------------ custom fields

# Custom fields of Task and Event are created on Activity, the object both share; Salesforce
# offers no field creation on Task or Event themselves.
ACTIVITY_OBJECTS = ("Task",)
_CUSTOM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*__c")
# Metadata API CustomField types the sandbox creates -> (describe type, fixed length or None).
_CUSTOM_TYPES: dict[str, tuple[str, int | None]] = {
    "Text": ("string", None), "TextArea": ("textarea", 255), "LongTextArea": ("textarea", None),
    "Email": ("email", 80), "Phone": ("phone", 40), "Url": ("url", 255),
    "Number": ("double", 0), "Currency": ("currency", 0), "Percent": ("percent", 0),
    "Checkbox": ("boolean", 0), "Date": ("date", 0), "DateTime": ("datetime", 0),
    "Picklist": ("picklist", 255),
}  # fmt: skip
_TEXT_MAX = 255
_LONG_TEXT = (256, 131_072)


class CustomFieldError(Exception):
    """A CustomField create the org refuses: Salesforce's error code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def custom_field(
    objects: dict[str, ObjectDef], full_name: Any, metadata: Any
) -> tuple[tuple[str, ...], FieldDef]:
    """(objects that get it, the field) of a Tooling API ``CustomField`` create body.

    ``full_name`` is ``Object.Name__c`` (``Activity.X__c`` for Task/Event); ``metadata`` the
    Metadata API CustomField (``type``, ``label``, ``length``, ``precision``, ``scale``,
    ``required``, ``externalId``, ``unique``, ``defaultValue``, ``valueSet``).
    """
    if not isinstance(full_name, str) or full_name.count(".") != 1:
        raise CustomFieldError(
            "INVALID_FIELD", f"FullName must be Object.Field__c, got {full_name!r}"
        )
    if not isinstance(metadata, dict):
        raise CustomFieldError("JSON_PARSER_ERROR", "Metadata must be a CustomField object")
    sobject, name = full_name.split(".")
    targets = ACTIVITY_OBJECTS if sobject == "Activity" else (sobject,)
    if sobject in ("Task", "Event"):
        raise CustomFieldError(
            "FIELD_INTEGRITY_EXCEPTION",
            f"Custom fields of {sobject} are created on Activity: use Activity.{name}",
        )
    if any(t not in objects or not objects[t].writable for t in targets):
        raise CustomFieldError("INVALID_TYPE", f"No such sObject that accepts fields: {sobject}")
    if not _CUSTOM_NAME.fullmatch(name):
        raise CustomFieldError(
            "FIELD_INTEGRITY_EXCEPTION",
            f"Field name {name!r}: letters, digits and single underscores, ending in __c",
        )
    if any(objects[t].field_ci(name) is not None for t in targets):
        developer = name.removesuffix("__c")
        raise CustomFieldError(
            "DUPLICATE_DEVELOPER_NAME",
            f"There is already a field named {developer} on {sobject}.",
        )
    kind = str(metadata.get("type") or "")
    if kind not in _CUSTOM_TYPES:
        raise CustomFieldError(
            "FIELD_INTEGRITY_EXCEPTION",
            f"Field type {kind!r} is not one the sandbox creates: {', '.join(_CUSTOM_TYPES)}",
        )
    label = metadata.get("label")
    if not isinstance(label, str) or not label.strip():
        raise CustomFieldError("REQUIRED_FIELD_MISSING", "Required field is missing: label")
    describe_type, fixed = _CUSTOM_TYPES[kind]
    length = fixed if fixed is not None else _length(kind, metadata.get("length"))
    picklist: tuple[str, ...] = ()
    restricted = False
    default: object = None
    if kind == "Picklist":
        picklist, restricted, default = _value_set(metadata.get("valueSet"))
    if kind == "Checkbox":
        default = str(metadata.get("defaultValue", "false")).lower() == "true"
    precision, scale = 0, 0
    if kind in ("Number", "Currency", "Percent"):
        precision = int(metadata.get("precision") or 18)
        scale = int(metadata.get("scale") or 0)
        if not 1 <= precision <= 18 or not 0 <= scale <= precision:
            raise CustomFieldError(
                "FIELD_INTEGRITY_EXCEPTION", "Precision must be 1-18 and scale 0-precision"
            )
    unique = bool(metadata.get("unique", False))
    external = bool(metadata.get("externalId", False))
    required = bool(metadata.get("required", False)) and kind != "Checkbox"
    created = FieldDef(
        name, describe_type, label.strip(), length=length,
        nillable=not required and kind != "Checkbox",
        external_id=external, id_lookup=external or unique, unique=unique, custom=True,
        picklist=picklist, restricted=restricted, default=default, precision=precision,
        scale=scale, indexed=external or unique,
    )  # fmt: skip
    return targets, created


def _length(kind: str, raw: Any) -> int:
    low, high = (1, _TEXT_MAX) if kind == "Text" else _LONG_TEXT
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise CustomFieldError(
            "FIELD_INTEGRITY_EXCEPTION", f"Length: a {kind} field needs a length of {low}-{high}"
        )
    return raw


def _value_set(raw: Any) -> tuple[tuple[str, ...], bool, object]:
    definition = (raw or {}).get("valueSetDefinition") if isinstance(raw, dict) else None
    values = (definition or {}).get("value") if isinstance(definition, dict) else None
    if not isinstance(values, list) or not values:
        raise CustomFieldError(
            "FIELD_INTEGRITY_EXCEPTION", "A Picklist needs valueSet.valueSetDefinition.value"
        )
    names = tuple(str(v.get("fullName")) for v in values if isinstance(v, dict))
    default = next(
        (str(v["fullName"]) for v in values if isinstance(v, dict) and v.get("default")), None
    )
    return names, bool(raw.get("restricted", False)), default
