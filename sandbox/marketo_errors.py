"""The two kinds of error answers of the Marketo emulator.

``MarketoError`` is Marketo's usual answer: HTTP 200 with ``success: false`` and a string code;
``HttpError`` one of the few HTTP-level errors (413, 414, an export file that is not ready).
"""

from __future__ import annotations

__all__ = ["HttpError", "MarketoError"]


class MarketoError(Exception):
    """A response-level Marketo error: a string code and Marketo's message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class HttpError(Exception):
    """One of the few HTTP-level errors Marketo answers (413, 414, a missing export file)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text}")
        self.status = status
        self.text = text
