"""Why sales said no, through the commands: a hand-computed case of Salesforce and HubSpot
dispositions, and ``--as-of`` read the same way by every command that measures time.

The ledger is written by the dispositions pipeline's own ``record_changes`` from the changes
each CRM's history stream reports (Salesforce LeadHistory ``Status`` with
``Disqualified_Reason__c``; HubSpot ``hs_lead_status`` and ``lifecyclestage``), with the shipped
mappings translating the values. Times are 2026, UTC; the report is 2026-Q3 as of 2026-09-30.

==  =====================  ==========  ==========================================  ===========
id  person (owner)         hand-off    decision                                     first touch
==  =====================  ==========  ==========================================  ===========
L1  ann (005A1)            07-01 09:00  07-03 09:00 Disqualified "No budget" (48 h) Spring Webinar
L2  bo (005A1)             07-02 09:00  07-02 09:00 Working (0 s); 07-10 DQ "No budget"
                                                                                     Spring Webinar
L3  cy (005A2)             -           08-05 Disqualified "Competitor"              Trade Expo
L4  di (005A2)             08-06 09:00  08-06 15:00 Closed - Not Converted, no reason
L5  ed (005A1)             -           07-20 Recycled "Not ready to buy"
L6  fa (005A2)             -           08-21 Recycled, no reason
L7  gu (005A2)             09-29 09:00  10-02 Recycled "No response" (after the as-of)
C1  hal (77001)            08-11 12:00  08-12 12:00 UNQUALIFIED "No budget" (24 h)  Spring Webinar
C2  ida (77002)            -           09-01 UNQUALIFIED "no budget " (a variant)
C3  jo (77002)             -           09-15 BAD_TIMING "Not ready to buy"
C4  kim (77001)            -           06-20 UNQUALIFIED "Competitor" (before Q3)
C5  lu (77001)             -           10-05 UNQUALIFIED "No budget" (after the as-of)
==  =====================  ==========  ==========================================  ===========

Disqualified in Q3: No budget 4 (L1, L2, C1, C2) of 6 = 66.67%, Competitor 1, none 1 (L4);
4 of the 5 that give a reason: "No budget" dominates. Recycled: Not ready to buy 2 (L5, C3) of
3, none 1 (L6); only 2 give a reason: none dominates. 2 of 9 decisions give no reason, both
Salesforce's.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert
from typer.testing import CliRunner

from connectors.base import StatusChange
from connectors.errors import ConfigError
from sync.analytics.load import ledger_table
from sync.cli import app
from sync.ledger import PersonRow, TouchRow
from sync.mapping import load_lifecycle
from sync.pipelines.dispositions import record_changes

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
SF_MQL, SF_WORKING, SF_DQ = "Marketing Qualified", "Working - Contacted", "Closed - Not Converted"


def t(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def sf(
    lead: str, old: str | None, new: str, at: datetime, *, by: str, why: str = ""
) -> StatusChange:
    """A Lead Status change as Salesforce's LeadHistory stream reports it."""
    return StatusChange("salesforce", "lead", lead, "status", old, new, at, why or None, by)


def hs(
    contact: str, field: str, old: str, new: str, at: datetime, *, by: str, why: str = ""
) -> Any:
    """An hs_lead_status / lifecyclestage change as HubSpot's property history reports it."""
    return StatusChange("hubspot", "contact", contact, field, old, new, at, why or None, by)


