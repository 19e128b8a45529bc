"""Bulk API 2.0 jobs of the Salesforce emulator: ingest (CSV in, results CSV out) and query jobs.

Jobs are processed synchronously when the client marks the upload complete (or creates a query
job), but report ``InProgress`` for ``store.bulk_polls_before_complete`` status polls first, so
clients must really poll. Row semantics follow Bulk API 2.0: an empty CSV value leaves the field
alone, ``#N/A`` sets it to null; each row succeeds or fails on its own.
"""

from __future__ import annotations

import base64
import csv
import io
from dataclasses import dataclass, field
from typing import Any

from sandbox.salesforce_soql import CompiledQuery, format_datetime
from sandbox.salesforce_store import (
    ApiError,
    DmlError,
    FieldTypeError,
    SalesforceStore,
)

__all__ = [
    "BulkJob",
    "create_ingest_job",
    "create_query_job",
    "job_info",
    "process_ingest",
    "query_page",
]

_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
_DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "PIPE": "|",
    "SEMICOLON": ";",
    "CARET": "^",
    "BACKQUOTE": "`",
}


@dataclass
class BulkJob:
    """One ingest or query job and, once processed, its results."""

    id: str
    kind: str  # ingest | query
    operation: str
    sobject: str
    created: str
    api_version: str
    external_id_field: str | None = None
    line_ending: str = "LF"
    column_delimiter: str = "COMMA"
    state: str = "Open"
    polls_left: int = 0
    error_message: str | None = None
    uploads: list[str] = field(default_factory=list)
    successes: list[list[str]] = field(default_factory=list)
    failures: list[list[str]] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    compiled: CompiledQuery | None = None
    rows: list[Any] = field(default_factory=list)


def job_info(job: BulkJob, *, poll: bool = False) -> dict[str, Any]:
    """The job as GET jobs/... returns it; a poll consumes one of the InProgress answers."""
    state = job.state
    if state == "UploadComplete" and poll:
        if job.polls_left > 0:
            job.polls_left -= 1
            state = "InProgress"
        else:
            job.state = state = "JobComplete"
    elif state == "UploadComplete":
        state = "InProgress" if job.polls_left > 0 else "UploadComplete"
    info: dict[str, Any] = {
        "id": job.id,
        "operation": job.operation,
        "object": job.sobject,
        "createdById": "",
        "createdDate": job.created,
        "systemModstamp": job.created,
        "state": state,
        "concurrencyMode": "Parallel",
        "contentType": "CSV",
        "apiVersion": float(job.api_version),
        "lineEnding": job.line_ending,
        "columnDelimiter": job.column_delimiter,
        "retries": 0,
        "totalProcessingTime": 0,
    }
    if job.kind == "ingest":
        info["externalIdFieldName"] = job.external_id_field
        info["contentUrl"] = f"services/data/v{job.api_version}/jobs/ingest/{job.id}/batches"
        done = state == "JobComplete"
        info["numberRecordsProcessed"] = len(job.successes) + len(job.failures) if done else 0
        info["numberRecordsFailed"] = len(job.failures) if done else 0
    else:
        info["numberRecordsProcessed"] = len(job.rows) if state == "JobComplete" else 0
    if job.error_message:
        info["errorMessage"] = job.error_message
    return info


def _job_id(store: SalesforceStore) -> str:
    store._seq += 1
    return f"7508c{store._seq:010d}AAA"


def create_ingest_job(store: SalesforceStore, body: Any, version: str) -> BulkJob:
    """Validate a POST jobs/ingest body and open the job."""
    if not isinstance(body, dict):
        raise ApiError(400, "INVALIDJOB", "Invalid job: request body must be a JSON object")
    operation = body.get("operation")
    if operation not in _OPERATIONS:
        raise ApiError(400, "INVALIDJOB", f"Invalid operation: {operation}")
    obj = store.object_def(str(body.get("object") or ""))
    if obj is None:
        raise ApiError(
            400, "INVALIDJOB", f"Entity '{body.get('object')}' is not supported by the Bulk API."
        )
    if body.get("contentType", "CSV") != "CSV":
        raise ApiError(400, "INVALIDJOB", "Invalid contentType: only CSV is supported")
    if body.get("columnDelimiter", "COMMA") not in _DELIMITERS:
        raise ApiError(400, "INVALIDJOB", f"Invalid columnDelimiter: {body.get('columnDelimiter')}")
    ext = body.get("externalIdFieldName")
    if operation == "upsert":
        ext_field = obj.field_ci(str(ext or ""))
        if ext_field is None or not (ext_field.external_id or ext_field.name == "Id"):
            raise ApiError(
                400,
                "INVALIDJOB",
                f"External ID was blank or not an external id field for {obj.name}. "
                "An External ID must be specified for upsert.",
            )
        ext = ext_field.name
    job = BulkJob(
        id=_job_id(store),
        kind="ingest",
        operation=operation,
        sobject=obj.name,
        created=format_datetime(store.clock.now()),
        api_version=version,
        external_id_field=ext,
        line_ending=body.get("lineEnding", "LF"),
        column_delimiter=body.get("columnDelimiter", "COMMA"),
    )
    store.bulk_jobs[job.id] = job
    return job


def _error_text(errors: list[dict[str, Any]]) -> str:
    first = errors[0]
    return f"{first['statusCode']}:{first['message']}:{','.join(first.get('fields', []))} --"


