"""Campaign Influence write-back: make a custom influence model's rows match an attribution run.

``InfluenceWriter(client, model_id)`` owns one custom Campaign Influence model (its
``CampaignInfluenceModel`` Id, created by an admin in Setup > Campaign Influence). ``sync``
reads the model's existing rows of the given opportunities (``OpportunityId IN (...)`` packed
to the SOQL length limit, five queries per counted call), compares them with the wanted rows,
and writes only the difference through sObject Collections (five collections of 200 per
counted call): deletes of rows the run no longer has (and duplicates), updates of changed
``Influence`` percentages, creates of missing rows. Running it again with the same rows makes
the read calls only.

A row is identified by (opportunity, campaign, contact): Salesforce does not let
``OpportunityId``, ``CampaignId`` or ``ModelId`` change after create, so a row whose contact
changed is deleted and created again. ``RevenueShare`` is computed by Salesforce
(``Influence`` x the opportunity's ``Amount``) and is read, never written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from connectors.base import CheckResult
from connectors.errors import ClosedloopError, RecordRejected
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.collections import Write, query_rows, write_records
from connectors.salesforce.identity import in_list_queries, soql_string

__all__ = [
    "InfluencePlan",
    "InfluenceRow",
    "InfluenceSync",
    "InfluenceWriter",
    "check_influence",
    "plan_influence",
]

SOBJECT = "CampaignInfluence"
_CENT = Decimal("0.01")
_FIELDS = "Id, OpportunityId, CampaignId, ContactId, Influence, RevenueShare"
_SETUP = (
    "enable Customizable Campaign Influence (Setup > Campaign Influence > Settings), add a "
    "custom model, set attribution.writeback.influence_model_id to its Id (SELECT Id, "
    "DeveloperName FROM CampaignInfluenceModel), and give the integration user read, create, "
    "edit and delete on Campaign Influence"
)


@dataclass(frozen=True, slots=True)
class InfluenceRow:
    """One Campaign Influence row: a campaign's share (percent) of an opportunity via a contact."""

    opportunity_id: str
    campaign_id: str
    contact_id: str | None
    influence: Decimal  # percent, two decimals

    @property
    def key(self) -> str:
        """``opportunity/campaign/contact``: the row's identity, and its dead-letter key."""
        return f"{self.opportunity_id}/{self.campaign_id}/{self.contact_id or '-'}"


@dataclass
class InfluencePlan:
    """The writes that make the model's rows of some opportunities equal the wanted rows."""

    create: list[InfluenceRow] = field(default_factory=list)
    update: list[tuple[str, InfluenceRow]] = field(default_factory=list)  # (record id, row)
    delete: list[tuple[str, str]] = field(default_factory=list)  # (record id, row key)
    unchanged: int = 0

    @property
    def changes(self) -> int:
        """How many records the plan writes."""
        return len(self.create) + len(self.update) + len(self.delete)


@dataclass
class InfluenceSync:
    """What ``InfluenceWriter.sync`` did (or, dry, would do)."""

    plan: InfluencePlan
    existing: int = 0
    written: dict[str, int] = field(default_factory=dict)
    rejected: list[RecordRejected] = field(default_factory=list)
    # Records still row-locked after the retries: written by the next run, not dead letters.
    deferred: list[RecordRejected] = field(default_factory=list)
    read_calls: int = 0
    write_calls: int = 0


