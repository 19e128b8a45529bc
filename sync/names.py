"""Names a report can show without hand-made maps: programs -> CRM campaigns, owner ids -> reps.

Touches name their campaign the way their source does (Marketo: a program id such as ``2010``)
while spend and deals sit on CRM campaigns; people, accounts and deals name their rep by a CRM
owner id. Both are derived from what the systems say themselves:

- ``refresh_programs`` (run by a touches pipeline after its pull, only when a touch names a
  program the ledger does not know yet): the source's programs (Marketo asset API, 200 a call)
  into ``source_program``, with the Salesforce campaign each is synced to (``sfdcId``).
- The reconcile pipelines copy the CRMs' users (Salesforce User, HubSpot owners) into
  ``crm_user`` (``sync.pipelines.reconcile``).
- ``derive_names`` reads both for a report: a program goes to the CRM campaign it is synced to,
  else to the CRM campaign of the same name (listed for review), else it stays unmapped; an
  owner id gets its user's name. Explicit ``analytics.campaign_aliases`` and
  ``analytics.rep_names`` win over everything derived. What is still unmapped is listed with the
  one setting that fixes it (the report's "data quality" box).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Table, func, select

from connectors.errors import ClosedloopError
from sync.ledger.models import CampaignRow, CrmUserRow, SourceProgramRow, TouchRow
from sync.ledger.types import utcnow

if TYPE_CHECKING:
    from sync.pipelines.context import RunContext

__all__ = ["CampaignMatch", "DerivedNames", "derive_names", "refresh_programs"]

_PROGRAM: Table = SourceProgramRow.__table__  # type: ignore[attr-defined]
_USER: Table = CrmUserRow.__table__  # type: ignore[attr-defined]
_TOUCH: Table = TouchRow.__table__  # type: ignore[attr-defined]
_CAMPAIGN: Table = CampaignRow.__table__  # type: ignore[attr-defined]


def refresh_programs(ctx: RunContext, source: Any, source_name: str) -> None:
    """Read the programs of ``source`` into the ledger when a touch of it names an unknown one
    (a connector without ``programs`` is skipped). A failure is a note, not the run's failure:
    the touches are safe, only the report's campaign names wait for the next run."""
    lister = getattr(source, "programs", None)
    if not callable(lister):
        return
    known = select(_PROGRAM.c.external_id).where(_PROGRAM.c.source == source_name)
    query = (
        select(_TOUCH.c.campaign)
        .where(
            _TOUCH.c.source == source_name,
            _TOUCH.c.campaign.is_not(None),
            _TOUCH.c.campaign.not_in(known),
        )
        .limit(1)
    )
    with ctx.engine.connect() as conn:
        if conn.execute(query).first() is None:
            return
    try:
        programs = list(lister())
    except ClosedloopError as exc:
        ctx.note(
            f"could not read {source_name}'s programs (campaign names of reports): {exc}; a "
            "Marketo API user needs a role with Read-Only Assets for this"
        )
        return
    if not programs:
        return
    from sync.pipelines.reconcile import upsert_rows

    now = utcnow()
    rows = [
        {
            "source": source_name,
            "external_id": p.external_id,
            "name": p.name,
            "channel": p.channel,
            "crm_campaign_id": p.crm_campaign_id,
            "crm_campaign_name": p.crm_campaign_name,
            "pulled_at": now,
        }
        for p in programs
    ]
    with ctx.transaction() as conn:
        upsert_rows(conn, _PROGRAM, rows, ("source", "external_id"))
    ctx.add("programs", len(rows))


@dataclass(frozen=True)
class CampaignMatch:
    """How a touch campaign (a program id) was matched to a CRM campaign."""

    reference: str  # as touches name it: "2010"
    program: str | None  # the program's name, when the source told it
    campaign: str | None  # the CRM campaign's external id; None: unmapped
    campaign_name: str | None
    how: str  # "setting" | "crm sync" | "name" | "unmapped"
    touches: int = 0


