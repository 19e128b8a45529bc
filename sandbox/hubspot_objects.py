"""The CRM objects API of an emulated HubSpot portal: create, read, update, archive, list, search.

Single and batch calls: batch create is all-or-nothing unless every input carries its own
``objectWriteTraceId`` (then 207 per record); batch read, update and upsert report per-record
failures in a 207; search pages stop at 10,000 results, a query holds at most 3,000 characters,
and a new record is found only ``search_index_lag_s`` after it was created.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sandbox.hubspot_records import (
    HISTORY_BATCH_LIMIT,
    LIST_PAGE_LIMIT,
    SEARCH_PAGE_LIMIT,
    SEARCH_QUERY_LIMIT,
    SEARCH_RESULT_CAP,
    HubSpotApiError,
    PortalBase,
    Record,
    batch_error,
)
from sandbox.hubspot_schema import singular
from sandbox.hubspot_search import SearchInputError, compile_filter_groups, sort_key

__all__ = ["PortalObjects"]

# Contacts carry ``hs_lastmodifieddate`` (portals list it among their properties) but their
# modification time in CRM search is ``lastmodifieddate``: the search guide names it as the
# contacts' default property (https://developers.hubspot.com/docs/api/crm/search), and
# integrators report that contacts filtered on ``hs_lastmodifieddate`` come back without the
# ones that changed, with a 200 (amp-labs/connectors#45, citing HubSpot's community forum). The
# emulator answers such a search as if no contact had a value there.
_UNINDEXED: dict[str, frozenset[str]] = {"contacts": frozenset({"hs_lastmodifieddate"})}


def _named_in(body: dict[str, Any]) -> set[str]:
    """Every property a search body filters or sorts on."""
    names: set[str] = set()
    groups = body.get("filterGroups")
    for group in groups if isinstance(groups, list) else []:
        filters = group.get("filters") if isinstance(group, dict) else None
        for spec in filters if isinstance(filters, list) else []:
            if isinstance(spec, dict):
                names.add(str(spec.get("propertyName")))
    sorts = body.get("sorts")
    for spec in sorts if isinstance(sorts, list) else []:
        if isinstance(spec, str):
            names.add(spec.lstrip("-"))
        elif isinstance(spec, dict):
            names.add(str(spec.get("propertyName")))
    return names


def _without(props: dict[str, str], hidden: set[str] | frozenset[str]) -> dict[str, str]:
    return {k: v for k, v in props.items() if k not in hidden}


def _sorter(name: str, kind: str) -> Callable[[Record], tuple[int, Any]]:
    return lambda record: sort_key(kind, record.properties.get(name))


class PortalObjects(PortalBase):
    """The CRM objects API: ``/crm/v3/objects/{type}`` and its batch and search endpoints."""

    # ------------------------------------------------------------------ objects
    def create_one(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /crm/v3/objects/{type}: one record, with inline associations."""
        _, answer = self.batch_create(object_type, {"inputs": [body]})
        return dict(answer["results"][0])

    def batch_create(self, object_type: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Batch create: all-or-nothing (400 on any invalid record, 409 on a used unique value),
        or per record (207) when every input carries its own ``objectWriteTraceId``."""
        self._check_type(object_type)
        started = self.clock.now()
        inputs = self._check_batch(body.get("inputs"))
        traces = [item.get("objectWriteTraceId") for item in inputs]
        if inputs and all(isinstance(t, str) and t for t in traces):
            if len(set(traces)) != len(traces):
                raise HubSpotApiError(
                    400, "VALIDATION_ERROR", "objectWriteTraceId values must be unique in a batch."
                )
            return self._traced_create(object_type, inputs, started)
        cleaned: list[dict[str, str]] = []
        problems: list[dict[str, Any]] = []
        for item in inputs:
            clean, errors = self._validate(object_type, item.get("properties"), creating=True)
            cleaned.append(clean)
            problems.extend(errors)
        if problems:
            raise HubSpotApiError(400, "VALIDATION_ERROR", self._invalid_message(problems))
        seen: dict[tuple[str, str], int] = {}
        for position, clean in enumerate(cleaned):
            existing = self._conflict(object_type, clean, None)
            if existing is not None:
                raise HubSpotApiError(
                    409, "CONFLICT", self._conflict_message(object_type, existing)
                )
            for name in self._unique[object_type]:
                value = clean.get(name)
                if value:
                    key = (name, self._unique_form(name, value))
                    if key in seen:
                        raise HubSpotApiError(
                            400,
                            "VALIDATION_ERROR",
                            f"Duplicate values found in batch input for unique property {name}: "
                            f"inputs {seen[key]} and {position}",
                        )
                    seen[key] = position
        links = self._inline_associations(object_type, inputs)
        results = []
        moment = self.clock.now()
        for clean, planned in zip(cleaned, links, strict=True):
            results.append(self._create_linked(object_type, clean, planned, moment))
        return self._batch_answer(results, [], started, 201)

    def _traced_create(
        self, object_type: str, inputs: list[dict[str, Any]], started: datetime
    ) -> tuple[int, dict[str, Any]]:
        """Create each valid input; each invalid one is an error naming its trace id (207)."""
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        moment = self.clock.now()
        for item in inputs:
            trace = str(item["objectWriteTraceId"])
            clean, problems = self._validate(object_type, item.get("properties"), creating=True)
            failure: HubSpotApiError | None = None
            if problems:
                failure = HubSpotApiError(400, "VALIDATION_ERROR", self._invalid_message(problems))
            elif (existing := self._conflict(object_type, clean, None)) is not None:
                failure = HubSpotApiError(
                    409, "CONFLICT", self._conflict_message(object_type, existing)
                )
            else:
                try:
                    links = self._links_of(object_type, item)
                except HubSpotApiError as exc:
                    failure = exc
            if failure is not None:
                errors.append(
                    {
                        "status": "error",
                        "category": failure.category,
                        "message": failure.message,
                        "context": {"objectWriteTraceId": [trace]},
                        "links": {},
                        "errors": [],
                    }
                )
                continue
            written = self._create_linked(object_type, clean, links, moment)
            results.append({**written, "objectWriteTraceId": trace})
        return self._batch_answer(results, errors, started, 201)

    def _create_linked(
        self,
        object_type: str,
        clean: dict[str, str],
        links: list[tuple[str, str, int]],
        moment: datetime,
    ) -> dict[str, Any]:
        record = self._store(object_type, clean, moment)
        for to_type, to_id, type_id in links:
            self.associate(object_type, record.id, to_type, to_id, type_id)
        return self._render_written(object_type, record)

    def batch_read(
        self, object_type: str, body: dict[str, Any], archived: bool
    ) -> tuple[int, dict[str, Any]]:
        """Batch read by id or unique ``idProperty``; unknown ids are OBJECT_NOT_FOUND (207)."""
        self._check_type(object_type)
        started = self.clock.now()
        with_history = body.get("propertiesWithHistory") or None
        inputs_given = body.get("inputs")
        if (
            with_history
            and isinstance(inputs_given, list)
            and len(inputs_given) > HISTORY_BATCH_LIMIT
        ):
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                "The maximum number of inputs supported in a batch request for property "
                f"histories is {HISTORY_BATCH_LIMIT}. Please reduce the number of items and "
                "try again",
            )
        inputs = self._check_batch(body.get("inputs"))
        id_property = body.get("idProperty")
        self._check_id_property(object_type, id_property)
        wanted = body.get("properties") or None
        results, missing = [], []
        pool = self.archived[object_type] if archived else None
        for item in inputs:
            key = str(item.get("id", ""))
            record = (
                pool.get(key)
                if pool is not None
                else self._resolve_id(object_type, key, id_property)
            )
            if record is None:
                missing.append(key)
            else:
                results.append(
                    self.render(
                        object_type, record, wanted, archived=archived, with_history=with_history
                    )
                )
        errors = []
        if missing:
            errors.append(
                batch_error(
                    "OBJECT_NOT_FOUND",
                    f"Could not get some {singular(object_type).upper()} objects, they may be "
                    "deleted or not exist. Check that ids are valid.",
                    missing,
                )
            )
        return self._batch_answer(results, errors, started, 200)

    def batch_update(self, object_type: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Batch update; unknown ids and invalid records fail alone (207), the rest are written."""
        self._check_type(object_type)
        started = self.clock.now()
        inputs = self._check_batch(body.get("inputs"))
        results, errors, missing = [], [], []
        for item in inputs:
            id_property = item.get("idProperty")
            self._check_id_property(object_type, id_property)
            key = str(item.get("id", ""))
            record = self._resolve_id(object_type, key, id_property)
            if record is None:
                missing.append(key)
                continue
            clean, problems = self._validate(object_type, item.get("properties"), creating=False)
            if problems:
                errors.append(
                    batch_error("VALIDATION_ERROR", self._invalid_message(problems), [key])
                )
                continue
            existing = self._conflict(object_type, clean, record.id)
            if existing is not None:
                errors.append(
                    batch_error("CONFLICT", self._conflict_message(object_type, existing), [key])
                )
                continue
            self._apply(object_type, record, clean)
            results.append(self._render_written(object_type, record))
        if missing:
            errors.append(
                batch_error(
                    "OBJECT_NOT_FOUND",
                    f"Could not find some {singular(object_type).upper()} objects to update.",
                    missing,
                )
            )
        return self._batch_answer(results, errors, started, 200)

    def batch_upsert(self, object_type: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Batch upsert on a unique ``idProperty``; ``new`` says which records were created."""
        self._check_type(object_type)
        started = self.clock.now()
        inputs = self._check_batch(body.get("inputs"))
        results, errors = [], []
        for item in inputs:
            id_property = item.get("idProperty")
            if not id_property or id_property == "hs_object_id":
                raise HubSpotApiError(
                    400, "VALIDATION_ERROR", "Upsert requires an idProperty with unique values."
                )
            self._check_id_property(object_type, id_property)
            key = str(item.get("id", ""))
            record = self._resolve_id(object_type, key, id_property)
            values = dict(item.get("properties") or {})
            values.setdefault(id_property, key)
            clean, problems = self._validate(object_type, values, creating=record is None)
            if problems:
                errors.append(
                    batch_error("VALIDATION_ERROR", self._invalid_message(problems), [key])
                )
                continue
            existing = self._conflict(object_type, clean, record.id if record else None)
            if existing is not None:
                errors.append(
                    batch_error("CONFLICT", self._conflict_message(object_type, existing), [key])
                )
                continue
            if record is None:
                record = self._store(object_type, clean)
                created = True
            else:
                self._apply(object_type, record, clean)
                created = False
            rendered = self._render_written(object_type, record)
            rendered["new"] = created
            results.append(rendered)
        return self._batch_answer(results, errors, started, 200)

    def batch_archive(self, object_type: str, body: dict[str, Any]) -> None:
        """Batch archive; ids that do not exist are ignored, like HubSpot's 204."""
        self._check_type(object_type)
        for item in self._check_batch(body.get("inputs")):
            self.archive_one(object_type, str(item.get("id", "")), missing_ok=True)

    def get_one(
        self,
        object_type: str,
        key: str,
        id_property: str | None,
        wanted: list[str] | None,
        archived: bool,
    ) -> dict[str, Any]:
        """GET /crm/v3/objects/{type}/{id}."""
        self._check_type(object_type)
        self._check_id_property(object_type, id_property)
        record = (
            self.archived[object_type].get(key)
            if archived
            else self._resolve_id(object_type, key, id_property)
        )
        if record is None:
            raise self._not_found(key)
        return self.render(object_type, record, wanted, archived=archived)

    @staticmethod
    def _not_found(key: str) -> HubSpotApiError:
        return HubSpotApiError(
            404,
            "OBJECT_NOT_FOUND",
            "Object not found.  objectId are usually numeric.",
            context={"id": [key]},
        )

    def update_one(
        self, object_type: str, key: str, id_property: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        """PATCH /crm/v3/objects/{type}/{id}."""
        self._check_type(object_type)
        self._check_id_property(object_type, id_property)
        record = self._resolve_id(object_type, key, id_property)
        if record is None:
            raise self._not_found(key)
        clean, problems = self._validate(object_type, body.get("properties"), creating=False)
        if problems:
            raise HubSpotApiError(400, "VALIDATION_ERROR", self._invalid_message(problems))
        existing = self._conflict(object_type, clean, record.id)
        if existing is not None:
            raise HubSpotApiError(409, "CONFLICT", self._conflict_message(object_type, existing))
        self._apply(object_type, record, clean)
        return self._render_written(object_type, record)

    def archive_one(self, object_type: str, key: str, *, missing_ok: bool = True) -> None:
        """DELETE /crm/v3/objects/{type}/{id}: move the record to the archive."""
        self._check_type(object_type)
        record = self.objects[object_type].pop(key, None)
        if record is None:
            if missing_ok:
                return
            raise self._not_found(key)
        self._unindex(object_type, record)
        record.updated = self.clock.now()
        self.archived[object_type][key] = record

    def list_objects(
        self,
        object_type: str,
        limit: int,
        after: str | None,
        wanted: list[str] | None,
        archived: bool,
    ) -> dict[str, Any]:
        """GET /crm/v3/objects/{type}: id-ordered pages with an ``after`` cursor."""
        self._check_type(object_type)
        if not 1 <= limit <= LIST_PAGE_LIMIT:
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f"limit must be between 1 and {LIST_PAGE_LIMIT}; got {limit}.",
            )
        pool = self.archived[object_type] if archived else self.objects[object_type]
        start = int(after) if after and after.isdigit() else 0
        ordered = sorted(int(k) for k in pool if int(k) > start)
        page = ordered[:limit]
        body: dict[str, Any] = {
            "results": [
                self.render(object_type, pool[str(k)], wanted, archived=archived) for k in page
            ]
        }
        if len(ordered) > limit:
            next_after = str(page[-1])
            body["paging"] = {
                "next": {
                    "after": next_after,
                    "link": f"/crm/v3/objects/{object_type}?after={next_after}",
                }
            }
        return body

    # ------------------------------------------------------------------- search
    def search(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /crm/v3/objects/{type}/search with HubSpot's limits (200/page, 10,000 results)."""
        self._check_type(object_type)
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 0 <= limit <= SEARCH_PAGE_LIMIT:
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f"Invalid search limit {limit}: limit must be at most {SEARCH_PAGE_LIMIT}.",
            )
        after_text = str(body.get("after") or "0")
        if not after_text.isdigit():
            raise HubSpotApiError(400, "VALIDATION_ERROR", f"Invalid 'after' value {after_text!r}.")
        after = int(after_text)
        if after >= SEARCH_RESULT_CAP:
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f"Search results are limited to {SEARCH_RESULT_CAP} records; "
                f"'after' {after} is beyond that. Narrow the query instead of paging further.",
            )
        types = self._types(object_type)
        try:
            matches = compile_filter_groups(body.get("filterGroups"), types)
        except SearchInputError as exc:
            raise HubSpotApiError(400, "VALIDATION_ERROR", str(exc)) from None
        query = str(body.get("query") or "").lower()
        if len(query) > SEARCH_QUERY_LIMIT:
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f"The search query is {len(query)} characters long; it can be at most "
                f"{SEARCH_QUERY_LIMIT} characters.",
            )
        # Properties the search index does not hold for this type: filters see them unset.
        hidden = _UNINDEXED.get(object_type, frozenset()) & _named_in(body)
        indexed = time.monotonic()
        hits = [
            r
            for r in self.objects[object_type].values()
            if r.indexed_at <= indexed
            and matches(_without(r.properties, hidden) if hidden else r.properties)
            and (not query or any(query in v.lower() for v in r.properties.values()))
        ]
        sorts = body.get("sorts") or []
        hits.sort(key=lambda r: int(r.id))
        for spec in reversed(sorts if isinstance(sorts, list) else []):
            if isinstance(spec, str):
                name, descending = spec.lstrip("-"), spec.startswith("-")
            elif isinstance(spec, dict):
                name = str(spec.get("propertyName", ""))
                descending = spec.get("direction") == "DESCENDING"
            else:
                continue
            if name not in types:
                raise HubSpotApiError(
                    400, "VALIDATION_ERROR", f"Unable to sort by unknown property {name}."
                )
            kind = types[name]
            present = [r for r in hits if r.properties.get(name) and name not in hidden]
            absent = [r for r in hits if not r.properties.get(name) or name in hidden]
            present.sort(key=_sorter(name, kind), reverse=descending)
            hits = present + absent
        wanted = body.get("properties") or None
        page = hits[after : after + limit]
        answer: dict[str, Any] = {
            "total": len(hits),
            "results": [self.render(object_type, r, wanted) for r in page],
        }
        if after + limit < len(hits):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return answer
