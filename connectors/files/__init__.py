"""File import connector: CSV and JSONL lists (badge scans, webinar attendees) read into touches.

Registered as the ``files`` connector type. The reader never touches the ledger: it yields
``Touch`` and ``Reject`` records and ``closedloop import`` stores them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from connectors.base import Touch
from connectors.files.reader import (
    MAX_LINE_BYTES,
    PERSON_KEY,
    CsvLayout,
    Reject,
    csv_layout,
    detect_format,
    read_file,
)
from connectors.files.settings import FileColumns, FilesSettings
from connectors.registry import ConnectorInfo

__all__ = [
    "INFO",
    "MAX_LINE_BYTES",
    "PERSON_KEY",
    "CsvLayout",
    "FileColumns",
    "FileImport",
    "FilesSettings",
    "Reject",
    "csv_layout",
    "detect_format",
    "read_file",
]


@dataclass(frozen=True)
class FileImport:
    """A configured file source: its connection name (the touches' source) and column mapping."""

    name: str
    settings: FilesSettings

    def read(self, path: Path, *, now: datetime | None = None) -> Iterator[Touch | Reject]:
        """Touches and rejects of one file, streamed in file order."""
        return read_file(path, self.name, self.settings, now=now)


def _build(name: str, settings: FilesSettings) -> FileImport:
    return FileImport(name, settings)


INFO = ConnectorInfo(
    name="files",
    roles=frozenset({"source"}),
    settings_model=FilesSettings,
    factory=_build,
    description="CSV / JSONL lists imported with `closedloop import`",
)
