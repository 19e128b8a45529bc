"""Like errors fall in one group: what names a record is masked out of the message."""

from __future__ import annotations

from sync.ui.grouping import group_columns, message_template


def test_refusals_of_different_records_read_the_same_once_masked() -> None:
    first = message_template(
        "salesforce refused the record: INVALID_CROSS_REFERENCE_KEY: invalid cross reference "
        "id 005000000000999AAA for ann@acme.example (row 12)"
    )
    second = message_template(
        "salesforce refused the record: INVALID_CROSS_REFERENCE_KEY: invalid cross reference "
        "id 0055g00000AbCdEQAZ for bob.smith+expo@globex.co.uk (row 4,031)"
    )
    assert (
        first
        == second
        == (
            "salesforce refused the record: INVALID_CROSS_REFERENCE_KEY: invalid cross reference "
            "id <id> for <email> (row <n>)"
        )
    )


def test_quoted_values_urls_and_uuids_are_masked_and_words_kept() -> None:
    assert (
        message_template(
            "Property \"region_7\" value 'Nord-Est' at https://api.example/v3/x?id=9 "
            "by 0a1b2c3d-1111-2222-3333-444455556666: -3.5 left"
        )
        == "Property '…' value '…' at <url> by <id>: <n> left"
    )


def test_the_group_depends_on_pipeline_stage_code_and_template() -> None:
    one = group_columns("p", "push", "BAD", "record 00T1 refused: 'x'")
    assert one == group_columns("p", "push", "BAD", "record 00T2 refused: 'y'")
    assert (
        one["group_key"]
        != group_columns("p", "map", "BAD", "record 00T1 refused: 'x'")["group_key"]
    )
    assert one["group_key"] != group_columns("q", "push", "BAD", "record 00T1 refused")["group_key"]
    assert len(one["group_key"]) == 16
