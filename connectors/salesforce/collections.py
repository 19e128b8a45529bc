"""Batched reads and writes of records, five sObject Collections or queries to a call.

Composite takes 25 subrequests of which at most five may be sObject Collections or queries, so
``query_rows`` sends five SOQL queries (or next-page reads) per counted call and
``write_records`` five collections of up to 200 creates, updates or deletes per counted call.
Per-record refusals come back as ``RecordRejected`` (Salesforce's code and message, the caller's
key); a whole collection refused for a configuration reason (a missing field or object) is a
``ConfigError``. Used by the write-backs in ``influence`` and ``flags``.

Row locks: a save result refused with UNABLE_TO_LOCK_ROW (another transaction held the record
or a parent it refers to for longer than Salesforce waits, 10 s) saved nothing and says "not
now", not "not this record". ``save_all``, which every collection write goes through (touch
upserts, campaign members, people, write-backs), sends just those records again, up to
``lock_retries`` times with a doubling wait; the ones still locked come back as they are and
``is_transient`` tells the caller to leave them for the next run instead of dead-lettering them.

A whole collection failing inside a Composite answer: each subrequest has its own
``httpStatusCode`` and, when it failed, a body of REST errors (``errorCode``, ``message``)
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/responses_composite.htm).
A subrequest that failed for a server-side reason (a 5xx status, or SERVER_UNAVAILABLE /
REQUEST_RUNNING_TOO_LONG) says nothing about its records: ``save_results`` marks each of its
records ``retryable``, ``save_all`` sends the subrequest again like locked records (only where
the caller says the writes may be repeated: not creates) and ``is_retryable`` tells the caller to
leave the records still failing pending, never dead letters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from connectors.errors import ConfigError, Fatal, RecordRejected
from connectors.salesforce.client import MAX_COMPOSITE_HEAVY, SalesforceClient, error_code

__all__ = [
    "COLLECTION_SIZE",
    "Write",
    "WriteOutcome",
    "chunks",
    "errors_text",
    "is_retryable",
    "is_transient",
    "query_each",
    "query_rows",
    "save_all",
    "save_results",
    "server_failure",
    "write_records",
]

COLLECTION_SIZE = 200  # records (or ids to delete) per sObject Collections subrequest
_CONFIG_CODES = ("INVALID_FIELD", "INVALID_TYPE", "NOT_FOUND", "INVALID_FIELD_FOR_INSERT_UPDATE")
# Per-record codes that mean "try again later": the row (or its parent) was locked by another
# transaction past Salesforce's 10 s wait; nothing was saved.
# https://help.salesforce.com/apex/HTViewSolution?id=000229525 (Unable to lock row)
TRANSIENT_CODES = frozenset({"UNABLE_TO_LOCK_ROW"})
# A trigger or flow that failed on a lock reports its own code, the lock inside its message
# (seen in the field: CANNOT_EXECUTE_FLOW_TRIGGER "... UNABLE_TO_LOCK_ROW: unable to obtain
# exclusive access to this record ...").
_LOCK_WRAPPERS = frozenset({"CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", "CANNOT_EXECUTE_FLOW_TRIGGER"})
# Whole-request codes of a server that could not do the work now (503 "server is unavailable",
# a request cancelled for running too long); a subrequest answering one, or any 5xx status, is
# a failure of the subrequest, not of its records.
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
_SERVER_CODES = frozenset({"SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG"})
# The key ``save_results`` sets on the per-record results of such a subrequest (ours, not
# Salesforce's: a save result has ``id``, ``success``, ``errors``).
RETRYABLE = "retryable"

Verb = Literal["create", "update", "delete"]
K = TypeVar("K")
T = TypeVar("T")


def errors_text(errors: Any) -> tuple[str, str]:
    """(first code, all messages) of a save result's or subresponse's error list."""
    items = errors if isinstance(errors, list) else [errors]
    code = error_code(items) or "UNKNOWN_ERROR"
    messages = [str(e.get("message")) for e in items if isinstance(e, Mapping) and e.get("message")]
    return code, "; ".join(messages) or code


def is_transient(code: str | None, message: str | None = None) -> bool:
    """Whether a per-record refusal is a row lock a later attempt can get past."""
    if code in TRANSIENT_CODES:
        return True
    return code in _LOCK_WRAPPERS and "UNABLE_TO_LOCK_ROW" in (message or "")


def is_retryable(saved: Mapping[str, Any]) -> bool:
    """Whether a failed save result is "not now": a row lock, or its whole collection failed
    on the server (``save_results``); such records stay pending, never dead letters."""
    if saved.get("success"):
        return False
    return bool(saved.get(RETRYABLE)) or is_transient(*errors_text(saved.get("errors")))


def _again(saved: Mapping[str, Any], repeatable: bool) -> bool:
    """Whether ``save_all`` sends this record again: it was locked (nothing saved), or its
    collection failed on the server and the caller's writes may be repeated."""
    if saved.get("success"):
        return False
    if is_transient(*errors_text(saved.get("errors"))):
        return True
    return bool(saved.get(RETRYABLE)) and repeatable