SALESFORCE = [
    sf("L1", "Open - Not Contacted", SF_MQL, t(7, 1), by="005A1"),
    sf("L1", SF_MQL, SF_DQ, t(7, 3), by="005A1", why="No budget"),
    sf("L2", "Open - Not Contacted", SF_MQL, t(7, 2), by="005A1"),
    sf("L2", SF_MQL, SF_WORKING, t(7, 2), by="005A1"),  # the same second: a 0-second response
    sf("L2", SF_WORKING, "Disqualified", t(7, 10), by="005A1", why="No budget"),
    sf("L3", "Open - Not Contacted", "Disqualified", t(8, 5), by="005A2", why="Competitor"),
    sf("L4", "Open - Not Contacted", SF_MQL, t(8, 6), by="005A2"),
    sf("L4", SF_MQL, SF_DQ, t(8, 6, 15), by="005A2"),
    sf("L5", SF_WORKING, "Recycled", t(7, 20), by="005A1", why="Not ready to buy"),
    sf("L6", SF_WORKING, "Recycled", t(8, 21), by="005A2"),
    sf("L7", "Open - Not Contacted", SF_MQL, t(9, 29), by="005A2"),
    sf("L7", SF_MQL, "Recycled", t(10, 2), by="005A2", why="No response"),
]
HUBSPOT = [
    hs("C1", "status", "NEW", "OPEN", t(8, 11, 12), by="77001"),
    hs("C1", "lifecycle_stage", "lead", "marketingqualifiedlead", t(8, 11, 12), by="77001"),
    # HubSpot's lifecycle stage moves too, stored first and without the reason.
    hs("C1", "lifecycle_stage", "marketingqualifiedlead", "other", t(8, 12, 12), by="77001"),
    hs("C1", "status", "OPEN", "UNQUALIFIED", t(8, 12, 12), by="77001", why="No budget"),
    hs("C2", "status", "IN_PROGRESS", "UNQUALIFIED", t(9, 1), by="77002", why="no budget "),
    hs("C3", "status", "IN_PROGRESS", "BAD_TIMING", t(9, 15), by="77002", why="Not ready to buy"),
    hs("C4", "status", "IN_PROGRESS", "UNQUALIFIED", t(6, 20), by="77001", why="Competitor"),
    hs("C5", "status", "IN_PROGRESS", "UNQUALIFIED", t(10, 5), by="77001", why="No budget"),
]
PEOPLE = {("salesforce", "L1"): "ann", ("salesforce", "L2"): "bo", ("salesforce", "L3"): "cy",
          ("hubspot", "C1"): "hal"}  # fmt: skip
TOUCHES = [
    ("ann", "Spring Webinar", "webinar", t(6, 10)),
    ("ann", "Trade Expo", "event", t(6, 12)),  # a later touch: not the first
    ("bo", "Spring Webinar", "webinar", t(6, 11)),
    ("cy", "Trade Expo", "event", t(6, 12)),
    ("hal", "Spring Webinar", "webinar", t(6, 15)),
]

CONFIG = """\
version: 1
connections:
  salesforce:
    type: salesforce
    instance_url: https://example.my.salesforce.com
    auth: {{method: session, session_id_file: secret}}
    lead_reason_fields: [Disqualified_Reason__c, Recycle_Reason__c]
  hubspot:
    type: hubspot
    auth: {{method: private_app, access_token_file: secret}}
pipelines:
  salesforce-dispositions:
    kind: dispositions
    source: salesforce
    mapping: {mappings}/marketo-salesforce.yaml
  hubspot-dispositions:
    kind: dispositions
    source: hubspot
    mapping: {mappings}/marketo-hubspot.yaml
analytics:
  rep_names: {{005A1: Dana Ross}}
  sla: {{default: 1d}}
  experiments:
    marketing-leads:
      groups: {{east: [005A1, 77001], west: [005A2, 77002]}}
      metric: new_opportunities
"""


def _fill(engine: Engine) -> None:
    with engine.begin() as conn:
        for crm, changes, mapping in (
            ("salesforce", SALESFORCE, "marketo-salesforce.yaml"),
            ("hubspot", HUBSPOT, "marketo-hubspot.yaml"),
        ):
            record_changes(conn, crm, 1, changes, load_lifecycle(MAPPINGS / mapping))
        for (crm, external_id), name in PEOPLE.items():
            conn.execute(
                insert(ledger_table(PersonRow)).values(
                    crm=crm, external_id=external_id, kind="lead" if crm == "salesforce"
                    else "contact", email=f"{name}@acme.example", created_at=t(6, 1),
                )
            )  # fmt: skip
        for n, (name, campaign, channel, at) in enumerate(TOUCHES):
            conn.execute(
                insert(ledger_table(TouchRow)).values(
                    key=f"marketo:{n}", source="marketo", source_id=str(n), kind="email_click",
                    occurred_at=at, email=f"{name}@acme.example", campaign=campaign,
                    channel=channel,
                )
            )  # fmt: skip


