"""Write-back of closedloop's conclusions to the CRM: attribution (Salesforce Campaign Influence,
HubSpot deal properties) and SLA breach flags (a checkbox on Lead/Contact, a contact property).

Every write-back computes what the CRM should hold from the ledger, reads what it holds, and
writes only the difference: running it again changes nothing. See ``attribution`` and ``sla``.
"""

from __future__ import annotations

from sync.writeback.settings import AttributionWriteback, SlaWriteback

__all__ = ["AttributionWriteback", "SlaWriteback"]