def save_all(
    client: SalesforceClient,
    groups: Sequence[tuple[K, Sequence[T]]],
    subrequest: Callable[[K, Sequence[T], str], dict[str, Any]],
    *,
    repeatable: bool | Callable[[Sequence[K]], bool] = True,
    results_of: Callable[[K, Mapping[str, Any], Sequence[T]], Sequence[Mapping[str, Any]]]
    | None = None,
) -> list[list[Mapping[str, Any]]]:
    """The save result of every item of every collection (``groups``: (key, at most 200 items),
    ``subrequest(key, items, ref)`` builds one), five collections per Composite call; items
    refused for a row lock, and collections that failed on the server when ``repeatable``, are
    sent again (see the module docstring). ``repeatable`` says whether a Composite call or a
    subrequest may be repeated after a transient failure (given the keys it holds);
    ``results_of`` turns a subresponse into per-item results (default ``save_results``) and
    may raise for a whole collection."""
    settings = client.settings
    read = results_of or (lambda _key, answer, items: save_results(answer, len(items)))

    def may_repeat(keys: Sequence[K]) -> bool:
        return repeatable(keys) if callable(repeatable) else repeatable

    out: list[list[Mapping[str, Any]]] = [[{}] * len(items) for _, items in groups]
    todo = [(g, list(range(len(items)))) for g, (_, items) in enumerate(groups) if items]
    for attempt in range(settings.lock_retries + 1):
        if attempt:
            client.wait(settings.lock_retry_backoff_s * 2 ** (attempt - 1))
        for batch in chunks(todo, MAX_COMPOSITE_HEAVY):
            keys = [groups[g][0] for g, _ in batch]
            picked = [[groups[g][1][i] for i in idx] for g, idx in batch]
            pairs = enumerate(zip(keys, picked, strict=True))
            subs = [subrequest(key, items, f"s{n}") for n, (key, items) in pairs]
            answers = client.composite(subs, repeatable=may_repeat(keys))
            for (g, idx), key, items, answer in zip(batch, keys, picked, answers, strict=True):
                for i, saved in zip(idx, read(key, answer, items), strict=True):
                    out[g][i] = saved
        todo = [
            (g, [i for i in idx if _again(out[g][i], may_repeat([groups[g][0]]))])
            for g, idx in todo
        ]
        todo = [(g, idx) for g, idx in todo if idx]
        if not todo:
            break
    return out


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
    """What ``write_records`` did: records written per verb, refusals, records left for the
    next run (still row-locked after the retries), Composite calls made."""

    written: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("create", "update", "delete"), 0)
    )
    rejected: list[RecordRejected] = field(default_factory=list)
    deferred: list[RecordRejected] = field(default_factory=list)
    calls: int = 0


