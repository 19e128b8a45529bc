"""The connector test kit: one call gives a connector the standard battery of tests.

Usage in a connector's test module::

    @pytest.fixture
    def kit() -> KitSpec:
        return KitSpec(make=lambda: MyConnector(...), make_unauthorised=lambda: MyConnector(bad...))

    TestMyConnectorBattery = connector_battery()

The battery checks what every connector owes the engine, whatever its vendor: ``check()`` passes
with good credentials and reports (never raises on) bad ones; bad credentials surface as
``AuthError``; a source pulls incrementally from a cursor with stable keys; a CRM writes the same
touches twice without creating a second record and resolves people by email case-insensitively.
Tests that do not apply to a connector's roles are skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.base import ActivitySource, Crm, Cursor, Page, RenderedTouch, Touch
from connectors.errors import AuthError

__all__ = ["KitSpec", "connector_battery", "drain_touches"]


@dataclass
class KitSpec:
    """What the battery needs to exercise one connector (built by the connector's ``kit`` fixture).

    - ``make``: a connector with valid credentials against a live (sandbox) backend.
    - ``make_unauthorised``: the same connector with credentials the backend rejects.
    - ``until``: the upper time bound for pulls (defaults to now).
    - ``touches_to_push``: rendered touches a CRM can write (their people exist in the CRM).
    - ``count_written``: how many records in the CRM carry each of the given touch keys.
    - ``known_emails``: emails of people the CRM holds (for identity resolution).
    """

    make: Callable[[], Any]
    make_unauthorised: Callable[[], Any] | None = None
    until: datetime | None = None
    touches_to_push: Callable[[], Sequence[RenderedTouch]] | None = None
    count_written: Callable[[Sequence[str]], dict[str, int]] | None = None
    known_emails: Sequence[str] = ()


def drain_touches(
    source: ActivitySource, cursor: Cursor, until: datetime
) -> tuple[list[Touch], Cursor]:
    """Pull every page from ``cursor``, dropping boundary duplicates the way the engine does."""
    seen = set(cursor.boundary_keys)
    touches: list[Touch] = []
    last = cursor
    pages: Iterator[Page[Touch]] = source.pull_touches(cursor, until)
    for page in pages:
        for touch in page.records:
            if touch.key not in seen:
                seen.add(touch.key)
                touches.append(touch)
        last = page.cursor
    return touches, last


def connector_battery() -> type:
    """Return a pytest test class running the standard battery against the ``kit`` fixture."""

    class ConnectorBattery:
        def _source(self, kit: KitSpec) -> ActivitySource:
            connector = kit.make()
            if not isinstance(connector, ActivitySource):
                pytest.skip("not an activity source")
            return connector

        def _crm(self, kit: KitSpec) -> Crm:
            connector = kit.make()
            if not isinstance(connector, Crm):
                pytest.skip("not a CRM")
            return connector

        def _until(self, kit: KitSpec) -> datetime:
            return kit.until or datetime.now(UTC)

        def test_check_passes_with_valid_credentials(self, kit: KitSpec) -> None:
            results = kit.make().check()
            assert results, "check() must report at least one result"
            failed = [r for r in results if not r.ok]
            assert not failed, f"checks failed: {failed}"

        def test_check_reports_bad_credentials_with_a_remedy(self, kit: KitSpec) -> None:
            if kit.make_unauthorised is None:
                pytest.skip("the connector has no credentials to get wrong")
            results = kit.make_unauthorised().check()
            failed = [r for r in results if not r.ok]
            assert failed, "check() passed with bad credentials"
            assert all(r.remedy for r in failed), f"a failed check has no remedy: {failed}"

        def test_bad_credentials_raise_auth_error(self, kit: KitSpec) -> None:
            if kit.make_unauthorised is None:
                pytest.skip("the connector has no credentials to get wrong")
            connector = kit.make_unauthorised()
            until = self._until(kit)

            def first_call() -> object:
                if isinstance(connector, ActivitySource):
                    return drain_touches(connector, Cursor(), until)
                return connector.resolve_people(["someone@example.com"])

            with pytest.raises(AuthError):
                first_call()

        def test_pull_from_the_final_cursor_yields_nothing_new(self, kit: KitSpec) -> None:
            source = self._source(kit)
            until = self._until(kit)
            first, cursor = drain_touches(source, Cursor(), until)
            assert first, "the source yielded no touches to test with"
            again, _ = drain_touches(source, cursor, until)
            assert again == [], f"{len(again)} touches pulled twice"

        def test_pulled_touches_have_stable_unique_keys(self, kit: KitSpec) -> None:
            source = self._source(kit)
            until = self._until(kit)
            first, _ = drain_touches(source, Cursor(), until)
            second, _ = drain_touches(source, Cursor(), until)
            keys = [t.key for t in first]
            assert len(keys) == len(set(keys)), "duplicate keys within one pull"
            assert keys == [t.key for t in second], "keys differ between two pulls of the same data"
            assert all(t.occurred_at.tzinfo is not None for t in first), "naive timestamps"

        def test_a_resend_after_a_lost_answer_writes_each_touch_once(self, kit: KitSpec) -> None:
            crm = self._crm(kit)
            if kit.touches_to_push is None or kit.count_written is None:
                pytest.skip("the kit gives no touches to push")
            touches = list(kit.touches_to_push())
            assert touches, "the kit gave an empty batch"
            sent = datetime.now(UTC)
            crm.push_touches(touches)  # its answer is lost: the ledger knows only when it went
            again = [replace(t, attempted_at=sent) for t in touches]
            results = crm.push_touches(again)
            assert [r.key for r in results if r.ok] == [t.key for t in touches]
            counts = kit.count_written([t.key for t in touches])
            assert counts == {t.key: 1 for t in touches}

        def test_a_touch_sent_with_its_record_id_rewrites_that_record(self, kit: KitSpec) -> None:
            crm = self._crm(kit)
            if kit.touches_to_push is None or kit.count_written is None:
                pytest.skip("the kit gives no touches to push")
            touches = list(kit.touches_to_push())
            first = {r.key: r.crm_id for r in crm.push_touches(touches) if r.ok}
            assert set(first) == {t.key for t in touches}
            again = [replace(t, crm_id=first[t.key]) for t in touches]
            results = crm.push_touches(again)
            assert {r.key: r.crm_id for r in results if r.ok} == first
            counts = kit.count_written([t.key for t in touches])
            assert counts == {t.key: 1 for t in touches}

        def test_people_resolve_by_email_in_any_case(self, kit: KitSpec) -> None:
            crm = self._crm(kit)
            if not kit.known_emails:
                pytest.skip("the kit names no known emails")
            emails = [e.upper() for e in kit.known_emails]
            found = crm.resolve_people(emails)
            assert set(found) == {e.lower() for e in kit.known_emails}

    return ConnectorBattery
