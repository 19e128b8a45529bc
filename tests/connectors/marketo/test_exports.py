"""Bulk export jobs under lost answers: created once, enqueued once, strays cancelled (respx)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import httpx
import pytest
import respx

from connectors.errors import Transient
from connectors.marketo.source import MarketoSource
from connectors.ratelimit import ManualClock
from tests.connectors.marketo.conftest import fail, ok

EXPORTS = "/bulk/v1/activities/export"
CSV = b"marketoGUID,leadId,activityDate,activityTypeId\ng1,1,2026-06-01T10:00:00Z,10\n"
START, END = datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC)


def job(export_id: str, status: str, **extra: object) -> dict[str, object]:
    """One export job as Marketo describes it."""
    return {"exportId": export_id, "status": status, "format": "CSV", **extra}


def completed(export_id: str) -> httpx.Response:
    """A status answer: the job is done and its file is ``CSV``."""
    checksum = "sha256:" + hashlib.sha256(CSV).hexdigest()
    return ok([job(export_id, "Completed", fileChecksum=checksum)])


def serve_file(api: respx.MockRouter, export_id: str) -> None:
    """The job's CSV file."""
    api.get(f"{EXPORTS}/{export_id}/file.json").mock(
        return_value=httpx.Response(200, content=CSV, headers={"content-type": "text/csv"})
    )


def test_a_create_whose_answer_is_lost_is_retried_and_the_job_it_made_is_cancelled(
    source: MarketoSource, api: respx.MockRouter, clock: ManualClock
) -> None:
    create = api.post(f"{EXPORTS}/create.json").mock(
        side_effect=[httpx.Response(502), ok([job("e2", "Created")])]
    )
    # The lost attempt made job e1; e2 is the one the retry got back.
    jobs = api.get(f"{EXPORTS}.json").mock(
        return_value=ok([job("e1", "Created"), job("e2", "Created")])
    )
    cancel_e1 = api.post(f"{EXPORTS}/e1/cancel.json").mock(return_value=ok([job("e1", "Canceled")]))
    cancel_e2 = api.post(f"{EXPORTS}/e2/cancel.json").mock(return_value=ok([job("e2", "Canceled")]))
    enqueue = api.post(f"{EXPORTS}/e2/enqueue.json").mock(return_value=ok([job("e2", "Queued")]))
    api.get(f"{EXPORTS}/e2/status.json").mock(return_value=completed("e2"))
    serve_file(api, "e2")

    rows = source.bulk_export(START, END, [10])

    assert [r["marketoGUID"] for r in rows] == ["g1"]
    assert create.call_count == 2
    assert clock.sleeps[0] >= 1.0  # backed off before creating again
    assert jobs.calls.last.request.url.params["status"] == "Created"
    assert cancel_e1.call_count == 1  # the stray of the lost attempt
    assert cancel_e2.call_count == 0  # never the job being exported
    assert enqueue.call_count == 1


def test_a_create_that_keeps_failing_is_transient_and_cancels_what_it_may_have_made(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    create = api.post(f"{EXPORTS}/create.json").mock(return_value=httpx.Response(503))
    api.get(f"{EXPORTS}.json").mock(return_value=ok([job("e1", "Created"), job("e2", "Created")]))
    cancels = api.post(url__regex=rf"{EXPORTS}/e\d/cancel\.json").mock(return_value=ok([]))
    enqueue = api.post(url__regex=r".*/enqueue\.json")

    with pytest.raises(Transient, match=r"create\.json failed: HTTP 503"):
        source.bulk_export(START, END, [10])

    assert create.call_count == source.settings.max_attempts
    assert sorted(str(c.request.url.path) for c in cancels.calls) == [
        f"{EXPORTS}/e1/cancel.json",
        f"{EXPORTS}/e2/cancel.json",
    ]
    assert enqueue.call_count == 0


def test_a_create_that_succeeds_at_once_lists_and_cancels_nothing(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    api.post(f"{EXPORTS}/create.json").mock(return_value=ok([job("e1", "Created")]))
    jobs = api.get(f"{EXPORTS}.json")
    api.post(f"{EXPORTS}/e1/enqueue.json").mock(return_value=ok([job("e1", "Queued")]))
    api.get(f"{EXPORTS}/e1/status.json").mock(return_value=completed("e1"))
    serve_file(api, "e1")

    assert len(source.bulk_export(START, END, [10])) == 1
    assert jobs.call_count == 0


def test_an_enqueue_whose_answer_is_lost_is_not_repeated_once_the_job_is_queued(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    api.post(f"{EXPORTS}/create.json").mock(return_value=ok([job("e1", "Created")]))
    enqueue = api.post(f"{EXPORTS}/e1/enqueue.json").mock(return_value=httpx.Response(502))
    api.get(f"{EXPORTS}/e1/status.json").mock(
        side_effect=[ok([job("e1", "Queued")]), completed("e1")]
    )
    serve_file(api, "e1")

    assert len(source.bulk_export(START, END, [10])) == 1
    assert enqueue.call_count == 1


def test_an_enqueue_that_failed_before_taking_effect_is_repeated(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    api.post(f"{EXPORTS}/create.json").mock(return_value=ok([job("e1", "Created")]))
    enqueue = api.post(f"{EXPORTS}/e1/enqueue.json").mock(
        side_effect=[httpx.Response(503), ok([job("e1", "Queued")])]
    )
    api.get(f"{EXPORTS}/e1/status.json").mock(
        side_effect=[ok([job("e1", "Created")]), completed("e1")]
    )
    serve_file(api, "e1")

    assert len(source.bulk_export(START, END, [10])) == 1
    assert enqueue.call_count == 2


def test_a_repeated_enqueue_answered_job_already_queued_goes_on_to_the_export(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    # The first enqueue took effect after the status check: the repeat meets 1029.
    api.post(f"{EXPORTS}/create.json").mock(return_value=ok([job("e1", "Created")]))
    enqueue = api.post(f"{EXPORTS}/e1/enqueue.json").mock(
        side_effect=[httpx.Response(504), fail("1029", "Job already queued")]
    )
    api.get(f"{EXPORTS}/e1/status.json").mock(
        side_effect=[ok([job("e1", "Created")]), completed("e1")]
    )
    serve_file(api, "e1")

    assert len(source.bulk_export(START, END, [10])) == 1
    assert enqueue.call_count == 2
