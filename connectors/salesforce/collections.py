"""Batched reads and writes of existing records, five sObject Collections or queries to a call.

Composite takes 25 subrequests of which at most five may be sObject Collections or queries, so
``query_rows`` sends five SOQL queries (or next-page reads) per counted call and
``write_records`` five collections of up to 200 creates, updates or deletes per counted call.
Per-record refusals come back as ``RecordRejected`` (Salesforce's code and message, the caller's
key); a whole collection refused for a configuration reason (a missing field or object) is a
``ConfigError``. Used by the write-backs in ``influence`` and ``flags``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from connectors.errors import ConfigError, Fatal, RecordRejected
from connectors.salesforce.client import MAX_COMPOSITE_HEAVY, SalesforceClient, error_code

__all__ = [
    "COLLECTION_SIZE",
    "Write",
    "WriteOutcome",
    "chunks",
    "errors_text",
    "query_each",
    "query_rows",
    "save_results",
    "write_records",
]

COLLECTION_SIZE = 200  # records (or ids to delete) per sObject Collections subrequest
_CONFIG_CODES = ("INVALID_FIELD", "INVALID_TYPE", "NOT_FOUND", "INVALID_FIELD_FOR_INSERT_UPDATE")

Verb = Literal["create", "update", "delete"]


def errors_text(errors: Any) -> tuple[str, str]:
    """(first code, all messages) of a save result's or subresponse's error list."""
    items = errors if isinstance(errors, list) else [errors]
    code = error_code(items) or "UNKNOWN_ERROR"
    messages = [str(e.get("message")) for e in items if isinstance(e, Mapping) and e.get("message")]
    return code, "; ".join(messages) or code


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def query_each(client: SalesforceClient, queries: Sequence[str]) -> list[list[dict[str, Any]]]:
    """The rows of each SOQL query, five queries (or next pages) per Composite request."""
    rows: list[list[dict[str, Any]]] = [[] for _ in queries]
    pending = [(i, f"query?q={quote(q, safe='')}") for i, q in enumerate(queries)]
    while pending:
        batch, pending = pending[:MAX_COMPOSITE_HEAVY], pending[MAX_COMPOSITE_HEAVY:]
        subs = [client.subrequest("GET", path, f"q{n}") for n, (_, path) in enumerate(batch)]
        for (index, _), answer in zip(batch, client.composite(subs), strict=True):
            body = answer.get("body")
            if int(answer.get("httpStatusCode", 500)) >= 300 or not isinstance(body, dict):
                code, message = errors_text(body)
                error = ConfigError if code in _CONFIG_CODES else Fatal
                raise error(f"Salesforce query failed: {code}: {message}")
            rows[index].extend(body.get("records") or [])
            if not body.get("done", True) and body.get("nextRecordsUrl"):
                pending.append((index, client.relative(str(body["nextRecordsUrl"]))))
    return rows


def query_rows(client: SalesforceClient, queries: Sequence[str]) -> list[dict[str, Any]]:
    """Every row of every SOQL query (``query_each``, flattened)."""
    return [row for rows in query_each(client, queries) for row in rows]


@dataclass(frozen=True)
class Write:
    """One record to create or update (``values`` with ``Id`` for updates) or delete (``Id``)."""

    verb: Verb
    sobject: str
    key: str  # the caller's name for the record in rejections (never a secret)
    values: Mapping[str, Any]


@dataclass
class WriteOutcome:
    """What ``write_records`` did: records written per verb, refusals, Composite calls made."""

    written: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("create", "update", "delete"), 0)
    )
    rejected: list[RecordRejected] = field(default_factory=list)
    calls: int = 0


def _subrequest(client: SalesforceClient, group: Sequence[Write], ref: str) -> dict[str, Any]:
    verb = group[0].verb
    if verb == "delete":
        ids = ",".join(str(w.values["Id"]) for w in group)
        return client.subrequest("DELETE", f"composite/sobjects?ids={ids}&allOrNone=false", ref)
    records = [{"attributes": {"type": w.sobject}, **w.values} for w in group]
    method = "POST" if verb == "create" else "PATCH"
    return client.subrequest(
        method, "composite/sobjects", ref, {"allOrNone": False, "records": records}
    )


def write_records(client: SalesforceClient, writes: Sequence[Write]) -> WriteOutcome:
    """Apply ``writes`` in order (deletes, updates, creates as given), 1,000 records per call.

    A Composite request holding creates is not repeated after a transient failure (it could
    create twice); the write-backs read before they write, so running them again is the retry.
    """
    outcome = WriteOutcome()
    groups: list[Sequence[Write]] = []
    run: list[Write] = []
    for write in writes:
        if run and (run[0].verb, run[0].sobject) != (write.verb, write.sobject):
            groups.extend(chunks(run, COLLECTION_SIZE))
            run = []
        run.append(write)
    groups.extend(chunks(run, COLLECTION_SIZE))
    for batch in chunks(groups, MAX_COMPOSITE_HEAVY):
        subs = [_subrequest(client, group, f"w{n}") for n, group in enumerate(batch)]
        repeatable = all(group[0].verb != "create" for group in batch)
        answers = client.composite(subs, repeatable=repeatable)
        outcome.calls += 1
        for group, answer in zip(batch, answers, strict=True):
            for write, saved in zip(group, _results(answer, group), strict=True):
                if saved.get("success"):
                    outcome.written[write.verb] += 1
                else:
                    code, message = errors_text(saved.get("errors"))
                    outcome.rejected.append(
                        RecordRejected(
                            f"Salesforce refused to {write.verb} {write.sobject} {write.key}: "
                            f"{message}",
                            code=code,
                            key=write.key,
                        )
                    )
    return outcome


def save_results(answer: Mapping[str, Any], size: int) -> list[Mapping[str, Any]]:
    """Per-record save results of a collection subresponse (a whole-call error: for all)."""
    body = answer.get("body")
    ok = int(answer.get("httpStatusCode", 500)) < 300
    if ok and isinstance(body, list) and len(body) == size:
        return body
    return [{"success": False, "errors": body if isinstance(body, list) else [body]}] * size


def _results(answer: Mapping[str, Any], group: Sequence[Write]) -> list[Mapping[str, Any]]:
    """``save_results``, with a whole group refused for a configuration reason raised."""
    results = save_results(answer, len(group))
    if results is not answer.get("body"):
        code, message = errors_text(answer.get("body"))
        if code in _CONFIG_CODES:
            raise ConfigError(
                f"Salesforce refused to {group[0].verb} {group[0].sobject} records: "
                f"{code}: {message}"
            )
    return results