@dataclass
class DerivedNames:
    """Aliases and rep names for a report, and what is still unmapped (with its fix)."""

    campaign_aliases: dict[str, str] = field(default_factory=dict)
    rep_names: dict[str, str] = field(default_factory=dict)
    matches: list[CampaignMatch] = field(default_factory=list)
    unnamed_reps: list[tuple[str, int]] = field(default_factory=list)  # (owner id, records)

    def count_unnamed(self, owner_ids: Iterable[str | None]) -> None:
        """Note the owners among ``owner_ids`` (one per record) that have no name."""
        counted: dict[str, int] = {}
        for owner in owner_ids:
            if owner and owner not in self.rep_names:
                counted[owner] = counted.get(owner, 0) + 1
        self.unnamed_reps = sorted(counted.items())

    def by_name(self) -> list[CampaignMatch]:
        """Programs matched to a CRM campaign by name only: to review."""
        return [m for m in self.matches if m.how == "name"]

    def unmapped(self) -> list[CampaignMatch]:
        """Touch campaigns that reach no CRM campaign."""
        return [m for m in self.matches if m.how == "unmapped"]

    def quality(self) -> dict[str, Any]:
        """The report's "data quality" section: each open item with the setting that fixes it."""
        items: list[dict[str, Any]] = []
        for match in self.unmapped():
            label = f"{match.reference} ({match.program})" if match.program else match.reference
            items.append(
                {
                    "kind": "campaign",
                    "what": f"touch campaign {label} is no CRM campaign: "
                    f"{match.touches:,} touches get no spend, deals or ROI",
                    "fix": f"analytics.campaign_aliases: {{{_yaml_key(match.reference)}: "
                    "<CRM campaign name or id>}",
                }
            )
        for owner, count in self.unnamed_reps:
            items.append(
                {
                    "kind": "rep",
                    "what": f"owner {owner} has no name in the CRM's users: shown as its id "
                    f"({count:,} records)",
                    "fix": f"analytics.rep_names: {{{_yaml_key(owner)}: <the rep's name>}}",
                }
            )
        review = [
            {
                "program": m.reference,
                "program_name": m.program,
                "campaign": m.campaign,
                "campaign_name": m.campaign_name,
                "fix": f"analytics.campaign_aliases: {{{_yaml_key(m.reference)}: "
                "<another CRM campaign>} if this is wrong",
            }
            for m in self.by_name()
        ]
        synced = sum(1 for m in self.matches if m.how == "crm sync")
        return {
            "items": items,
            "matched_by_name": review,
            "matched_by_crm_sync": synced,
            "named_reps": len(self.rep_names),
        }


def _yaml_key(text: str) -> str:
    return f'"{text}"' if not text.replace("_", "").isalnum() else text


def derive_names(
    engine: Engine,
    *,
    crms: Collection[str] | None,
    aliases: Mapping[str, str],
    rep_names: Mapping[str, str],
    owner_ids: Iterable[str | None] = (),
) -> DerivedNames:
    """Campaign aliases and rep names for a report over the CRMs ``crms`` (None: all), the
    explicit ``aliases`` and ``rep_names`` (settings) winning; ``owner_ids`` are the owners the
    report shows (to list those left without a name)."""
    with engine.connect() as conn:
        campaigns = list(
            conn.execute(
                select(_CAMPAIGN.c.crm, _CAMPAIGN.c.external_id, _CAMPAIGN.c.name).where(
                    _CAMPAIGN.c.deleted.is_(False)
                )
            )
        )
        programs = list(conn.execute(select(_PROGRAM)))
        touches: dict[str, int] = dict(
            conn.execute(
                select(_TOUCH.c.campaign, func.count())
                .where(_TOUCH.c.campaign.is_not(None))
                .group_by(_TOUCH.c.campaign)
            ).all()
        )
        users = list(conn.execute(select(_USER)))
    chosen = [c for c in campaigns if crms is None or c.crm in crms]
    ids = {c.external_id: c.name for c in chosen}
    names: dict[str, tuple[str, str]] = {}
    for c in chosen:
        names.setdefault(c.name.strip().casefold(), (c.external_id, c.name))
    out = DerivedNames()
    known_programs = {p.external_id: p for p in programs}
    for reference in sorted(set(touches) | set(known_programs), key=_natural):
        count = int(touches.get(reference, 0))
        program = known_programs.get(reference)
        program_name = program.name if program is not None else None
        if reference in aliases:
            target = aliases[reference]
            found = target if target in ids else names.get(target.strip().casefold(), (None,))[0]
            named = ids.get(found or "")
            match = CampaignMatch(reference, program_name, found or target, named, "setting", count)
            out.matches.append(match)
            continue
        if reference in ids or reference.strip().casefold() in names:
            continue  # the touch names a CRM campaign itself: nothing to derive
        if program is not None and program.crm_campaign_id in ids:
            campaign = program.crm_campaign_id
            out.campaign_aliases[reference] = campaign
            out.matches.append(
                CampaignMatch(reference, program_name, campaign, ids[campaign], "crm sync", count)
            )
            continue
        if program is not None and program.name.strip().casefold() in names:
            campaign, campaign_name = names[program.name.strip().casefold()]
            out.campaign_aliases[reference] = campaign
            out.matches.append(
                CampaignMatch(reference, program_name, campaign, campaign_name, "name", count)
            )
            continue
        if count:
            match = CampaignMatch(reference, program_name, None, None, "unmapped", count)
            out.matches.append(match)
    for user in users:
        if (crms is None or user.crm in crms) and user.name:
            out.rep_names.setdefault(user.external_id, user.name)
    out.rep_names.update(rep_names)
    out.count_unnamed(owner_ids)
    return out


def _natural(text: str) -> tuple[int, str]:
    return (0, f"{int(text):012d}") if text.isdigit() else (1, text)