def process_ingest(store: SalesforceStore, job: BulkJob) -> None:
    """Apply every uploaded row; each row lands in successes or failures."""
    delimiter = _DELIMITERS[job.column_delimiter]
    obj = store.object_def(job.sobject)
    assert obj is not None
    rows: list[list[str]] = []
    header: list[str] = []
    for upload in job.uploads:
        reader = csv.reader(io.StringIO(upload), delimiter=delimiter)
        chunk = list(reader)
        if not chunk:
            continue
        if header and chunk[0] != header:
            job.state, job.error_message = (
                "Failed",
                "InvalidBatch : all uploads must share one header",
            )
            return
        header = chunk[0]
        rows.extend(r for r in chunk[1:] if r)
    unknown = [name for name in header if obj.field_ci(name) is None]
    if unknown:
        job.state, job.error_message = (
            "Failed",
            f"InvalidBatch : Field name not found : {unknown[0]}",
        )
        return
    job.header = header
    for raw in rows:
        record: dict[str, str | None] = {
            name: (None if value == "#N/A" else value)
            for name, value in zip(header, raw, strict=False)
            if value != ""
        }
        try:
            record_id, created = _apply_row(store, job, record)
        except DmlError as exc:
            job.failures.append([str(record.get("Id") or ""), _error_text(exc.errors), *raw])
        except FieldTypeError as exc:
            job.failures.append([str(record.get("Id") or ""), _error_text([exc.as_dml()]), *raw])
        else:
            job.successes.append([record_id, "true" if created else "false", *raw])
    job.uploads = []
    job.state = "UploadComplete"
    job.polls_left = store.bulk_polls_before_complete


def _apply_row(store: SalesforceStore, job: BulkJob, record: dict[str, Any]) -> tuple[str, bool]:
    obj = store.object_def(job.sobject)
    assert obj is not None
    if job.operation in ("delete", "hardDelete"):
        record_id = str(record.get("Id") or "")
        if not record_id:
            raise DmlError(
                [{"statusCode": "MISSING_ARGUMENT", "message": "Id not specified", "fields": []}]
            )
        store.delete(record_id)
        return record_id, False
    values = store.deserialize(obj, record, from_csv=True)
    if job.operation == "insert":
        return store.create(obj.name, values), True
    if job.operation == "update":
        record_id = values.pop("Id", None)
        if not record_id:
            raise DmlError(
                [
                    {
                        "statusCode": "MISSING_ARGUMENT",
                        "message": "Id not specified in an update call",
                        "fields": [],
                    }
                ]
            )
        store.update(obj.name, record_id, values)
        return record_id, False
    assert job.external_id_field is not None
    ext_value = values.pop(job.external_id_field, None)
    return store.upsert(obj.name, job.external_id_field, ext_value, values)


def ingest_results_csv(job: BulkJob, which: str) -> str:
    """successfulResults / failedResults / unprocessedRecords as CSV."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    if which == "successfulResults":
        writer.writerow(["sf__Id", "sf__Created", *job.header])
        writer.writerows(job.successes)
    elif which == "failedResults":
        writer.writerow(["sf__Id", "sf__Error", *job.header])
        writer.writerows(job.failures)
    else:
        writer.writerow(job.header)
    return out.getvalue()


def create_query_job(store: SalesforceStore, body: Any, version: str) -> BulkJob:
    """Validate a POST jobs/query body, run the query and keep its snapshot."""
    from sandbox.salesforce_soql import SoqlError

    if not isinstance(body, dict) or body.get("operation") not in ("query", "queryAll"):
        raise ApiError(400, "INVALIDJOB", "Invalid operation: expected query or queryAll")
    text = body.get("query")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "INVALIDJOB", "Query is required for query jobs")
    try:
        compiled = store.compile(text)
    except SoqlError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    if compiled.count_only:
        raise ApiError(
            400, "INVALIDJOB", "Aggregate queries are not supported by Bulk API 2.0 query jobs"
        )
    rows = store.select(compiled, include_deleted=body["operation"] == "queryAll")
    job = BulkJob(
        id=_job_id(store),
        kind="query",
        operation=body["operation"],
        sobject=compiled.sobject.name,
        created=format_datetime(store.clock.now()),
        api_version=version,
        line_ending=body.get("lineEnding", "LF"),
        column_delimiter=body.get("columnDelimiter", "COMMA"),
        state="UploadComplete",
        polls_left=store.bulk_polls_before_complete,
        compiled=compiled,
        rows=rows,
    )
    store.bulk_jobs[job.id] = job
    return job


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def query_page(job: BulkJob, locator: str | None, max_records: int) -> tuple[str, str, int]:
    """One page of query results: (CSV text, next locator or "null", records in the page)."""
    assert job.compiled is not None
    start = 0
    if locator:
        try:
            start = int(base64.b64decode(locator.encode()).decode())
        except ValueError:
            raise ApiError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}") from None
    page = job.rows[start : start + max_records]
    out = io.StringIO()
    writer = csv.writer(
        out,
        delimiter=_DELIMITERS[job.column_delimiter],
        lineterminator="\r\n" if job.line_ending == "CRLF" else "\n",
        quoting=csv.QUOTE_ALL,
    )
    writer.writerow(job.compiled.headers())
    for row in page:
        writer.writerow([_csv_value(v) for v in job.compiled.flat(row)])
    end = start + len(page)
    next_locator = base64.b64encode(str(end).encode()).decode() if end < len(job.rows) else "null"
    return out.getvalue(), next_locator, len(page)