@pytest.fixture
def setup(ledger_engine: Engine, tmp_path: Path) -> tuple[str, Path]:
    _fill(ledger_engine)
    (tmp_path / "secret").write_text("token", encoding="utf-8")
    config = tmp_path / "closedloop.yaml"
    config.write_text(CONFIG.format(mappings=MAPPINGS), encoding="utf-8")
    return ledger_engine.url.render_as_string(hide_password=False), config


def _invoke(args: list[str], url: str, config: Path) -> Any:
    result = CliRunner().invoke(app, [*args, "--config", str(config), "--database-url", url])
    assert result.exit_code == 0, result.output
    return result


def _report(url: str, config: Path, out: Path, fmt: str = "json") -> Path:
    args = ["report", "--period", "2026-Q3", "--as-of", "2026-09-30", "--format", fmt]
    _invoke([*args, "--out", str(out)], url, config)
    return out


def _counts(rows: list[dict[str, Any]], first: str) -> list[tuple[Any, ...]]:
    return [(r[first], r["outcome"], r["reason"], r["decisions"], r["share"]) for r in rows]


def test_the_report_counts_reasons_by_period_month_first_touch_rep_and_experiment_group(
    setup: tuple[str, Path], tmp_path: Path
) -> None:
    url, config = setup
    document = json.loads(_report(url, config, tmp_path / "r.json").read_text(encoding="utf-8"))
    tables = document["tables"]
    q3 = "2026-Q3"
    assert _counts(tables["reasons"], "period") == [
        (q3, "Disqualified", "No budget", 4, 0.6667),
        (q3, "Disqualified", "Competitor", 1, 0.1667),
        (q3, "Disqualified", "(no reason given)", 1, 0.1667),
        (q3, "Recycled", "Not ready to buy", 2, 0.6667),
        (q3, "Recycled", "(no reason given)", 1, 0.3333),
    ]
    assert _counts(tables["reasons_by_month"], "month") == [
        ("2026-07", "Disqualified", "No budget", 2, 1.0),
        ("2026-07", "Recycled", "Not ready to buy", 1, 1.0),
        ("2026-08", "Disqualified", "Competitor", 1, 0.3333),
        ("2026-08", "Disqualified", "No budget", 1, 0.3333),
        ("2026-08", "Disqualified", "(no reason given)", 1, 0.3333),
        ("2026-08", "Recycled", "(no reason given)", 1, 1.0),
        ("2026-09", "Disqualified", "No budget", 1, 1.0),
        ("2026-09", "Recycled", "Not ready to buy", 1, 1.0),
    ]
    assert _counts(tables["reasons_by_campaign"], "first_touch_campaign") == [
        ("(no touch)", "Disqualified", "No budget", 1, 0.5),
        ("(no touch)", "Disqualified", "(no reason given)", 1, 0.5),
        ("(no touch)", "Recycled", "Not ready to buy", 2, 0.6667),
        ("(no touch)", "Recycled", "(no reason given)", 1, 0.3333),
        ("Spring Webinar", "Disqualified", "No budget", 3, 1.0),
        ("Trade Expo", "Disqualified", "Competitor", 1, 1.0),
    ]
    channels = {(r[0], r[2]) for r in _counts(tables["reasons_by_channel"], "first_touch_channel")}
    # The ledger's "webinar" and "event" show under the report's channel names.
    assert {("Webinar", "No budget"), ("Event", "Competitor")} <= channels
    assert _counts(tables["reasons_by_rep"], "rep") == [
        ("Dana Ross", "Disqualified", "No budget", 2, 1.0),
        ("Dana Ross", "Recycled", "Not ready to buy", 1, 1.0),
        ("005A2", "Disqualified", "Competitor", 1, 0.5),
        ("005A2", "Disqualified", "(no reason given)", 1, 0.5),
        ("005A2", "Recycled", "(no reason given)", 1, 1.0),
        ("77002", "Disqualified", "No budget", 1, 1.0),
        ("77002", "Recycled", "Not ready to buy", 1, 1.0),
        ("77001", "Disqualified", "No budget", 1, 1.0),
    ]
    groups = [
        (r["group"], r["outcome"], r["reason"], r["decisions"])
        for r in tables["reasons_by_experiment_group"]
    ]
    assert groups == [
        ("east", "Disqualified", "No budget", 3),
        ("east", "Recycled", "Not ready to buy", 1),
        ("west", "Disqualified", "Competitor", 1),
        ("west", "Disqualified", "No budget", 1),
        ("west", "Disqualified", "(no reason given)", 1),
        ("west", "Recycled", "Not ready to buy", 1),
        ("west", "Recycled", "(no reason given)", 1),
    ]
    assert tables["reasons_missing"] == [
        {"crm": "hubspot", "outcome": "Disqualified", "without_reason": 0, "decisions": 2,
         "reason_fields": "closedloop_disqualified_reason closedloop_recycle_reason"},
        {"crm": "hubspot", "outcome": "Recycled", "without_reason": 0, "decisions": 1,
         "reason_fields": "closedloop_disqualified_reason closedloop_recycle_reason"},
        {"crm": "salesforce", "outcome": "Disqualified", "without_reason": 1, "decisions": 4,
         "reason_fields": "Disqualified_Reason__c Recycle_Reason__c"},
        {"crm": "salesforce", "outcome": "Recycled", "without_reason": 1, "decisions": 2,
         "reason_fields": "Disqualified_Reason__c Recycle_Reason__c"},
    ]  # fmt: skip
    [line] = [s for s in document["summary"] if s.startswith("Sales disqualified")]
    assert line == (
        "Sales disqualified 6 leads and recycled 3 in 2026-Q3. The main reason to disqualify: "
        "'No budget', 4 of the 5 disqualifications that give a reason (80%). No single reason "
        "explains most recycles. 2 of 9 decisions give no reason (salesforce keeps it in "
        "Disqualified_Reason__c or Recycle_Reason__c)."
    )


