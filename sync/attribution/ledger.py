"""Attribution over the ledger: load the graph, fingerprint the inputs, store versioned runs.

A run reads one CRM's people (with email history and lead-to-account matches), opportunities,
contact roles and every touch that resolves to one of its people (by ``person_ref``, else by a
current or former address), attributes every opportunity under the chosen models and stores
an ``attribution_run`` (its id is the run's version) with its credits and per-opportunity
outcomes. The fingerprint is a SHA-256 of the sorted input rows (touches of kinds the run does
not count left out: they cannot change a credit), the parameters, the models, ``as_of`` and
``ALGORITHM_VERSION``: the same inputs always give the same fingerprint and the same credits,
and a run whose fingerprint matches the latest stored one is not stored twice. Before loading
anything a run compares the cheap ``input_state`` of the ledger with the latest run's: equal,
that run is reused at once (a no-op re-run reads no touch).

``as_of`` (the end of the window of open opportunities) defaults to the next UTC midnight, so
runs on the same day over the same data are reproducible.
"""

from __future__ import annotations

import gc
import hashlib
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, func, insert
from sqlmodel import Session, col, select

from sync.attribution.graph import IdentityGraph
from sync.attribution.models import (
    ALGORITHM_VERSION,
    AttributionParams,
    Attributor,
    Model,
)
from sync.attribution.records import (
    AttributionOpportunity,
    AttributionRole,
    AttributionTouch,
    Dataset,
)
from sync.identity_graph import load_people, record_email_history
from sync.ledger.dialect import raw_rows, raw_time_parser
from sync.ledger.models import (
    AttributionCreditRow,
    AttributionOutcomeRow,
    AttributionRunRow,
    CampaignRow,
    ContactRoleRow,
    OpportunityRow,
)
from sync.ledger.types import utcnow
from sync.matching import linked_accounts

__all__ = [
    "RunReport",
    "crms_with_opportunities",
    "default_as_of",
    "fingerprint",
    "input_state",
    "latest_run",
    "load_dataset",
    "run_attribution",
    "summarize",
]

_BATCH = 5_000
_CREDIT_BATCH = 50_000
_CHUNK = 10_000
_KEY = itemgetter(0)  # AttributionTouch.key
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OUTCOME: Table = AttributionOutcomeRow.__table__  # type: ignore[attr-defined]


def default_as_of(now: datetime | None = None) -> datetime:
    """The next UTC midnight: the end of the window of open opportunities for runs today."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    return datetime.combine(today + timedelta(days=1), time(), tzinfo=UTC)


def crms_with_opportunities(session: Session) -> list[str]:
    """The CRM connections that have opportunities in the ledger."""
    rows = session.exec(select(OpportunityRow.crm).distinct().order_by(OpportunityRow.crm)).all()
    return list(rows)


def load_dataset(session: Session, crm: str, *, use_matches: bool = True) -> Dataset:
    """One CRM's attribution inputs from the ledger (touches resolved to its people)."""
    return _load(session, crm, use_matches=use_matches)[0]


