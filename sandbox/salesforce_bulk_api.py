"""The Salesforce emulator's Bulk API 2.0 endpoints: ingest and query jobs over HTTP.

The jobs themselves (CSV parsing, processing, result files, query pages) are
``salesforce_bulk``; these handlers check the job and its state and answer as Salesforce does.
"""

from __future__ import annotations

from sandbox.salesforce_bulk import (
    BulkJob,
    create_ingest_job,
    create_query_job,
    ingest_results_csv,
    job_info,
    process_ingest,
    query_page,
)
from sandbox.salesforce_call import Call, Reply, not_found
from sandbox.salesforce_values import ApiError

__all__ = [
    "h_bulk_ingest_create",
    "h_bulk_ingest_results",
    "h_bulk_ingest_state",
    "h_bulk_ingest_upload",
    "h_bulk_job_delete",
    "h_bulk_job_get",
    "h_bulk_query_abort",
    "h_bulk_query_create",
    "h_bulk_query_results",
]


def _job(call: Call, kind: str) -> BulkJob:
    job = call.store.bulk_jobs.get(call.parts[2])
    if not isinstance(job, BulkJob) or job.kind != kind:
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    return job


def h_bulk_ingest_create(call: Call) -> Reply:
    job = create_ingest_job(call.store, call.json(), call.version)
    return Reply(200, job_info(job))


def h_bulk_ingest_upload(call: Call) -> Reply:
    job = _job(call, "ingest")
    if job.state != "Open":
        raise ApiError(409, "INVALIDJOBSTATE", f"Job is not open for uploads (state {job.state})")
    if not call.body:
        raise ApiError(400, "INVALIDJOB", "Empty upload")
    job.uploads.append(call.body.decode("utf-8-sig"))
    return Reply(201, None)


def h_bulk_ingest_state(call: Call) -> Reply:
    job = _job(call, "ingest")
    wanted = (call.json() or {}).get("state")
    if wanted == "UploadComplete":
        if job.state != "Open":
            raise ApiError(
                409, "INVALIDJOBSTATE", f"Job cannot move from {job.state} to UploadComplete"
            )
        process_ingest(call.store, job)
    elif wanted == "Aborted":
        if job.state in ("JobComplete", "Failed"):
            raise ApiError(409, "INVALIDJOBSTATE", f"Job cannot move from {job.state} to Aborted")
        job.state = "Aborted"
    else:
        raise ApiError(400, "INVALIDJOBSTATE", f"Invalid state: {wanted}")
    return Reply(200, job_info(job))


def h_bulk_job_get(call: Call) -> Reply:
    return Reply(200, job_info(_job(call, call.parts[1]), poll=True))


def h_bulk_job_delete(call: Call) -> Reply:
    job = _job(call, call.parts[1])
    del call.store.bulk_jobs[job.id]
    return Reply(204)


def h_bulk_query_abort(call: Call) -> Reply:
    job = _job(call, "query")
    job.state = "Aborted"
    return Reply(200, job_info(job))


def h_bulk_ingest_results(call: Call) -> Reply:
    job = _job(call, "ingest")
    if call.parts[3] not in ("successfulResults", "failedResults", "unprocessedRecords"):
        raise not_found()
    return Reply(200, text=ingest_results_csv(job, call.parts[3]), content_type="text/csv")


def h_bulk_query_create(call: Call) -> Reply:
    job = create_query_job(call.store, call.json(), call.version)
    return Reply(200, job_info(job))


def h_bulk_query_results(call: Call) -> Reply:
    job = _job(call, "query")
    if job.state != "JobComplete":
        raise ApiError(
            400, "INVALIDJOBSTATE", f"Results are not available: job state is {job.state}"
        )
    raw_max = call.params.get("maxRecords", "")
    max_records = int(raw_max) if raw_max.isdigit() and int(raw_max) > 0 else 50_000
    text, locator, count = query_page(job, call.params.get("locator"), max_records)
    return Reply(
        200,
        text=text,
        content_type="text/csv",
        headers={"Sforce-Locator": locator, "Sforce-NumberOfRecords": str(count)},
    )
