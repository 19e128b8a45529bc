"""The org schema cache: read from the org once, kept in the ledger, re-read when old or asked,
and used (saying so) when the org cannot be reached; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from connectors.errors import ConfigError
from connectors.salesforce.connector import SalesforceConnector
from sandbox.server import SandboxServer
from sync.config import load_config
from sync.crm_schema import ConfiguredSchema, OrgSchema, age_text, cached_objects
from sync.ledger.types import utcnow
from tests.connectors.salesforce.conftest import settings_for

OBJECTS = ["Task", "Lead", "Contact"]


@pytest.fixture
def connectors(sandbox: SandboxServer) -> Iterator[Callable[..., SalesforceConnector]]:
    built: list[SalesforceConnector] = []

    def make(**overrides: Any) -> SalesforceConnector:
        connector = SalesforceConnector("salesforce", settings_for(sandbox, **overrides))
        built.append(connector)
        return connector

    yield make
    for connector in built:
        connector.close()


def org(engine: Engine, connect: Callable[[], Any], **kw: Any) -> OrgSchema:
    return OrgSchema(engine, "salesforce", "salesforce", connect, **kw)


def test_a_second_check_reads_the_ledger_not_the_org(
    ledger_engine: Engine, sandbox: SandboxServer, connectors: Callable[..., SalesforceConnector]
) -> None:
    first = org(ledger_engine, connectors).catalogue("salesforce", OBJECTS)
    after_first = sandbox.state.total_calls("salesforce")
    second = org(ledger_engine, connectors).catalogue("salesforce", OBJECTS)

    assert after_first == 1
    assert sandbox.state.total_calls("salesforce") == after_first
    assert second.field("salesforce", "Task", "Subject") == first.field(
        "salesforce", "Task", "Subject"
    )
    assert second.origin_for("salesforce") == (
        "against the Salesforce org of connection 'salesforce', schema read just now; "
        "`closedloop schema refresh` to re-read"
    )
    assert [o for o, *_ in cached_objects(ledger_engine, "salesforce")] == sorted(OBJECTS)


def test_a_refresh_reads_again_and_sees_a_field_added_since(
    ledger_engine: Engine, sandbox: SandboxServer, connectors: Callable[..., SalesforceConnector]
) -> None:
    org(ledger_engine, connectors).catalogue("salesforce", ["Task"])
    store = sandbox.store("salesforce")
    store.add_custom_field(
        "Activity.Campaign_Name__c", {"type": "Text", "length": 80, "label": "Campaign Name"}
    )
    store.grant_field_access("Task", "Campaign_Name__c")

    cached = org(ledger_engine, connectors).catalogue("salesforce", ["Task"])
    calls = sandbox.state.total_calls("salesforce")
    refreshed = org(ledger_engine, connectors, refresh=True).catalogue("salesforce", ["Task"])

    assert cached.field("salesforce", "Task", "Campaign_Name__c") is None
    assert sandbox.state.total_calls("salesforce") == calls + 1
    info = refreshed.field("salesforce", "Task", "Campaign_Name__c")
    assert info is not None
    assert (info.type, info.length, info.custom) == ("string", 80, True)
    again = org(ledger_engine, connectors).catalogue("salesforce", ["Task"])
    assert again.field("salesforce", "Task", "Campaign_Name__c") is not None


def test_the_age_is_shown_and_an_old_schema_is_read_again(
    ledger_engine: Engine, sandbox: SandboxServer, connectors: Callable[..., SalesforceConnector]
) -> None:
    org(ledger_engine, connectors).catalogue("salesforce", ["Task"])
    calls = sandbox.state.total_calls("salesforce")
    later = utcnow() + timedelta(hours=2)

    two_hours = org(ledger_engine, connectors, now=lambda: later).catalogue("salesforce", ["Task"])
    day_later = utcnow() + timedelta(hours=25)
    stale = org(ledger_engine, connectors, now=lambda: day_later).catalogue("salesforce", ["Task"])

    assert "schema read 2 h ago" in two_hours.origin_for("salesforce")
    assert "schema read just now" in stale.origin_for("salesforce")
    assert sandbox.state.total_calls("salesforce") == calls + 1  # only the 25-hour-old read


def test_an_unreachable_org_without_a_cache_is_an_error_naming_the_remedies(
    ledger_engine: Engine, connectors: Callable[..., SalesforceConnector]
) -> None:
    def down() -> SalesforceConnector:
        return connectors(instance_url="https://127.0.0.1:9", max_attempts=1)

    with pytest.raises(ConfigError) as refused:
        org(ledger_engine, down).catalogue("salesforce", ["Task"])

    assert refused.value.exit_code == 2
    message = str(refused.value)
    assert "cannot read the schema of the Salesforce org of connection 'salesforce' (Task)" in (
        message
    )
    assert "`closedloop check salesforce`" in message
    assert "--offline" in message


def test_an_unreachable_org_with_a_cache_is_checked_against_the_cache_and_says_so(
    ledger_engine: Engine, connectors: Callable[..., SalesforceConnector]
) -> None:
    org(ledger_engine, connectors).catalogue("salesforce", ["Task"])

    def down() -> SalesforceConnector:
        return connectors(instance_url="https://127.0.0.1:9", max_attempts=1)

    later = utcnow() + timedelta(days=3)
    stale = org(ledger_engine, down, now=lambda: later).catalogue("salesforce", ["Task"])

    assert stale.field("salesforce", "Task", "Subject") is not None
    origin = stale.origin_for("salesforce")
    assert origin.startswith(
        "against the cached schema of the Salesforce org of connection 'salesforce', read 3 d "
        "ago: the org could not be reached to re-read it"
    )


def test_an_object_the_org_lacks_is_remembered_as_absent(
    ledger_engine: Engine, sandbox: SandboxServer, connectors: Callable[..., SalesforceConnector]
) -> None:
    first = org(ledger_engine, connectors).catalogue("salesforce", ["Touch__c"])
    again = org(ledger_engine, connectors).catalogue("salesforce", ["Touch__c"])

    assert first.absent_objects("salesforce") == {"Touch__c"}
    assert again.absent_objects("salesforce") == {"Touch__c"}
    assert sandbox.state.total_calls("salesforce") == 1


def test_a_mapping_of_another_crm_is_refused_with_the_remedy(
    ledger_engine: Engine, connectors: Callable[..., SalesforceConnector]
) -> None:
    with pytest.raises(ConfigError, match="this mapping is for hubspot"):
        org(ledger_engine, connectors).catalogue("hubspot", ["note"])


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(5, "just now"), (600, "10 min ago"), (7200, "2 h ago"), (3 * 86_400, "3 d ago")],
)
def test_ages_read_like_people_say_them(seconds: int, shown: str) -> None:
    assert age_text(timedelta(seconds=seconds)) == shown


CONFIG = """version: 1
connections:
  salesforce:
    type: salesforce
    instance_url: https://127.0.0.1:8443
    auth: {method: session, session_id: 00Dtest!session}
mappings:
  schema_max_age: %s
"""


def test_the_schema_max_age_is_a_setting_of_the_config(
    tmp_path: Path, ledger_engine: Engine
) -> None:
    path = tmp_path / "closedloop.yaml"
    path.write_text(CONFIG % "2h", encoding="utf-8")
    config = load_config(path)

    org = ConfiguredSchema(config, ledger_engine).org("salesforce")

    assert config.mappings.max_age == timedelta(hours=2)
    assert org.max_age == timedelta(hours=2)
    path.write_text(CONFIG % "soon", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    [issue] = refused.value.issues
    assert (issue.line, issue.key_path) == (8, "mappings.schema_max_age")
