"""Errors and wire values of the Salesforce emulator's org.

``ApiError`` is a whole-request error (HTTP status and Salesforce's list body), ``DmlError`` a
record-level failure (the ``errors`` of a save result, each made by ``dml``), ``FieldTypeError``
a value of the wrong JSON or CSV type for its field. ``coerce_value`` turns a JSON (or Bulk API
CSV) value into the field's wire form, as strictly as the REST API reads it.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from sandbox.salesforce_schema import STRING_TYPES, FieldDef
from sandbox.salesforce_soql import format_datetime, parse_datetime

__all__ = [
    "TEXTUAL_TYPES",
    "ApiError",
    "DmlError",
    "FieldTypeError",
    "coerce_value",
    "dml",
    "email_ok",
]

# A date on the wire: yyyy-MM-dd and nothing else.
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
# Field types whose wire value is the JSON string itself.
TEXTUAL_TYPES = STRING_TYPES | {"id", "reference"}


class ApiError(Exception):
    """A whole-request error: HTTP ``status`` and the list body Salesforce answers with."""

    def __init__(
        self, status: int, code: str, message: str, fields: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errors: list[dict[str, Any]] = [{"message": message, "errorCode": code}]
        if fields is not None:
            self.errors[0]["fields"] = fields

    @property
    def code(self) -> str:
        """The first error's errorCode."""
        return str(self.errors[0]["errorCode"])


class DmlError(Exception):
    """A record-level failure: the ``errors`` of a save result (statusCode, message, fields)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["message"])
        self.errors = errors

    def as_api_error(self) -> ApiError:
        """The same failure as a single-record endpoint reports it (HTTP 400 list)."""
        first = self.errors[0]
        err = ApiError(400, first["statusCode"], first["message"], list(first.get("fields", [])))
        err.errors = [
            {"message": e["message"], "errorCode": e["statusCode"], "fields": e.get("fields", [])}
            for e in self.errors
        ]
        return err


def dml(code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    return {"statusCode": code, "message": message, "fields": fields or []}


class FieldTypeError(Exception):
    """A value of the wrong JSON/CSV type for a field."""

    def __init__(self, f: FieldDef, value: Any, expected: str) -> None:
        super().__init__(f"{f.name}: {value!r} is not a {expected}")
        self.field = f
        self.value = value
        self.expected = expected

    def as_api_error(self) -> ApiError:
        """How the REST API reports it: the JSON body could not be deserialized."""
        token = (
            "VALUE_TRUE"
            if self.value is True
            else "VALUE_FALSE"
            if self.value is False
            else ("VALUE_STRING" if isinstance(self.value, str) else "VALUE_NUMBER")
        )
        return ApiError(
            400,
            "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of {self.expected} from {token} value {self.value} "
            "or request may be missing a required field",
        )

    def as_dml(self) -> dict[str, Any]:
        """How the Bulk API reports it for one row."""
        return dml(
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            f"{self.field.label}: value not of required type: {self.value}",
            [self.field.name],
        )


def email_ok(value: str) -> bool:
    local, _, domain = value.partition("@")
    return bool(local) and "." in domain and " " not in value and not domain.startswith(".")


def coerce_value(f: FieldDef, value: Any, *, from_csv: bool = False) -> Any:
    """A JSON (or CSV text) value in the field's wire form; FieldTypeError if impossible."""
    if value is None:
        return None
    kind = f.type
    if kind in TEXTUAL_TYPES:
        if type(value) is str:
            return value
        if isinstance(value, bool):
            raise FieldTypeError(f, value, "string")
        if isinstance(value, int | float):
            return str(value)
        if not isinstance(value, str):
            raise FieldTypeError(f, value, "string")
        return value
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise FieldTypeError(f, value, "boolean")
    if kind in ("int", "double", "currency", "percent"):
        if isinstance(value, bool):
            raise FieldTypeError(f, value, "double")
        if isinstance(value, str) and (from_csv or value.strip()):
            try:
                number = float(value)
            except ValueError:
                raise FieldTypeError(f, value, "double") from None
        elif isinstance(value, int | float):
            number = float(value)
        else:
            raise FieldTypeError(f, value, "double")
        if kind == "int":
            if number != int(number):
                raise FieldTypeError(f, value, "int")
            return int(number)
        return number
    if kind == "date":
        # REST takes a date as yyyy-MM-dd only: a datetime (even at midnight UTC) or an offset
        # is a JSON_PARSER_ERROR. https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/intro_valid_date_formats.htm
        # Bulk API CSV rows stay lenient (a datetime is read as its UTC day).
        if isinstance(value, str):
            try:
                if _DAY.fullmatch(value):
                    return date.fromisoformat(value).isoformat()
                if from_csv:
                    return _date_from_datetime(value)
            except ValueError:
                pass
        raise FieldTypeError(f, value, "date")
    if kind == "datetime":
        if isinstance(value, str):
            moment = parse_datetime(value)
            if moment is not None:
                return format_datetime(moment)
        raise FieldTypeError(f, value, "datetime")
    raise FieldTypeError(f, value, kind)


def _date_from_datetime(text: str) -> str:
    moment = parse_datetime(text)
    if moment is None:
        raise ValueError(text)
    return moment.date().isoformat()
