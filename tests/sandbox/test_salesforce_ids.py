"""Salesforce record ids in the emulator: 15- to 18-character conversion and malformed ids."""

from __future__ import annotations

import pytest

from sandbox.salesforce_soql import id_with_checksum, normalize_id
from sandbox.salesforce_store import SalesforceStore


def test_fifteen_character_id_gets_salesforce_checksum_suffix() -> None:
    # The example Salesforce documents for its case-safe id conversion.
    assert normalize_id("001A0000006Vm9r") == "001A0000006Vm9rIAC"


def test_eighteen_character_id_is_recomputed_from_its_first_fifteen() -> None:
    assert normalize_id("001A0000006Vm9rIAC") == "001A0000006Vm9rIAC"
    assert normalize_id("001A0000006Vm9rXXX") == "001A0000006Vm9rIAC"


def test_case_changes_the_checksum() -> None:
    assert normalize_id("001a0000006vm9r") == "001a0000006vm9rAAA"
    assert normalize_id("ABCDEFGHIJKLMNO") == "ABCDEFGHIJKLMNO555"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "001A0000006Vm9",
        "001A0000006Vm9rI",
        "001A0000006Vm9rIAC1",
        "001A0000006Vm9-",
        "001A000000é Vm9",
    ],
)
def test_malformed_ids_are_refused(value: str) -> None:
    assert normalize_id(value) is None


def test_ids_minted_by_the_store_are_already_normalized() -> None:
    store = SalesforceStore()
    minted = [store.new_id("Task") for _ in range(100)]
    assert all(len(i) == 18 and i.startswith("00T") for i in minted)
    assert all(normalize_id(i) == i == id_with_checksum(i[:15]) for i in minted)
    assert len(set(minted)) == 100