def test_sla_cases_carry_the_zero_second_response_and_what_sales_decided(
    setup: tuple[str, Path], tmp_path: Path
) -> None:
    url, config = setup
    document = json.loads(_report(url, config, tmp_path / "r.json").read_text(encoding="utf-8"))
    cases = {
        c["person"]: (c["status"], c["response_hours"], c["outcome"], c["reason"])
        for c in document["tables"]["sla_cases"]
        if c["stage"] == "MQL"
    }
    # L2 also stayed in SAL ("Working - Contacted") from 07-02 to its disqualification on 07-10:
    # 192 hours against the Salesforce mapping's SAL target of 3d.
    later = [
        (c["crm"], c["person"], c["status"], c["target_hours"], c["response_hours"], c["outcome"])
        for c in document["tables"]["sla_cases"]
        if c["stage"] != "MQL"
    ]
    assert later == [("salesforce", "salesforce:L2", "breached", 72.0, 192.0, None)]
    assert cases == {
        "salesforce:L1": ("breached", 48.0, "Disqualified", "No budget"),
        "salesforce:L2": ("met", 0.0, "Disqualified", "No budget"),
        "salesforce:L4": ("met", 6.0, "Disqualified", "(no reason given)"),
        "hubspot:C1": ("met", 24.0, "Disqualified", "No budget"),  # exactly the target is met
        "salesforce:L7": ("overdue", None, None, None),  # recycled on 10-02, after the as-of
    }