def _load(
    session: Session,
    crm: str,
    *,
    use_matches: bool = True,
    kinds: frozenset[str] | None = None,
) -> tuple[Dataset, IdentityGraph, int]:
    """The dataset, the identity graph of its people (built once: it resolves the touches and
    serves the ``Attributor``) and how many touches of known people were left out because
    their kind is not in ``kinds`` (``None``: none left out). Such touches cannot change a
    credit (the ``Attributor`` drops them first), so a run need not build or hash them."""
    matches = linked_accounts(session, crm) if use_matches else {}
    people = load_people(session, crm, matches)
    graph = IdentityGraph(people)
    known = {p.id: p.id for p in people}  # the id strings the people hold, shared by touches
    channels = dict(
        session.exec(
            select(CampaignRow.external_id, CampaignRow.channel).where(CampaignRow.crm == crm)
        ).all()
    )
    dataset = Dataset(people=people)
    intern = sys.intern
    parse = raw_time_parser(session)
    append = dataset.touches.append
    # ``tuple.__new__`` makes the named tuple without the Python-level ``__new__`` (no defaults
    # to fill here): a third of the cost, once per counted touch.
    make = tuple.__new__
    touch_type = AttributionTouch
    unlinked = left_out = 0
    own = known.get
    # Addresses resolved so far, misses (None) too: a stranger's touches repeat their address.
    by_email: dict[str, str | None] = dict(graph.by_email)  # stored trimmed and lower-cased
    resolved = by_email.get
    unseen: Any = object()  # not an id: an address not looked up yet
    for key, ref, email, occurred_at, kind, named, own_channel in raw_rows(
        session,
        "SELECT key, person_ref, email, occurred_at, kind, campaign, channel FROM touch "
        "ORDER BY id",
    ):
        person = own(ref)
        if person is None and email:
            person = resolved(email, unseen)
            if person is unseen:
                person = by_email[email] = graph.person_for_email(email)
        if person is None:
            unlinked += 1
            continue
        if kinds is not None and kind not in kinds:
            left_out += 1
            continue
        campaign = intern(named) if named is not None else None
        channel = (
            intern(own_channel) if own_channel else (channels.get(campaign) if campaign else None)
        )
        append(make(touch_type, (key, person, parse(occurred_at), intern(kind), campaign, channel)))
    dataset.unlinked_touches = unlinked
    for opp in session.exec(
        select(OpportunityRow).where(
            OpportunityRow.crm == crm,
            col(OpportunityRow.deleted).is_(False),
            col(OpportunityRow.merged_into).is_(None),
        )
    ).all():
        dataset.opportunities.append(
            AttributionOpportunity(
                opp.external_id,
                opp.account_external_id,
                opp.amount,
                opp.created_at,
                opp.close_date,
                opp.is_closed,
                opp.is_won,
                opp.campaign_external_id,
            )
        )
    dataset.roles.extend(
        AttributionRole(r.opportunity_external_id, r.person_external_id, r.is_primary, r.deleted)
        for r in session.exec(select(ContactRoleRow).where(ContactRoleRow.crm == crm)).all()
    )
    return dataset, graph, left_out


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return "" if value is None else str(value)


def _header(params: AttributionParams, models: Sequence[str], as_of: datetime) -> dict[str, Any]:
    return {
        "algorithm": ALGORITHM_VERSION,
        "params": params.describe(),
        "models": sorted(models),
        "as_of": _text(as_of),
    }


# What a run reads besides the touches, in a fixed order; every column that can change a credit.
_INPUT_TABLES = (
    "SELECT external_id, kind, email, account_external_id, converted_account_external_id, "
    "converted, converted_contact_external_id, converted_opportunity_external_id, merged_into, "
    "deleted, created_at FROM person WHERE crm = :crm ORDER BY id",
    # Addresses are only ever added (``record_email_history`` inserts them and touches nothing
    # read here again): their count and newest id say when one was.
    "SELECT count(*), max(id) FROM person_email WHERE crm = :crm",
    "SELECT person_external_id, account_external_id, status FROM account_match "
    "WHERE crm = :crm ORDER BY id",
    "SELECT external_id, channel FROM campaign WHERE crm = :crm ORDER BY id",
    "SELECT external_id, account_external_id, amount, created_at, close_date, is_closed, "
    "is_won, campaign_external_id, merged_into, deleted FROM opportunity WHERE crm = :crm "
    "ORDER BY id",
    "SELECT opportunity_external_id, person_external_id, is_primary, deleted FROM contact_role "
    "WHERE crm = :crm ORDER BY id",
)


def _input_tables(session: Session) -> tuple[str, ...]:
    """``_INPUT_TABLES`` as this database reads them fastest.

    SQLite would seek each table's ``crm`` index and then sort the rows by id in a temporary
    B-tree; a CRM's rows are most of a table (one CRM per ledger is the common case), so a scan
    in id order, filtered, reads the same rows in half the time. ``+crm`` (a no-op expression)
    keeps SQLite off the index; PostgreSQL plans from its statistics and needs no hint."""
    if session.connection().dialect.name != "sqlite":
        return _INPUT_TABLES
    return tuple(
        sql.replace("WHERE crm = :crm ORDER BY", "WHERE +crm = :crm ORDER BY")
        for sql in _INPUT_TABLES
    )


