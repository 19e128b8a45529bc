"""SOQL semantics of the Salesforce emulator, checked against the store without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sandbox.salesforce_soql import SoqlError, normalize_id, parse
from sandbox.salesforce_store import DmlError, SalesforceStore


@pytest.fixture
def store() -> SalesforceStore:
    org = SalesforceStore()
    org.clock.set(datetime(2030, 6, 15, 12, 0, tzinfo=UTC))
    for last, company, email, status in [
        ("Able", "Acme", "able@acme.com", "Open - Not Contacted"),
        ("baker", "Beta", None, "Recycled"),
        ("Cole", "Acme", "cole@beta.io", "Disqualified"),
    ]:
        org.insert("Lead", {"LastName": last, "Company": company, "Email": email, "Status": status})
    return org


def _names(store: SalesforceStore, where: str, *, order: str = "ORDER BY LastName") -> list[str]:
    compiled = store.compile(f"SELECT LastName FROM Lead {where} {order}")  # noqa: S608 - SOQL
    return [row["LastName"] for row in store.select(compiled, include_deleted=False)]


def test_text_equality_and_in_are_case_insensitive(store: SalesforceStore) -> None:
    assert _names(store, "WHERE Company = 'ACME'") == ["Able", "Cole"]
    assert _names(store, "WHERE LastName IN ('BAKER', 'cole')") == ["baker", "Cole"]


def test_not_equal_and_not_in_match_null_values(store: SalesforceStore) -> None:
    assert _names(store, "WHERE Email != 'able@acme.com'") == ["baker", "Cole"]
    assert _names(store, "WHERE Email NOT IN ('cole@beta.io')") == ["Able", "baker"]
    assert _names(store, "WHERE Email = null") == ["baker"]


def test_like_supports_percent_underscore_and_escapes(store: SalesforceStore) -> None:
    assert _names(store, "WHERE Email LIKE '%@acme.com'") == ["Able"]
    assert _names(store, "WHERE LastName LIKE '_ole'") == ["Cole"]
    store.insert("Lead", {"LastName": "100% Done", "Company": "X"})
    assert _names(store, "WHERE LastName LIKE '100\\% %'") == ["100% Done"]


def test_not_and_parentheses_combine_conditions(store: SalesforceStore) -> None:
    where = "WHERE NOT (Company = 'Acme' AND (Status = 'Disqualified' OR Email = null))"
    assert _names(store, where) == ["Able", "baker"]


def test_order_by_places_nulls_as_asked(store: SalesforceStore) -> None:
    assert _names(store, "", order="ORDER BY Email ASC NULLS LAST") == ["Able", "Cole", "baker"]
    assert _names(store, "", order="ORDER BY Email DESC NULLS FIRST") == ["baker", "Cole", "Able"]
    assert _names(store, "", order="ORDER BY Email") == ["baker", "Able", "Cole"]


def test_limit_and_offset_slice_the_ordered_result(store: SalesforceStore) -> None:
    assert _names(store, "", order="ORDER BY LastName LIMIT 1 OFFSET 1") == ["baker"]


def test_date_literals_follow_the_org_clock(store: SalesforceStore) -> None:
    assert len(_names(store, "WHERE CreatedDate = TODAY")) == 3
    assert _names(store, "WHERE CreatedDate = YESTERDAY") == []
    store.clock.advance(timedelta(days=3))
    assert len(_names(store, "WHERE CreatedDate = LAST_N_DAYS:3")) == 3
    assert _names(store, "WHERE CreatedDate = LAST_N_DAYS:2") == []
    assert len(_names(store, "WHERE CreatedDate < 2030-06-16T00:00:00+01:00")) == 3


def test_date_literal_on_a_datetime_field_is_a_type_error(store: SalesforceStore) -> None:
    with pytest.raises(SoqlError) as caught:
        store.compile("SELECT Id FROM Lead WHERE CreatedDate > 2030-01-01")
    assert "must be of type dateTime" in caught.value.message


def test_quoted_number_on_a_number_field_is_refused(store: SalesforceStore) -> None:
    with pytest.raises(SoqlError) as caught:
        store.compile("SELECT Id FROM Lead WHERE NumberOfEmployees > '5'")
    assert "should not be enclosed in quotes" in caught.value.message


def test_unterminated_string_is_malformed(store: SalesforceStore) -> None:
    with pytest.raises(SoqlError) as caught:
        parse("SELECT Id FROM Lead WHERE Email = 'oops")
    assert caught.value.code == "MALFORMED_QUERY"


def test_string_escapes_are_decoded(store: SalesforceStore) -> None:
    store.insert("Lead", {"LastName": "O'Brien", "Company": "X"})
    assert _names(store, "WHERE LastName = 'o\\'brien'") == ["O'Brien"]


def test_bad_relationship_is_invalid_field(store: SalesforceStore) -> None:
    with pytest.raises(SoqlError) as caught:
        store.compile("SELECT Boss.Name FROM Lead")
    assert caught.value.code == "INVALID_FIELD"
    assert "Didn't understand relationship 'Boss'" in caught.value.message


def test_fifteen_character_ids_match_their_eighteen_character_form(store: SalesforceStore) -> None:
    lead_id = store.insert("Lead", {"LastName": "Short", "Company": "X"})
    assert normalize_id(lead_id[:15]) == lead_id
    assert _names(store, f"WHERE Id = '{lead_id[:15]}'") == ["Short"]


def test_indexed_email_lookup_skips_deleted_records(store: SalesforceStore) -> None:
    doomed = store.find("Lead", "Email", "ABLE@acme.com")
    assert len(doomed) == 1
    store.delete(doomed[0])
    assert _names(store, "WHERE Email IN ('able@acme.com', 'cole@beta.io')") == ["Cole"]


def test_rollback_restores_rows_and_unique_index(store: SalesforceStore) -> None:
    point = store.savepoint()
    task = store.create("Task", {"Closedloop_Key__c": "k:1"})
    store.rollback_to(point)
    assert store.get("Task", task) is None
    assert store.find("Task", "Closedloop_Key__c", "k:1") == []
    store.create("Task", {"Closedloop_Key__c": "k:1"})
    with pytest.raises(DmlError) as caught:
        store.create("Task", {"Closedloop_Key__c": "K:1"})
    assert caught.value.errors[0]["statusCode"] == "DUPLICATE_VALUE"
