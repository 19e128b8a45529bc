"""Settings of a ``files`` connection: which column holds what, how dates are written, the dialect.

A ``closedloop.yaml`` connection, e.g. for a badge-scan export from a trade show::

    connections:
      berlin_booth:
        type: files
        format: csv
        delimiter: ";"                # default: found from the header line
        encoding: cp1252              # default: found from the file (BOM, UTF-8, else detected)
        columns: {email: "E-Mail", occurred_at: "Scanned", campaign: "Booth",
                  first_name: "Vorname", last_name: "Nachname", company: "Firma"}
        kind: event_attended
        date_formats: ["%d.%m.%Y %H:%M"]
        timezone: Europe/Berlin

and for a webinar attendee list whose "Status" column says what happened::

      webinar_list:
        type: files
        columns: {email: Email, occurred_at: "Join Time", kind: Status, source_id: "Registrant ID"}
        kind_values: {Attended: webinar_attended, Registered: webinar_registered}
        campaign: "2024-05 Pipeline webinar"
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.base import TouchKind

__all__ = ["PERSON_FIELDS", "PERSON_HEADERS", "FileColumns", "FilesSettings"]

PERSON_FIELDS = ("first_name", "last_name", "company", "title", "phone", "country")
#: Header names (lower case; spaces, ``_``, ``-`` and ``.`` ignored) read as a person field when
#: the connection names no column for it: what Excel, badge scanners and event apps write.
PERSON_HEADERS: dict[str, tuple[str, ...]] = {
    "first_name": ("firstname", "first", "givenname", "forename", "vorname", "prenom"),
    "last_name": ("lastname", "last", "surname", "familyname", "nachname", "nom"),
    "company": ("company", "companyname", "organization", "organisation", "firma",
                "unternehmen", "employer", "accountname"),
    "title": ("title", "jobtitle", "position", "jobposition", "role", "funktion"),
    "phone": ("phone", "phonenumber", "telephone", "telefon", "mobile", "mobilephone"),
    "country": ("country", "countryname", "land", "pays"),
}  # fmt: skip


class FileColumns(BaseModel):
    """Which column (CSV header or JSONL key) holds each touch field; None: not in the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: str = "email"
    occurred_at: str | None = None
    kind: str | None = None
    campaign: str | None = None
    asset: str | None = None
    channel: str | None = None
    person_ref: str | None = None
    # None: the key is a hash of the identifying fields (connectors.files.fields.hashed_source_id).
    source_id: str | None = None
    # The person on the row, for the Lead or Contact created when the CRM does not know them
    # (the mapping's person.first_name, person.last_name, person.company, person.fields.title,
    # person.fields.phone, person.fields.country). None: a CSV header column of a usual name is
    # used (PERSON_HEADERS).
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    title: str | None = None
    phone: str | None = None
    country: str | None = None

    def mapped(self) -> dict[str, str]:
        """Touch field -> column, for the fields that come from a column (person columns are
        in ``person()``)."""
        return {
            name: column
            for name, column in self.model_dump().items()
            if column is not None and name not in PERSON_FIELDS
        }

    def person(self) -> dict[str, str]:
        """Person field -> column, for the person fields given a column."""
        return {name: getattr(self, name) for name in PERSON_FIELDS if getattr(self, name)}


class FilesSettings(BaseModel):
    """How to read one kind of list into touches (validated by ``closedloop config check``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["csv", "jsonl"] | None = None
    # None: the one of , ; tab | that splits the header into the mapped columns (most columns).
    delimiter: str | None = Field(default=None, min_length=1, max_length=1)
    # None: a byte-order mark says (UTF-8, UTF-16, UTF-32), else UTF-8 when the start of the
    # file is UTF-8, else what charset-normalizer finds (Excel's "CSV" is cp1252). Given: every
    # line is read in it, and a line that is not is rejected on its own.
    encoding: str | None = None
    columns: FileColumns = FileColumns()
    # Fixed values for every row, used when the file has no such column.
    kind: TouchKind | None = None
    occurred_at: datetime | None = None
    campaign: str | None = None
    channel: str | None = None
    asset: str | None = None
    # The file's own words for kinds, e.g. {"Attended": "webinar_attended"} (case-insensitive).
    kind_values: dict[str, TouchKind] = Field(default_factory=dict)
    # strptime formats tried in order; empty means ISO 8601.
    date_formats: list[str] = Field(default_factory=list)
    timezone: str = "UTC"
    max_field_chars: int = Field(default=1000, ge=1, le=100_000)
    # Columns copied into the touch's attributes; None copies every unmapped column.
    attribute_columns: list[str] | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin"
            ) from None
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import codecs

        try:
            return codecs.lookup(value).name
        except LookupError:
            raise ValueError(
                f"unknown encoding {value!r}; use e.g. utf-8, cp1252 (Excel on Windows), "
                "latin-1 or utf-16"
            ) from None

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give the time zone, e.g. 2024-05-14T09:00:00+02:00")
        return value

    @model_validator(mode="after")
    def _complete(self) -> FilesSettings:
        if self.columns.occurred_at is None and self.occurred_at is None:
            raise ValueError(
                "say when the touches happened: columns.occurred_at (a column) or occurred_at "
                "(one time for every row, e.g. the day of the trade show)"
            )
        if self.columns.kind is not None and self.kind is not None:
            raise ValueError("set either columns.kind (a column) or kind (a fixed kind), not both")
        if self.kind_values and self.columns.kind is None:
            raise ValueError(
                "kind_values needs columns.kind: the column whose values it translates"
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The time zone naive dates in the file are read in."""
        return ZoneInfo(self.timezone)

    @property
    def fixed_kind(self) -> TouchKind:
        """The kind of every row when the file has no kind column."""
        return self.kind or TouchKind.LIST_IMPORT