def _subrequest(
    client: SalesforceClient, key: tuple[Verb, str], group: Sequence[Write], ref: str
) -> dict[str, Any]:
    verb, sobject = key
    if verb == "delete":
        ids = ",".join(str(w.values["Id"]) for w in group)
        return client.subrequest("DELETE", f"composite/sobjects?ids={ids}&allOrNone=false", ref)
    records = [{"attributes": {"type": sobject}, **w.values} for w in group]
    method = "POST" if verb == "create" else "PATCH"
    # An update without the header runs the org's active assignment rule on Leads (the header
    # defaults to TRUE): closedloop's field writes must never reassign an owner.
    headers = {"Sforce-Auto-Assign": "FALSE"} if verb == "update" else None
    return client.subrequest(
        method, "composite/sobjects", ref, {"allOrNone": False, "records": records},
        headers=headers,
    )  # fmt: skip


def write_records(client: SalesforceClient, writes: Sequence[Write]) -> WriteOutcome:
    """Apply ``writes`` in order (deletes, updates, creates as given), 1,000 records per call.

    A Composite request holding creates is not repeated after a transient failure (it could
    create twice); the write-backs read before they write, so running them again is the retry.
    Records refused for a row lock, and updates and deletes whose collection failed on the
    server, are sent again (``save_all``); still failing, they are ``deferred``, not rejected:
    the next run writes them (creates of a collection the server failed are deferred at once).
    """
    outcome = WriteOutcome()
    groups: list[tuple[tuple[Verb, str], Sequence[Write]]] = []
    run: list[Write] = []
    for write in writes:
        if run and (run[0].verb, run[0].sobject) != (write.verb, write.sobject):
            groups.extend(((run[0].verb, run[0].sobject), c) for c in chunks(run, COLLECTION_SIZE))
            run = []
        run.append(write)
    if run:
        groups.extend(((run[0].verb, run[0].sobject), c) for c in chunks(run, COLLECTION_SIZE))
    before = client.api_calls
    results = save_all(
        client,
        groups,
        lambda key, group, ref: _subrequest(client, key, group, ref),
        repeatable=lambda keys: all(verb != "create" for verb, _ in keys),
        results_of=_results,
    )
    outcome.calls = client.api_calls - before
    for (_, group), saves in zip(groups, results, strict=True):
        for write, saved in zip(group, saves, strict=True):
            if saved.get("success"):
                outcome.written[write.verb] += 1
                continue
            code, message = errors_text(saved.get("errors"))
            refusal = RecordRejected(
                f"Salesforce refused to {write.verb} {write.sobject} {write.key}: {message}",
                code=code,
                key=write.key,
            )
            (outcome.deferred if is_retryable(saved) else outcome.rejected).append(refusal)
    return outcome


def server_failure(answer: Mapping[str, Any]) -> bool:
    """Whether a Composite subresponse failed whole on the server's side (5xx, or a code
    saying the server could not do it now), rather than for its request or its records."""
    status = int(answer.get("httpStatusCode", 500))
    if status >= 500:
        return True
    return status >= 300 and errors_text(answer.get("body"))[0] in _SERVER_CODES


def save_results(answer: Mapping[str, Any], size: int) -> list[Mapping[str, Any]]:
    """Per-record save results of a collection subresponse (a whole-call error: for all, each
    marked ``retryable`` when the server failed it)."""
    body = answer.get("body")
    ok = int(answer.get("httpStatusCode", 500)) < 300
    if ok and isinstance(body, list) and len(body) == size:
        return body
    failed: dict[str, Any] = {
        "success": False,
        "errors": body if isinstance(body, list) else [body],
    }
    if server_failure(answer):
        failed[RETRYABLE] = True
    return [failed] * size


def _results(
    key: tuple[Verb, str], answer: Mapping[str, Any], group: Sequence[Write]
) -> list[Mapping[str, Any]]:
    """``save_results``, with a whole group refused for a configuration reason raised."""
    results = save_results(answer, len(group))
    if results is not answer.get("body"):
        code, message = errors_text(answer.get("body"))
        if code in _CONFIG_CODES:
            raise ConfigError(f"Salesforce refused to {key[0]} {key[1]} records: {code}: {message}")
    return results