def input_state(
    session: Session,
    crm: str,
    params: AttributionParams,
    models: Sequence[str],
    as_of: datetime,
) -> str:
    """SHA-256 of the inputs' state, cheap enough to check before anything is loaded.

    Touches and former addresses are only ever inserted (ingest never rewrites or deletes a
    touch; ``record_email_history`` only adds addresses), so those tables are summed up by their
    row count and newest id; the CRM's people, lead-to-account matches, campaigns, deals and
    contact roles (tens of thousands of rows, where touches are millions) are hashed row by
    row. Equal states mean equal inputs, hence an equal
    ``fingerprint``; a different state says nothing (a new touch of nobody known changes it),
    and the run falls back to the fingerprint."""
    digest = hashlib.sha256(json.dumps(_header(params, models, as_of), sort_keys=True).encode())
    for sql in ("SELECT count(*), max(id) FROM touch", *_input_tables(session)):
        digest.update(b"\n#")
        rows: list[tuple[Any, ...]] = []
        for row in raw_rows(session, sql, {"crm": crm}):
            rows.append(row)
            if len(rows) >= _CHUNK:
                digest.update(repr(rows).encode())
                rows.clear()
        digest.update(repr(rows).encode())
    return digest.hexdigest()


def fingerprint(
    dataset: Dataset, params: AttributionParams, models: Sequence[str], as_of: datetime
) -> str:
    """SHA-256 of the sorted input rows, parameters, models, ``as_of`` and algorithm version."""
    digest = hashlib.sha256()
    digest.update(json.dumps(_header(params, models, as_of), sort_keys=True).encode())
    # Touch keys are unique, so touches sorted by key are their lines sorted. A touch's time
    # is written as microseconds since the epoch (whatever its time zone): an exact, cheap
    # form (a million ISO strings cost more than the rest of the hash); None is "".
    digest.update(b"\n#touches\n")
    lines: list[str] = []
    epoch = _EPOCH
    for t in sorted(dataset.touches, key=_KEY):
        since = t.occurred_at - epoch
        at = (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds
        lines.append(
            f"{t.key}\x1f{t.person_id}\x1f{at}\x1f{t.kind}\x1f{t.campaign or ''}"
            f"\x1f{t.channel or ''}\n"
        )
        if len(lines) >= _CHUNK:
            digest.update("".join(lines).encode())
            lines.clear()
    digest.update("".join(lines).encode())
    sections: list[tuple[str, Iterable[Iterable[Any]]]] = [
        ("people", ((p.id, p.account_id, p.created_at, p.is_lead, p.converted_to,
                     p.converted_opportunity_id, p.merged_into, p.deleted, *p.emails)
                    for p in dataset.people)),
        ("opportunities", ((o.id, o.account_id, o.amount, o.created_at, o.close_date,
                            o.is_closed, o.is_won, o.campaign_id)
                           for o in dataset.opportunities)),
        ("roles", ((r.opportunity_id, r.person_id, r.is_primary, r.deleted)
                   for r in dataset.roles)),
    ]  # fmt: skip
    for name, rows in sections:
        digest.update(f"\n#{name}\n".encode())
        # Ids are most of the values: strings are written as they are, the rest by ``_text``.
        texts = ["\x1f".join([v if type(v) is str else _text(v) for v in row]) for row in rows]
        texts.sort()
        digest.update("".join([f"{text}\n" for text in texts]).encode())
    return digest.hexdigest()


@dataclass
class RunReport:
    """What ``run_attribution`` did: the run (new or reused) and its counts."""

    run_id: int
    crm: str
    fingerprint: str
    reused: bool
    counts: dict[str, Any] = field(default_factory=dict)


def latest_run(session: Session, crm: str | None = None) -> AttributionRunRow | None:
    """The newest stored run (of ``crm`` when given)."""
    query = select(AttributionRunRow).order_by(col(AttributionRunRow.id).desc()).limit(1)
    if crm is not None:
        query = query.where(AttributionRunRow.crm == crm)
    return session.exec(query).first()


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector for the duration of a run.

    A run makes millions of small tuples that hold no cycles and die together at its end; the
    collector would walk them all again every time a generation fills up (a fifth of a
    first run's time on a million touches) and find nothing to free. Reference counting still
    frees everything; the collector resumes (as it was) when the run ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def run_attribution(
    session: Session,
    crm: str,
    models: Sequence[Model | str],
    params: AttributionParams | None = None,
    *,
    as_of: datetime | None = None,
    force: bool = False,
) -> RunReport:
    """Attribute every opportunity of ``crm`` and store the run (unless identical to the last).

    The unchanged-input check comes first: when the latest run's ``input_state`` matches, it
    is reused without loading a touch; otherwise the inputs are loaded and their fingerprint
    decides (a run over equal inputs is reused and takes the new state)."""
    with _cycle_collector_paused():
        return _run(session, crm, models, params, as_of=as_of, force=force)


def _run(
    session: Session,
    crm: str,
    models: Sequence[Model | str],
    params: AttributionParams | None,
    *,
    as_of: datetime | None,
    force: bool,
) -> RunReport:
    """``run_attribution`` with the cycle collector paused."""
    params = params or AttributionParams()
    names = [Model(m).value for m in models]
    if Model.CUSTOM.value in names and params.custom is None:
        from connectors.errors import ConfigError

        raise ConfigError(
            "the custom model needs weights: add attribution.custom (first_touch, "
            "lead_creation, opportunity_creation, closed_won, others; in percent, adding up "
            "to 100) to closedloop.yaml"
        )
    as_of = as_of or default_as_of()
    record_email_history(session, crm)
    state = input_state(session, crm, params, names, as_of)
    previous = latest_run(session, crm)
    if (
        not force
        and previous is not None
        and previous.id is not None
        and (previous.input_state == state)
    ):
        return RunReport(previous.id, crm, previous.fingerprint, True, dict(previous.counts))
    dataset, graph, left_out = _load(session, crm, kinds=params.counted_kinds)
    digest = fingerprint(dataset, params, names, as_of)
    if (
        not force
        and previous is not None
        and previous.id is not None
        and previous.fingerprint == digest
    ):
        previous.input_state = state
        session.add(previous)
        session.flush()
        return RunReport(previous.id, crm, digest, True, dict(previous.counts))
    run = AttributionRunRow(
        crm=crm,
        models=names,
        params=params.describe(),
        fingerprint=digest,
        input_state=state,
        algorithm_version=ALGORITHM_VERSION,
        as_of=as_of,
    )
    session.add(run)
    session.flush()
    assert run.id is not None
    counts = _store_results(session, run.id, Attributor(dataset, params, as_of, graph=graph), names)
    counts["touches"] = len(dataset.touches) + left_out
    counts["unlinked_touches"] = dataset.unlinked_touches
    run.counts = {k: counts[k] for k in _COUNTS}
    run.finished_at = utcnow()
    session.add(run)
    session.flush()
    return RunReport(run.id, crm, digest, False, dict(run.counts))


_COUNTS = ("opportunities", "touches", "unlinked_touches", "credits", "unattributed")
_INSERT_CREDITS = (
    "INSERT INTO attribution_credit (run_id, model, opportunity_external_id, touch_key, "
    "person_external_id, campaign, channel, occurred_at, share_units, amount, milestones) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_COPY_CREDITS = (
    "COPY attribution_credit (run_id, model, opportunity_external_id, touch_key, "
    "person_external_id, campaign, channel, occurred_at, share_units, amount, milestones) "
    "FROM STDIN"
)


def _store_results(
    session: Session, run_id: int, attributor: Attributor, names: list[str]
) -> dict[str, Any]:
    """Attribute every opportunity and store its outcome and credits; returns the counts.

    Credits go in with the database's bulk path, ``_CREDIT_BATCH`` at a time: one
    ``executemany`` of plain tuples on SQLite, ``COPY`` on PostgreSQL."""
    connection = session.connection()
    postgres = connection.dialect.name == "postgresql"
    write = _copy_credits if postgres else _insert_credits
    # SQLite keeps times as naive UTC text and amounts as numbers; psycopg adapts the objects.
    times: dict[datetime, Any] = {}
    credits: list[tuple[Any, ...]] = []
    outcomes: list[dict[str, Any]] = []
    counts: dict[str, Any] = {
        "opportunities": 0,
        "credits": 0,
        "unattributed": dict.fromkeys(names, 0),
    }
    unattributed = counts["unattributed"]
    for result in attributor.attribute_all(names):
        opp = result.opportunity
        counts["opportunities"] += 1
        outcomes.append(
            {
                "run_id": run_id,
                "opportunity_external_id": opp.id,
                "amount": opp.amount if opp.amount is not None else Decimal(0),
                "is_closed": opp.is_closed,
                "is_won": opp.is_won,
                "counted_touches": result.counted_touches,
                "lead_person_external_id": result.lead_person_id,
                "sourced_campaign": result.sourced_campaign,
                "sourced_by": result.sourced_by,
                "influencing_campaigns": list(result.influencing_campaigns),
            }
        )
        for name in names:
            model_credits = result.credits.get(name, [])
            if not model_credits:
                unattributed[name] += 1
            counts["credits"] += len(model_credits)
            # A Credit is a named tuple, unpacked at once (``who``: person, ``mark``: milestones).
            for model, deal, key, who, at, campaign, channel, units, cents, mark in model_credits:
                moment = times.get(at)
                if moment is None:
                    moment = times[at] = (
                        at
                        if postgres
                        else at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
                    )
                credits.append((
                    run_id, model, deal, key, who, campaign, channel, moment, units,
                    Decimal(cents).scaleb(-2) if postgres else cents / 100, ",".join(mark),
                ))  # fmt: skip
        if len(credits) >= _CREDIT_BATCH:
            write(session, credits)
            credits.clear()
        if len(outcomes) >= _BATCH:
            session.execute(insert(_OUTCOME), outcomes)
            outcomes.clear()
    if credits:
        write(session, credits)
    if outcomes:
        session.execute(insert(_OUTCOME), outcomes)
    return counts


def _insert_credits(session: Session, rows: list[tuple[Any, ...]]) -> None:
    """SQLite: one ``executemany`` of the rows on the session's connection."""
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(_INSERT_CREDITS, rows)
    finally:
        cursor.close()


def _copy_credits(session: Session, rows: list[tuple[Any, ...]]) -> None:
    """PostgreSQL: ``COPY ... FROM STDIN`` through psycopg on the session's connection."""
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(_COPY_CREDITS) as copy:
            for row in rows:
                copy.write_row(row)
    finally:
        cursor.close()


def _cents(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


def summarize(session: Session, run_id: int, by: str) -> list[dict[str, Any]]:
    """Credited amounts of a run grouped ``by`` campaign, channel or model, as plain rows.

    ``campaign`` and ``channel`` rows hold one amount per model; ``campaign`` rows add the
    sourced amount (deals its lead creation touch or primary campaign brought) and the
    influenced amount (deals with any counted touch of the campaign, each counted in full).
    ``model`` rows count attributed and unattributed opportunities and the credited amount.
    Channels are shown by their report names (``sync.analytics.channels.channel_name``).
    """
    from sync.analytics.channels import channel_name

    if by not in ("campaign", "channel", "model"):
        raise ValueError(f"cannot summarise by {by!r}: campaign, channel or model")
    run = session.get(AttributionRunRow, run_id)
    if run is None:
        raise ValueError(f"no attribution run {run_id}")
    models: list[str] = list(run.models)
    if by == "model":
        rows = []
        total = session.exec(
            select(func.count()).where(AttributionOutcomeRow.run_id == run_id)
        ).one()
        for model in models:
            attributed, amount = session.exec(
                select(
                    func.count(func.distinct(AttributionCreditRow.opportunity_external_id)),
                    func.sum(AttributionCreditRow.amount),
                ).where(AttributionCreditRow.run_id == run_id, AttributionCreditRow.model == model)
            ).one()
            rows.append(
                {
                    "model": model,
                    "attributed": int(attributed),
                    "unattributed": int(total) - int(attributed),
                    "amount": _cents(amount),
                }
            )
        return rows
    column = AttributionCreditRow.campaign if by == "campaign" else AttributionCreditRow.channel
    grouped: dict[str, dict[str, Any]] = {}
    for value, model, amount in session.exec(
        select(column, AttributionCreditRow.model, func.sum(AttributionCreditRow.amount))
        .where(AttributionCreditRow.run_id == run_id)
        .group_by(column, AttributionCreditRow.model)
    ).all():
        # "web" and "Website" are one channel (sync.analytics.channels)
        key = channel_name(value) if by == "channel" else value
        row = grouped.setdefault(key or "(none)", {by: key or "(none)"})
        row[model] = row.get(model, Decimal("0.00")) + _cents(amount)
    if by == "campaign":
        for outcome in session.exec(
            select(AttributionOutcomeRow).where(AttributionOutcomeRow.run_id == run_id)
        ).all():
            if outcome.sourced_campaign:
                row = grouped.setdefault(outcome.sourced_campaign, {by: outcome.sourced_campaign})
                row["sourced"] = row.get("sourced", Decimal("0.00")) + _cents(outcome.amount)
            for campaign in outcome.influencing_campaigns:
                row = grouped.setdefault(campaign, {by: campaign})
                row["influenced"] = row.get("influenced", Decimal("0.00")) + _cents(outcome.amount)
    result = []
    for key in sorted(grouped):
        row = grouped[key]
        for model in models:
            row.setdefault(model, Decimal("0.00"))
        if by == "campaign":
            row.setdefault("sourced", Decimal("0.00"))
            row.setdefault("influenced", Decimal("0.00"))
        result.append(row)
    return result
