"""Marketo bulk activity export jobs, each created and enqueued once whatever the network does.

Creating a job (``POST /bulk/v1/activities/export/create.json``) is not idempotent: when its
answer is lost (HTTP 5xx, a timeout, a dropped connection) the job may exist all the same.
``start_export`` repeats the create with exponential backoff, and after any lost attempt it
cancels the jobs those attempts may have made. Marketo lists an API user's export jobs of the
past seven days by status, and only that user's own
(``GET /bulk/v1/activities/export.json?status=Created``,
https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/bulk-extract/bulk-extract),
so a job of closedloop's API user still in status Created that no export of this process is
about to enqueue is a stray of a lost create (of this run or of an earlier one that died). A
Created job is never processed and counts against neither the queue of 10 nor the 500 MB daily
allocation (they count enqueued jobs and their files), so a stray the sweep misses (the sweep
itself failing) costs nothing: what matters is that no second job for a window is ever
enqueued, and none is.

Enqueueing (``POST .../{exportId}/enqueue.json``) is repeated only while the job is still
Created: after a lost answer, the job's status (a GET, safe to repeat) tells whether that
enqueue took effect; a repeat that crosses a late-applied one answers 1029 "Job already
queued", which means the same
(https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/error-codes).

Give closedloop an API-only user of its own: the sweep cannot tell a stray from a job another
program using the same API user created a moment earlier and has not enqueued yet.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import structlog

from connectors.errors import ClosedloopError, Fatal, RateLimited, Transient
from connectors.marketo.client import MarketoClient

__all__ = ["EXPORTS", "created_jobs", "export_field", "start_export"]

EXPORTS = "/bulk/v1/activities/export"
# Get Export Activity Jobs answers at most 300 jobs a page (Swagger getExportActivitiesUsingGET).
_JOBS_PAGE = 300
_MAX_JOB_PAGES = 10

_log = structlog.get_logger(__name__)
# Jobs this process created and has not enqueued yet: never strays.
_pending_lock = threading.Lock()
_pending: set[str] = set()


def start_export(client: MarketoClient, request: Mapping[str, Any]) -> str:
    """Create an activity export job for ``request`` and enqueue it, once each; its exportId."""
    export_id = _create(client, request)
    try:
        _enqueue(client, export_id)
    finally:
        with _pending_lock:
            _pending.discard(export_id)
    return export_id


def created_jobs(client: MarketoClient) -> list[str]:
    """The exportIds of this API user's activity export jobs in status Created."""
    found: list[str] = []
    token: str | None = None
    for _ in range(_MAX_JOB_PAGES):
        params: dict[str, Any] = {"status": "Created", "batchSize": _JOBS_PAGE}
        if token:
            params["nextPageToken"] = token
        body = client.call("GET", f"{EXPORTS}.json", params=params)
        page = [job for job in body.get("result") or [] if isinstance(job, Mapping)]
        found += [str(j["exportId"]) for j in page if j.get("status") == "Created"]
        token = body.get("nextPageToken")
        if len(page) < _JOBS_PAGE or not isinstance(token, str) or not token:
            break
    return found


def _create(client: MarketoClient, request: Mapping[str, Any]) -> str:
    lost = 0

    def attempt() -> str:
        nonlocal lost
        try:
            body = client.call("POST", f"{EXPORTS}/create.json", json_body=request)
        except Transient:
            lost += 1
            raise
        export_id = export_field(body, "exportId")
        with _pending_lock:
            _pending.add(export_id)
        return export_id

    try:
        export_id: str = client.retrying()(attempt)
    finally:
        if lost:
            _cancel_strays(client)
    return export_id


def _enqueue(client: MarketoClient, export_id: str) -> None:
    tried = False

    def attempt() -> None:
        nonlocal tried
        repeat, tried = tried, True
        if repeat and _status(client, export_id) != "Created":
            return  # the lost attempt took effect (or the job ended: polling says how)
        try:
            client.call("POST", f"{EXPORTS}/{export_id}/enqueue.json")
        except RateLimited as exc:
            if repeat and "already queued" in str(exc).lower():
                return
            raise

    client.retrying()(attempt)


def _cancel_strays(client: MarketoClient) -> None:
    """Cancel the Created jobs no export of this process is about to enqueue (best effort)."""
    try:
        jobs = created_jobs(client)
    except ClosedloopError as exc:
        _log.warning("marketo_export_strays_not_listed", error=str(exc))
        return
    with _pending_lock:
        strays = [job for job in jobs if job not in _pending]
    cancelled: list[str] = []
    for export_id in strays:
        try:
            client.call("POST", f"{EXPORTS}/{export_id}/cancel.json", retry_safe=True)
        except ClosedloopError as exc:
            _log.warning("marketo_export_stray_left", export_id=export_id, error=str(exc))
            continue
        cancelled.append(export_id)
    if cancelled:
        _log.info("marketo_export_strays_cancelled", export_ids=cancelled)


def _status(client: MarketoClient, export_id: str) -> str:
    return export_field(client.call("GET", f"{EXPORTS}/{export_id}/status.json"), "status")


def export_field(body: Mapping[str, Any], name: str) -> str:
    """The ``name`` member of the job in a bulk export answer (Fatal when it is missing)."""
    result = body.get("result") or []
    if not result or not isinstance(result[0], Mapping) or name not in result[0]:
        raise Fatal(f"Marketo bulk export answer has no {name!r}")
    return str(result[0][name])