def test_the_csv_export_has_a_reasons_file(setup: tuple[str, Path], tmp_path: Path) -> None:
    url, config = setup
    folder = _report(url, config, tmp_path / "csv", fmt="csv")
    with (folder / "reasons.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["outcome"], r["reason"], r["decisions"], r["share"]) for r in rows] == [
        ("Disqualified", "No budget", "4", "0.6667"),
        ("Disqualified", "Competitor", "1", "0.1667"),
        ("Disqualified", "(no reason given)", "1", "0.1667"),
        ("Recycled", "Not ready to buy", "2", "0.6667"),
        ("Recycled", "(no reason given)", "1", "0.3333"),
    ]
    assert {p.name for p in folder.iterdir()} >= {
        "reasons_by_month.csv",
        "reasons_by_campaign.csv",
        "reasons_by_channel.csv",
        "reasons_by_rep.csv",
        "reasons_missing.csv",
    }


def test_the_html_report_says_how_many_give_no_reason_and_where_it_would_be(
    setup: tuple[str, Path], tmp_path: Path
) -> None:
    url, config = setup
    html = _report(url, config, tmp_path / "r.html", fmt="html").read_text(encoding="utf-8")
    assert (
        "salesforce: 1 of 4 disqualifications give no reason; the CRM field that carries it: "
        "<code>Disqualified_Reason__c</code> or <code>Recycle_Reason__c</code>."
    ) in html
    assert "hubspot: 0 of" not in html
    assert '<section id="reasons">' in html


def test_sla_breaches_as_of_lists_what_the_report_lists_with_reasons(
    setup: tuple[str, Path], tmp_path: Path
) -> None:
    url, config = setup
    args = ["sla", "breaches", "--since", "2026-07-01", "--as-of", "2026-09-30", "--format"]
    rows = json.loads(_invoke([*args, "json"], url, config).output)
    seen = [
        (r["stage"], r["person"], r["status"], r["late_by_hours"], r["outcome"], r["reason"])
        for r in rows
    ]
    assert seen == [
        ("MQL", "salesforce:L1", "breached", 24.0, "Disqualified", "No budget"),
        ("SAL", "salesforce:L2", "breached", 120.0, None, None),  # 8 days in SAL, target 3d
        ("MQL", "salesforce:L7", "overdue", 15.0, None, None),
    ]
    document = json.loads(_report(url, config, tmp_path / "r.json").read_text(encoding="utf-8"))
    in_report = [
        (c["stage"], c["person"], c["status"])
        for c in document["tables"]["sla_cases"]
        if c["status"] in ("breached", "overdue")
    ]
    assert in_report == [(r["stage"], r["person"], r["status"]) for r in rows]
    # A later moment: L7 was recycled on 10-02, 72 hours after its hand-off.
    later = json.loads(
        _invoke(
            ["sla", "breaches", "--since", "2026-07-01", "--as-of", "2026-10-31", "--format",
             "json", "--reason", "no response"], url, config,
        ).output
    )  # fmt: skip
    assert [(r["person"], r["status"], r["late_by_hours"], r["outcome"]) for r in later] == [
        ("salesforce:L7", "breached", 48.0, "Recycled")
    ]
    since_a_week = json.loads(
        _invoke(
            ["sla", "breaches", "--since", "7d", "--as-of", "2026-09-30T12:00:00+02:00",
             "--format", "json"], url, config,
        ).output
    )  # fmt: skip
    assert [(r["person"], r["late_by_hours"]) for r in since_a_week] == [("salesforce:L7", 1.0)]


@pytest.mark.parametrize(
    "command",
    [
        ["report", "--format", "json"],
        ["sla", "breaches"],
        ["attribution", "run", "--all"],
    ],
    ids=["report", "sla-breaches", "attribution-run"],
)
def test_every_command_that_measures_time_reads_as_of_the_same_way(command: list[str]) -> None:
    refused = CliRunner().invoke(app, [*command, "--as-of", "June"])
    assert isinstance(refused.exception, ConfigError)
    assert str(refused.exception) == (
        "--as-of: 'June' is neither a date (2026-09-30) nor an ISO time (2026-09-30T17:00:00Z)"
    )
    shown = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    text = " ".join(shown.output.replace("\u2502", " ").split())  # rich wraps in a box
    assert "a date (2026-09-30) is the end of that day, UTC; an ISO time without a zone is UTC" in (
        text
    )
