"""The leads one Marketo pull has looked up, in a temporary on-disk SQLite database.

A pull meets the same leads again and again (a lead has many activities, in any order): the
book remembers the email and person fields of every lead the pull asked Marketo for, so each
lead is looked up once per pull, while the process holds only the leads of the page at hand.
Leads Marketo did not return are remembered too (no email, no fields), so they are not asked
for twice either.

The database is SQLite's private temporary database (file name ``""``): it lives in the page
cache (kept small here) and spills to a file SQLite deletes as it opens it, so nothing is left
behind when the book is closed, when the pull fails, or when the process is killed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["LeadBook", "LeadDetails"]

# A lead's email (None: none, or a lead Marketo does not know) and its person fields.
LeadDetails = tuple[str | None, dict[str, str]]

# Ids per ``IN (...)`` query (SQLite allows at least 999 bound parameters). Ids are kept as
# text: an activity's lead id may not fit SQLite's 64-bit integers.
_IDS_PER_QUERY = 500
# SQLite page cache of the book, in KiB (a negative cache_size counts KiB, not pages).
_CACHE_KIB = 2048


class LeadBook:
    """Email and person fields by lead id, for the length of one pull (a context manager)."""

    def __init__(self) -> None:
        # One pull uses the book at a time, but its thread may not be the one that ends it.
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        self._db.executescript(
            f"""
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA cache_size = -{_CACHE_KIB};
            CREATE TABLE lead (id TEXT PRIMARY KEY, email TEXT, person TEXT) WITHOUT ROWID;
            """
        )

    def __enter__(self) -> LeadBook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database (its storage goes with it); closing again does nothing."""
        self._db.close()

    def get(self, lead_ids: Iterable[int]) -> dict[int, LeadDetails]:
        """The leads of ``lead_ids`` the book holds (those it does not are omitted)."""
        found: dict[int, LeadDetails] = {}
        ids = list(lead_ids)
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk: Sequence[str] = [str(lead) for lead in ids[start : start + _IDS_PER_QUERY]]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT id, email, person FROM lead WHERE id IN ({marks})",  # noqa: S608 - marks only
                chunk,
            )
            for lead, email, person in rows:
                found[int(lead)] = (email, json.loads(person) if person else {})
        return found

    def put(self, found: Mapping[int, LeadDetails]) -> None:
        """Remember leads (a lead already held is replaced), in one transaction."""
        self._db.execute("BEGIN")
        self._db.executemany(
            "INSERT OR REPLACE INTO lead (id, email, person) VALUES (?, ?, ?)",
            (
                (str(lead), email, json.dumps(person, separators=(",", ":")) if person else None)
                for lead, (email, person) in found.items()
            ),
        )
        self._db.execute("COMMIT")
