"""The ``writeback:`` sub-sections of closedloop.yaml: what closedloop may write back to a CRM.

Both are off until their section is present (and ``enabled`` is not false). Example::

    attribution:
      writeback:                           # `closedloop attribution writeback`
        model: w_shaped                    # the attribution model written (--model wins)
        influence_model_id: 03V5e000000XyZaEAK   # Salesforce: the custom Campaign Influence model
        summary_property: closedloop_attribution # HubSpot: deal property for the summary text
        top_campaign_property: closedloop_top_campaign  # HubSpot: optional; null: not written
        summary_length: 255                # HubSpot: the summary is cut to this many characters

    analytics:
      writeback:                           # `closedloop sla writeback`
        window: 30d                        # hand-offs older than this no longer flag anyone
        field: SLA_Breached__c             # Salesforce: Checkbox on Lead and on Contact
        time_field: SLA_Breached_At__c     # Salesforce: optional Date/Time; null: not written
        property: closedloop_sla_breached  # HubSpot: contact property (single checkbox)
        time_property: closedloop_sla_breached_at  # HubSpot: optional datetime property

A Salesforce connection uses the Salesforce keys, a HubSpot connection the HubSpot ones; the
defaults are the names ``closedloop check hubspot --fix`` creates.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from sync.analytics.settings import parse_duration
from sync.attribution.models import Model

__all__ = ["AttributionWriteback", "SlaWriteback"]

_SF_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_SF_CUSTOM_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_]*__c")
_HS_PROPERTY = re.compile(r"[a-z][a-z0-9_]*")


def _salesforce_id(value: Any) -> Any:
    if isinstance(value, str) and not _SF_ID.fullmatch(value.strip()):
        raise ValueError(
            "expected a Salesforce record id (15 or 18 letters and digits), e.g. the Id of "
            "SELECT Id, DeveloperName FROM CampaignInfluenceModel"
        )
    return value.strip() if isinstance(value, str) else value


def _custom_field(value: str) -> str:
    if not _SF_CUSTOM_FIELD.fullmatch(value):
        raise ValueError("expected the API name of a custom field, like SLA_Breached__c")
    return value


def _property(value: str) -> str:
    if not _HS_PROPERTY.fullmatch(value):
        raise ValueError(
            "expected a HubSpot property name: lowercase letters, digits and underscores, "
            "starting with a letter"
        )
    return value


def _model(value: str) -> str:
    known = [m.value for m in Model]
    if value not in known:
        raise ValueError(f"expected an attribution model: {', '.join(known)}")
    return value


def _window(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 7d, 30d or 12h")
    parse_duration(value)
    return value.strip()


SalesforceId = Annotated[str, BeforeValidator(_salesforce_id)]
CustomField = Annotated[str, AfterValidator(_custom_field)]
Property = Annotated[str, AfterValidator(_property)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AttributionWriteback(_Strict):
    """Write a stored attribution run back: Salesforce Campaign Influence, HubSpot deal text."""

    enabled: bool = True
    model: Annotated[str, AfterValidator(_model)] = "w_shaped"
    influence_model_id: SalesforceId | None = None
    summary_property: Property = "closedloop_attribution"
    top_campaign_property: Property | None = "closedloop_top_campaign"
    summary_length: int = Field(default=255, ge=40, le=65_536)


class SlaWriteback(_Strict):
    """Flag people whose latest hand-off to sales breached the SLA; clear it once it does not."""

    enabled: bool = True
    window: Annotated[str, BeforeValidator(_window)] = "30d"
    field: CustomField = "SLA_Breached__c"
    time_field: CustomField | None = "SLA_Breached_At__c"
    property: Property = "closedloop_sla_breached"
    time_property: Property | None = "closedloop_sla_breached_at"
