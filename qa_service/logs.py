"""The plain-text log format of ``qa serve`` (``QA_LOG_FORMAT=text``): one line a record."""

from __future__ import annotations

import logging

_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]} | {
    ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029",
}
"""Control characters (and the Unicode line and paragraph separators) as escapes."""


class TextFormatter(logging.Formatter):
    """A record as one line of text, its control characters escaped (a line break as ``\\n``): a request
    whose path holds a ``%0A`` can't write a line of its own into the log, and a traceback stays on the
    line of its record (the JSON format escapes them as JSON does)."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).translate(_ESCAPES)
