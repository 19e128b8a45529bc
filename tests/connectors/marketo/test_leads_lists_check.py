"""Lead lookups, static list changes, ``check()``, settings and registration of the connector."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx
from pydantic import ValidationError

from connectors.base import ActivitySource
from connectors.errors import ConfigError
from connectors.marketo.source import MarketoSource
from connectors.registry import get_connector
from tests.connectors.marketo.conftest import BASE, SECRET, fail, make_settings, ok

LEADS = "/rest/v1/leads.json"
USAGE = "/rest/v1/stats/usage.json"


def test_lookup_by_email_returns_company_and_score_keyed_by_lower_case_email(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    route = api.get(LEADS).mock(
        return_value=ok(
            [
                {
                    "id": 11,
                    "email": "Ada@Example.com",
                    "company": "Analytical Engines",
                    "leadScore": 72,
                    "updatedAt": "2026-06-30T10:00:00Z",
                }
            ]
        )
    )
    people = source.lookup_leads(["ADA@example.com", "nobody@example.com", "ada@example.com"])
    assert set(people) == {"ada@example.com"}
    ada = people["ada@example.com"]
    assert (ada.external_id, ada.company, ada.score) == ("11", "Analytical Engines", 72.0)
    params = route.calls[0].request.url.params
    assert params["filterType"] == "email"
    assert params["filterValues"] == "ada@example.com,nobody@example.com"
    assert "company" in params["fields"]
    assert "leadScore" in params["fields"]


def test_lookup_of_many_emails_stays_within_300_per_call(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    route = api.get(LEADS).mock(return_value=ok([]))
    source.lookup_leads([f"person{i}@example.com" for i in range(650)])
    sizes = [len(c.request.url.params["filterValues"].split(",")) for c in route.calls]
    assert sum(sizes) == 650
    assert all(size <= 300 for size in sizes)
    assert all(len(str(c.request.url)) < 8000 for c in route.calls)


def test_adding_to_a_static_list_reports_added_and_skipped_leads(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        ids = [item["id"] for item in json.loads(request.content)["input"]]
        result: list[dict[str, Any]] = [
            {"id": i, "status": "added"}
            if i != 13
            else {
                "id": i,
                "status": "skipped",
                "reasons": [{"code": "1004", "message": "Lead not found"}],
            }
            for i in ids
        ]
        return ok(result)

    route = api.post("/rest/v1/lists/42/leads.json").mock(side_effect=answer)
    change = source.add_to_list(42, list(range(1, 351)))
    assert len(change.changed) == 349
    assert [(r.key, r.code) for r in change.skipped] == [("13", "1004")]
    assert [len(json.loads(c.request.content)["input"]) for c in route.calls] == [300, 50]


def test_removing_from_a_static_list_sends_a_delete_with_the_lead_ids(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    route = api.delete("/rest/v1/lists/42/leads.json").mock(
        return_value=ok([{"id": 5, "status": "removed"}, {"id": 6, "status": "removed"}])
    )
    assert source.remove_from_list(42, [5, 6, 5]).changed == [5, 6]
    assert json.loads(route.calls[0].request.content) == {"input": [{"id": 5}, {"id": 6}]}


def test_a_list_id_that_is_not_a_static_list_is_a_config_error(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    api.post("/rest/v1/lists/9/leads.json").mock(return_value=fail("1013", "Object not found"))
    with pytest.raises(ConfigError, match="static list"):
        source.add_to_list(9, [1])


def test_check_reports_token_types_and_quota_left(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    api.get(USAGE).mock(return_value=ok([{"date": "2026-07-01", "total": 1200}]))
    results = {r.name: r for r in source.check()}
    assert all(r.ok for r in results.values())
    assert "12 of 14 types" in results["marketo.activity_types"].detail
    assert "48800 left" in results["marketo.daily_quota"].detail


def test_check_reports_nearly_spent_quota_with_a_remedy(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    api.get(USAGE).mock(return_value=ok([{"date": "2026-07-01", "total": 49_000}]))
    quota = {r.name: r for r in source.check()}["marketo.daily_quota"]
    assert not quota.ok
    assert quota.remedy


def test_check_with_bad_credentials_fails_with_a_remedy_and_never_raises(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    api["token"].mock(return_value=httpx.Response(401, json={"error": "unauthorized"}))
    results = source.check()
    assert [(r.name, r.ok) for r in results] == [("marketo.token", False)]
    assert "client_secret" in results[0].remedy
    assert SECRET not in results[0].detail


def test_settings_reject_unknown_keys_and_a_rest_suffixed_url() -> None:
    with pytest.raises(ValidationError, match="extra"):
        make_settings(munchkin="123")
    with pytest.raises(ValidationError, match="without /rest"):
        make_settings(base_url=f"{BASE}/rest")
    with pytest.raises(ValidationError):
        make_settings(calls_per_20s=101)


def test_settings_never_print_the_secret() -> None:
    settings = make_settings()
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())


def test_marketo_is_registered_as_an_activity_source() -> None:
    info = get_connector("marketo")
    assert info.roles == frozenset({"source"})
    connector = info.build("mkto", {"base_url": BASE, "client_id": "id", "client_secret": "secret"})
    try:
        assert isinstance(connector, ActivitySource)
        assert connector.name == "mkto"
    finally:
        assert isinstance(connector, MarketoSource)
        connector.close()
