"""The associations v4 API of an emulated HubSpot portal: batch read and batch create.

A batch read takes at most 1,000 ids and pages each record's associations on their own
(``paging.next.after`` per result row); a batch create takes at most 2,000 labelled inputs.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote, unquote

from sandbox.hubspot_records import (
    ASSOCIATION_CREATE_LIMIT,
    ASSOCIATION_READ_LIMIT,
    HubSpotApiError,
    PortalBase,
    batch_error,
)
from sandbox.hubspot_schema import ASSOCIATION_TYPES, OBJECT_TYPE_IDS, singular

__all__ = ["PortalAssociations"]


class PortalAssociations(PortalBase):
    """``/crm/v4/associations/{from}/{to}/batch/read`` and ``/batch/create``."""

    # ------------------------------------------------------- associations v4
    def associations_read(
        self, from_type: str, to_type: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """POST /crm/v4/associations/{from}/{to}/batch/read (max 1,000 inputs).

        Each row holds at most ``association_page`` associations, in id order; a row with more
        carries ``paging.next.after``, which the next request gives as that input's ``after``.
        """
        self._check_type(from_type)
        self._check_type(to_type)
        started = self.clock.now()
        inputs = self._check_batch(body.get("inputs"), ASSOCIATION_READ_LIMIT)
        results, errors = [], []
        for item in inputs:
            key = str(item.get("id", ""))
            linked = self.association_types(from_type, key, to_type)
            if not linked:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": f"No {singular(to_type)} is associated with "
                        f"{singular(from_type)} {key}.",
                        "context": {"fromObjectId": [key]},
                        "links": {},
                        "errors": [],
                        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                    }
                )
                continue
            start = self._association_after(to_type, item.get("after"))
            ordered = sorted((int(k), v) for k, v in linked.items() if int(k) > start)
            page = ordered[: self.association_page]
            row: dict[str, Any] = {
                "from": {"id": key},
                "to": [
                    {
                        "toObjectId": to_id,
                        "associationTypes": [
                            {
                                "category": "HUBSPOT_DEFINED",
                                "typeId": t,
                                "label": "Primary" if t in (1, 2, 5, 6) else None,
                            }
                            for t in sorted(types)
                        ],
                    }
                    for to_id, types in page
                ],
            }
            if len(ordered) > len(page):
                # HubSpot's cursor: base64 of "<toObjectTypeId>-<last toObjectId>", URL-quoted.
                last = f"{OBJECT_TYPE_IDS[to_type]}-{page[-1][0]}"
                after = quote(base64.b64encode(last.encode()).decode(), safe="")
                row["paging"] = {"next": {"after": after}}
            results.append(row)
        return self._batch_answer(results, errors, started, 200)

    @staticmethod
    def _association_after(to_type: str, after: Any) -> int:
        """The last ``toObjectId`` a row's ``after`` cursor stands for (0 without one)."""
        if after in (None, ""):
            return 0
        try:
            text = base64.b64decode(unquote(str(after)), validate=True).decode()
            type_id, _, last = text.rpartition("-")
            if type_id == OBJECT_TYPE_IDS[to_type] and last.isdigit():
                return int(last)
        except ValueError:
            pass
        raise HubSpotApiError(400, "VALIDATION_ERROR", f"Invalid paging cursor 'after': {after}")

    def associations_create(
        self, from_type: str, to_type: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """POST /crm/v4/associations/{from}/{to}/batch/create (labelled associations)."""
        self._check_type(from_type)
        self._check_type(to_type)
        started = self.clock.now()
        inputs = self._check_batch(body.get("inputs"), ASSOCIATION_CREATE_LIMIT)
        results, errors = [], []
        allowed = ASSOCIATION_TYPES.get((from_type, to_type))
        for item in inputs:
            from_id = str((item.get("from") or {}).get("id", ""))
            to_id = str((item.get("to") or {}).get("id", ""))
            if from_id not in self.objects[from_type] or to_id not in self.objects[to_type]:
                errors.append(
                    batch_error(
                        "VALIDATION_ERROR",
                        f"{singular(from_type)} {from_id} or {singular(to_type)} {to_id} "
                        "does not exist.",
                        [from_id, to_id],
                    )
                )
                continue
            type_ids = []
            for spec in item.get("types") or []:
                type_id = spec.get("associationTypeId")
                if allowed is None or type_id not in (allowed[0], allowed[1]):
                    raise HubSpotApiError(
                        400,
                        "VALIDATION_ERROR",
                        f"{type_id} is not a valid association type between "
                        f"{singular(from_type)} and {singular(to_type)}.",
                    )
                type_ids.append(type_id)
            for type_id in type_ids:
                self.associate(from_type, from_id, to_type, to_id, type_id)
            results.append(
                {
                    "fromObjectTypeId": OBJECT_TYPE_IDS[from_type],
                    "fromObjectId": int(from_id),
                    "toObjectTypeId": OBJECT_TYPE_IDS[to_type],
                    "toObjectId": int(to_id),
                    "labels": [],
                }
            )
        return self._batch_answer(results, errors, started, 201)
