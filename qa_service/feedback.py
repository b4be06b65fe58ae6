"""Answer feedback from the widget (thumbs up / down), kept in SQLite."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

from .schemas import FeedbackRequest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT,
    doc_id TEXT NOT NULL,
    citation TEXT NOT NULL,
    vote TEXT NOT NULL CHECK (vote IN ('up', 'down')),
    comment TEXT
)
"""


class FeedbackStore:
    """Appends feedback rows to a SQLite file and exports them as JSON lines.

    The file and its table are created on first use. One connection per call,
    so the store can be shared by the server's worker threads.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)  # QA_FEEDBACK_DB may name a new folder
        connection = sqlite3.connect(self.path, timeout=10)
        connection.row_factory = sqlite3.Row
        if not self._ready:
            with self._lock:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute(_SCHEMA)
                connection.commit()
                self._ready = True
        return connection

    def add(self, feedback: FeedbackRequest) -> int:
        with closing(self._connect()) as connection, connection:
            cursor = connection.execute(
                "INSERT INTO feedback (created_at, question, answer, doc_id, citation, vote, comment)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    feedback.question,
                    feedback.answer,
                    feedback.citation.doc_id,
                    feedback.citation.model_dump_json(),
                    feedback.vote,
                    feedback.comment,
                ),
            )
            return int(cursor.lastrowid)

    def export(self) -> Iterator[str]:
        """Every row, oldest first, as one JSON object a line."""
        if not self.path.exists():
            return
        with closing(self._connect()) as connection:
            for row in connection.execute("SELECT * FROM feedback ORDER BY id"):
                record = dict(row)
                record["citation"] = json.loads(record["citation"])
                yield _one_line(json.dumps(record, ensure_ascii=False)) + "\n"


_LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})


def _one_line(encoded: str) -> str:
    """A JSON object that reads as one line to every line splitter: JSON escapes CR and LF but
    writes U+2028, U+2029 and NEL as they are, and ``str.splitlines`` (and editors) break lines at
    them. They can only occur inside strings, where their escapes mean the same characters."""
    return encoded.translate(_LINE_BREAKS)
