"""Streams a CRM does not have are skipped with a note; a failing stream fails the run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from connectors.base import Cursor, Page
from connectors.errors import ConfigError
from sync.pipelines.reconcile import pull_stream


class Crm:
    """A CRM with one stream, whose pull fails when told to."""

    change_streams = ("people",)

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def pull_changes(self, stream: str, cursor: Cursor, until: datetime) -> Iterator[Page[Any]]:
        del stream, cursor, until  # one stream, read whole
        if self.error is not None:
            raise self.error
        yield Page(["ann"], Cursor("1"))


def _ctx(notes: list[str]) -> Any:
    return SimpleNamespace(
        since=None,
        load_cursor=lambda _stream: Cursor(),
        started_at=datetime(2026, 11, 1, tzinfo=UTC),
        note=notes.append,
        pipeline=SimpleNamespace(source="crm"),
    )


def test_a_stream_the_crm_does_not_have_is_skipped_with_a_note() -> None:
    notes: list[str] = []
    assert pull_stream(_ctx(notes), Crm(), "campaigns") is None
    assert notes == ["crm has no 'campaigns' stream: skipped"]


def test_a_stream_it_has_yields_its_pages() -> None:
    pages = pull_stream(_ctx([]), Crm(), "people")
    assert [p.records for p in pages] == [["ann"]]


def test_a_misconfigured_stream_fails_instead_of_passing_for_a_missing_one() -> None:
    with pytest.raises(ConfigError, match="no field Reason__c"):
        pull_stream(_ctx([]), Crm(ConfigError("no field Reason__c on Lead")), "people")