def _percent(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(_CENT)


def _key(opportunity: Any, campaign: Any, contact: Any) -> str:
    return f"{opportunity}/{campaign}/{contact or '-'}"


def plan_influence(
    wanted: Iterable[InfluenceRow], existing: Iterable[Mapping[str, Any]]
) -> InfluencePlan:
    """Deletes, updates and creates that turn ``existing`` records into ``wanted`` rows.

    ``existing`` are CampaignInfluence records (``Id``, ``OpportunityId``, ``CampaignId``,
    ``ContactId``, ``Influence``) of exactly the opportunities ``wanted`` speaks for.
    """
    plan = InfluencePlan()
    want = {row.key: row for row in wanted}
    seen: set[str] = set()
    for record in sorted(existing, key=lambda r: str(r.get("Id"))):
        key = _key(record.get("OpportunityId"), record.get("CampaignId"), record.get("ContactId"))
        row = want.get(key)
        if row is None or key in seen:
            plan.delete.append((str(record["Id"]), key))
            continue
        seen.add(key)
        if _percent(record.get("Influence")) == row.influence:
            plan.unchanged += 1
        else:
            plan.update.append((str(record["Id"]), row))
    plan.create = [row for key, row in want.items() if key not in seen]
    return plan


class InfluenceWriter:
    """One custom Campaign Influence model of one org (see the module docstring)."""

    def __init__(self, client: SalesforceClient, model_id: str) -> None:
        self.client = client
        self.model_id = model_id

    def existing(self, opportunity_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The model's rows of these opportunities (five IN-list queries per call)."""
        ids = sorted(set(opportunity_ids))
        if not ids:
            return []
        prefix = (
            f"SELECT {_FIELDS} FROM {SOBJECT} "  # noqa: S608 - ids are quoted by soql_string
            f"WHERE ModelId = {soql_string(self.model_id)} AND OpportunityId IN ("
        )
        queries = in_list_queries(prefix, ids, self.client.settings.max_soql_chars)
        return query_rows(self.client, queries)

    def sync(
        self,
        opportunity_ids: Iterable[str],
        wanted: Sequence[InfluenceRow],
        *,
        dry_run: bool = False,
    ) -> InfluenceSync:
        """Make the model's rows of ``opportunity_ids`` equal ``wanted`` (rows of others stay)."""
        covered = set(opportunity_ids) | {row.opportunity_id for row in wanted}
        before = self.client.api_calls
        existing = self.existing(covered)
        result = InfluenceSync(plan_influence(wanted, existing), existing=len(existing))
        result.read_calls = self.client.api_calls - before
        if dry_run or not result.plan.changes:
            return result
        plan = result.plan
        writes = [Write("delete", SOBJECT, key, {"Id": rid}) for rid, key in plan.delete]
        writes += [
            Write("update", SOBJECT, row.key, {"Id": rid, "Influence": float(row.influence)})
            for rid, row in plan.update
        ]
        writes += [
            Write(
                "create",
                SOBJECT,
                row.key,
                {
                    "OpportunityId": row.opportunity_id,
                    "CampaignId": row.campaign_id,
                    "ContactId": row.contact_id,
                    "ModelId": self.model_id,
                    "Influence": float(row.influence),
                },
            )
            for row in plan.create
        ]
        outcome = write_records(self.client, writes)
        result.written = outcome.written
        result.rejected = outcome.rejected
        result.deferred = outcome.deferred
        result.write_calls = outcome.calls
        return result


def check_influence(client: SalesforceClient, model_id: str | None) -> CheckResult:
    """Whether the integration user can read and write the model's Campaign Influence rows."""
    name = "campaign influence"
    if model_id is None:
        return CheckResult(
            name, False, "attribution.writeback.influence_model_id is not set", _SETUP
        )
    try:
        described = client.call("GET", "sobjects", budgeted=False)
    except ClosedloopError as exc:
        return CheckResult(name, False, str(exc), "give the integration user View Setup")
    flags = next(
        (
            o
            for o in described.get("sobjects", [])
            if isinstance(o, dict) and o.get("name") == SOBJECT
        ),
        None,
    )
    wanted = ("queryable", "createable", "updateable", "deletable")
    missing = [f for f in wanted if not (flags and flags.get(f))]
    if missing:
        detail = (
            f"{SOBJECT} is not available to the integration user"
            if flags is None
            else f"the integration user lacks {', '.join(missing)} on {SOBJECT}"
        )
        return CheckResult(name, False, detail, _SETUP)
    return CheckResult(name, True, f"{SOBJECT} writable; model {model_id}")
