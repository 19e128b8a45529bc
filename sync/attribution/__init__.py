"""Attribution: which touches earned which share of which opportunity, under nine models.

Pure models over plain records (``records``, ``graph``, ``models``, ``allocation``) usable from
Python without a database; ``sync.attribution.ledger`` runs them over the ledger and stores
versioned runs. Definitions and the rounding rule are in ``sync.attribution.models``.
"""

from __future__ import annotations

from sync.attribution.graph import IdentityGraph
from sync.attribution.models import (
    ALGORITHM_VERSION,
    DEFAULT_COUNTED_KINDS,
    SHARE_UNITS,
    AttributionParams,
    Attributor,
    Credit,
    Milestone,
    Model,
    OpportunityAttribution,
    PositionWeights,
    attribute,
)
from sync.attribution.records import (
    AttributionOpportunity,
    AttributionPerson,
    AttributionRole,
    AttributionTouch,
    Dataset,
    from_connector_records,
)

__all__ = [
    "ALGORITHM_VERSION",
    "DEFAULT_COUNTED_KINDS",
    "SHARE_UNITS",
    "AttributionOpportunity",
    "AttributionParams",
    "AttributionPerson",
    "AttributionRole",
    "AttributionTouch",
    "Attributor",
    "Credit",
    "Dataset",
    "IdentityGraph",
    "Milestone",
    "Model",
    "OpportunityAttribution",
    "PositionWeights",
    "attribute",
    "from_connector_records",
]
