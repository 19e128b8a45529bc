"""The Salesforce emulator's SOQL endpoints: query, queryAll and the next-records cursor.

The store compiles and runs the SOQL (``salesforce_soql``); here a result is cut into pages of
the ``Sforce-Query-Options`` batch size with a ``nextRecordsUrl`` cursor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.salesforce_call import Call, Reply
from sandbox.salesforce_soql import SoqlError
from sandbox.salesforce_values import ApiError

__all__ = ["DEFAULT_BATCH", "MIN_BATCH", "h_query", "h_query_all", "h_query_more"]

DEFAULT_BATCH = 2_000
MIN_BATCH = 200


def _batch_size(call: Call) -> int:
    options = call.headers.get("sforce-query-options", "")
    for option in options.split(","):
        name, _, value = option.strip().partition("=")
        if name.strip().lower() == "batchsize" and value.strip().isdigit():
            return max(MIN_BATCH, min(DEFAULT_BATCH, int(value)))
    return DEFAULT_BATCH


def _query_page(
    call: Call,
    *,
    cursor_id: str | None,
    rows: list[Mapping[str, Any]],
    start: int,
    size: int,
    endpoint: str,
    compiled: Any,
) -> dict[str, Any]:
    page = rows[start : start + size]
    end = start + len(page)
    result: dict[str, Any] = {"totalSize": len(rows), "done": end >= len(rows)}
    if end < len(rows):
        if cursor_id is None:
            cursor_id = call.store.open_cursor(compiled, rows, size, endpoint)
        result["nextRecordsUrl"] = f"{call.base}/{endpoint}/{cursor_id}-{end}"
    result["records"] = [compiled.project(row, call.base) for row in page]
    return result


def _run_query(call: Call, endpoint: str) -> Reply:
    text = call.params.get("q")
    if not text:
        raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
    try:
        compiled = call.store.compile(text)
    except SoqlError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    rows = call.store.select(compiled, include_deleted=endpoint == "queryAll")
    if compiled.count_only:
        if compiled.count_alias:
            aggregate = {"attributes": {"type": "AggregateResult"}, "expr0": len(rows)}
            return Reply(200, {"totalSize": 1, "done": True, "records": [aggregate]})
        return Reply(200, {"totalSize": len(rows), "done": True, "records": []})
    return Reply(
        200,
        _query_page(
            call,
            cursor_id=None,
            rows=rows,
            start=0,
            size=_batch_size(call),
            endpoint=endpoint,
            compiled=compiled,
        ),
    )


def h_query(call: Call) -> Reply:
    return _run_query(call, "query")


def h_query_all(call: Call) -> Reply:
    return _run_query(call, "queryAll")


def h_query_more(call: Call) -> Reply:
    cursor_id, _, position = call.parts[1].partition("-")
    cursor = call.store.cursor(cursor_id)
    if cursor is None or not position.isdigit():
        raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    return Reply(
        200,
        _query_page(
            call,
            cursor_id=cursor_id,
            rows=cursor.rows,
            start=int(position),
            size=cursor.batch_size,
            endpoint=cursor.endpoint,
            compiled=cursor.compiled,
        ),
    )
