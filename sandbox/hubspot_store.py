"""The HubSpot emulator's in-memory portal: CRM objects, properties, associations, lists, events.

Every method takes and returns JSON-shaped data (HubSpot's own field names) and raises
``HubSpotApiError`` with the vendor's status, category and message; ``hubspot.py`` only moves
bytes. Callers hold ``lock`` around every call. Strictness mirrors the real API:

- unknown properties (PROPERTY_DOESNT_EXIST), enumeration values outside the options
  (INVALID_OPTION), read-only properties (READ_ONLY_VALUE), unknown owners (INVALID_OWNER_ID),
  bad numbers/dates/e-mails and missing required properties (hs_timestamp on engagements);
- batches above 100 inputs are a 400 VALIDATION_ERROR;
- batch create is all-or-nothing (one bad record fails the call: 400, or 409 CONFLICT for an
  e-mail or unique value already used, "Existing ID: N") unless every input carries its own
  ``objectWriteTraceId``: then the valid inputs are created and the invalid ones come back in a
  207 multi-status body, each error naming its input's trace id in ``context``
  (developers.hubspot.com/docs/api-reference/error-handling, "Multi-status errors"); batch
  read/update/upsert report per-record failures in a 207 body with ``errors`` and ``numErrors``;
- unique-value properties (``hasUniqueValue``) exist for contacts, companies, deals, tickets and
  custom objects, never for activities (calls, emails, meetings, notes, tasks): creating one on
  an activity is a 400 (developers.hubspot.com/changelog/unique-properties-for-contacts), so
  nothing ever deduplicates activities here, as in HubSpot;
- search pages stop at 10,000 results (``after`` >= 10000 is a 400) and a ``query`` holds at
  most 3,000 characters; a record is found by search only ``search_index_lag_s`` after it was
  created: HubSpot's search index trails writes by seconds (third-party reports; 0 by default,
  tests of recovery raise it); contacts are found by their modification time on
  ``lastmodifieddate`` only (``_UNINDEXED``);
- v4 association batch reads page each record's associations on their own (``paging.next.after``
  per result row, asked again as the input's ``after``);
- timeline event batches take at most 100 events; custom event occurrences keep HubSpot's
  documented limits (``pe<HubID>_<name>`` event names, at most 50 properties with lowercase
  names of up to 50 characters, values of up to 256 characters or 1,024 for url/referrer/link
  properties, a readable ``occurredAt``), and a batch of them is refused whole for one bad one.

Poison records, a test hook only: marketing e-mail events and form submissions made from the
seed world are well-formed. ``PortalData.plant_email_event`` and ``plant_submission`` put one in
exactly as given (no id, a ``created`` that is no number, a NUL in a value ...) at a chosen time,
served by the events and submissions endpoints in their newest-first order like any other.

The portal's parts, by API family: ``hubspot_records`` (state, property checks, storage,
rendering, linking), ``hubspot_objects`` (CRM objects and search), ``hubspot_properties``
(properties and owners), ``hubspot_lists``, ``hubspot_associations`` (v4) and ``hubspot_events``
(timeline, behavioral and marketing events). ``PortalData`` is all of them.
"""

from __future__ import annotations

from sandbox.hubspot_associations import PortalAssociations
from sandbox.hubspot_events import PortalEvents
from sandbox.hubspot_lists import PortalLists
from sandbox.hubspot_objects import PortalObjects
from sandbox.hubspot_properties import PortalProperties
from sandbox.hubspot_records import (
    BATCH_LIMIT,
    BEHAVIORAL_BATCH_LIMIT,
    HISTORY_BATCH_LIMIT,
    SEARCH_RESULT_CAP,
    TIMELINE_BATCH_LIMIT,
    HubSpotApiError,
)

__all__ = [
    "BATCH_LIMIT",
    "BEHAVIORAL_BATCH_LIMIT",
    "HISTORY_BATCH_LIMIT",
    "SEARCH_RESULT_CAP",
    "TIMELINE_BATCH_LIMIT",
    "HubSpotApiError",
    "PortalData",
]


class PortalData(PortalObjects, PortalProperties, PortalLists, PortalAssociations, PortalEvents):
    """All CRM data of one emulated HubSpot portal (not thread-safe: callers hold ``lock``)."""
