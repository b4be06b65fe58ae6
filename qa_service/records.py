"""What the service remembers: answer feedback and a query log, in one SQLite file.

What is stored, and why
-----------------------
* ``feedback``: the widget's thumbs up / down on an answer (question, answer,
  citation, vote, optional comment). Kept until someone deletes the file: staff
  export it (``export_feedback``) to judge answers and grow the corpus.
* ``queries``: every question asked or searched (kind, question, answered or
  declined and why, time taken, index version, request id). Staff read it back
  as ``unanswered()``: the questions most often declined or voted down, i.e.
  what the corpus lacks. It is on by default; ``query_log=False``
  (``QA_QUERY_LOG=off``) logs nothing.

Retention and purge
-------------------
A question may repeat what a patient told staff, so the query log never leaves
this file and does not grow without end:

* rows older than ``retention_days`` (default 30) are deleted when the file is
  opened, then at most once an hour as new queries are written, and whenever
  ``prune()`` is called;
* ``purge_queries()`` deletes every logged query at once (an admin call);
* every connection runs with ``PRAGMA secure_delete=ON`` so deleted text is
  overwritten with zeros rather than left in free pages, and a purge
  checkpoints and truncates the write-ahead log so no old copy of a page
  remains in it.

Feedback is not subject to retention: a vote is a deliberate act whose record
staff asked for.

Schema versions
---------------
``PRAGMA user_version`` holds the schema version. Version 0 is a new, empty
file or one written by the former feedback store (before the query log:
a ``feedback`` table, user_version 0); ``MIGRATIONS`` bring either up to
``SCHEMA_VERSION``, one transaction a step. A file newer than this code is
refused with ``RecordsVersionError`` rather than misread.

Threads
-------
The server calls one ``Records`` from many threads. ``log_query`` only puts a
row on a queue: one background writer thread inserts what is queued in one
transaction, so a request never waits on the disk. Everything else opens a
connection for the call (the file is in WAL mode: readers do not block the
writer). Call ``close()`` at shutdown (it writes what is queued); ``flush()``
waits until what was queued so far is written.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 10.0
"""How long a connection waits for another writer's lock before giving up."""

PRUNE_EVERY = timedelta(hours=1)
"""The writer applies retention at most this often; opening the file always does."""

QUEUE_LIMIT = 10_000
"""Queries waiting for the writer; beyond this they are dropped (and a warning logged), never waited for."""

BATCH_LIMIT = 1_000
"""Most queued rows the writer inserts in one transaction."""

GATHER_S = 1.0
"""Longest a logged question waits for others to be written with (flush() and close() don't wait)."""

EXPORT_PAGE = 500
"""Feedback rows read per connection while exporting (no read transaction held across a slow client)."""

QUERY_KINDS = ("ask", "search")

_FEEDBACK_COLUMNS = ("id", "created_at", "question", "answer", "doc_id", "citation", "vote", "comment")
"""The feedback table as FeedbackStore made it; export keeps exactly this shape."""


_LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})


def _one_line(encoded: str) -> str:
    """A JSON object that reads as one line to every line splitter: JSON escapes CR and LF but
    writes U+2028, U+2029 and NEL as they are, and ``str.splitlines`` (and editors) break lines at
    them. They can only occur inside strings, where their escapes mean the same characters."""
    return encoded.translate(_LINE_BREAKS)


class RecordsError(Exception):
    """The file cannot be used as a records file."""


class RecordsVersionError(RecordsError):
    """The file's schema is newer than this code knows."""

    def __init__(self, path: Path, found: int, known: int) -> None:
        super().__init__(
            f"{path}: schema version {found} is newer than this code knows (version {known}); "
            "run a newer service against it, or point the service at another file"
        )
        self.path, self.found, self.known = path, found, known


@dataclass(frozen=True)
class UnansweredQuestion:
    """A question the corpus failed, as staff should read it.

    ``question`` is its most recent wording; rows were grouped by
    ``normalise_question``. ``declined`` counts asks the service declined,
    ``thumbs_down`` counts down votes on its answers; ``last_asked`` is the
    latest of either (ISO 8601, UTC). ``reasons`` are the distinct reasons given
    when declining, sorted.
    """

    question: str
    declined: int
    thumbs_down: int
    last_asked: str
    reasons: tuple[str, ...]


def normalise_question(question: str) -> str:
    """The grouping key of a question: case-folded, runs of whitespace made one space, trimmed."""
    return " ".join(question.casefold().split())


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _timestamp(moment: datetime) -> str:
    """One format for every stored time (FeedbackStore's), so that times compare as strings."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


# --- migrations -------------------------------------------------------------------------------
# Each step takes the file from version i to i + 1 inside one transaction. Append only: a step
# that has shipped is never edited, since files in the field already ran it.


def _adopt_feedback_table(db: sqlite3.Connection) -> None:
    """Version 1: the feedback table exactly as FeedbackStore created it (kept if it is there)."""
    found = [row[1] for row in db.execute("PRAGMA table_info(feedback)")]
    if found and tuple(found) != _FEEDBACK_COLUMNS:
        raise RecordsError(f"a feedback table with unexpected columns {found}; not a feedback file")
    db.execute(
        """
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
    )


def _add_query_log(db: sqlite3.Connection) -> None:
    """Version 2: the query log, and feedback questions keyed like logged ones for ``unanswered``."""
    db.execute(
        """
        CREATE TABLE queries (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('ask', 'search')),
            question TEXT NOT NULL,
            question_norm TEXT NOT NULL,
            answered INTEGER NOT NULL CHECK (answered IN (0, 1)),
            reason TEXT,
            took_ms REAL NOT NULL,
            index_version TEXT NOT NULL,
            request_id TEXT
        )
        """
    )
    db.execute("CREATE INDEX queries_created_at ON queries (created_at)")  # retention deletes by age
    db.execute(
        "CREATE INDEX queries_declined ON queries (question_norm) WHERE kind = 'ask' AND answered = 0"
    )
    # Nullable: ALTER TABLE can add no NOT NULL column without a default; every row gets one here.
    db.execute("ALTER TABLE feedback ADD COLUMN question_norm TEXT")
    db.execute("UPDATE feedback SET question_norm = qa_normalise(question)")
    db.execute("CREATE INDEX feedback_down ON feedback (question_norm) WHERE vote = 'down'")


MIGRATIONS: Sequence[Callable[[sqlite3.Connection], None]] = (_adopt_feedback_table, _add_query_log)
SCHEMA_VERSION = len(MIGRATIONS)


def _user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the file to SCHEMA_VERSION, one transaction a step.

    The version is read again inside each write transaction, so two processes
    opening the same old file at once do not both run a step.
    """
    while True:
        db.execute("BEGIN IMMEDIATE")
        try:
            version = _user_version(db)
            if version > SCHEMA_VERSION:
                raise RecordsVersionError(path, version, SCHEMA_VERSION)
            if version == SCHEMA_VERSION:
                db.execute("COMMIT")
                return
            MIGRATIONS[version](db)
            db.execute(f"PRAGMA user_version = {version + 1}")  # a pragma takes no parameters
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise


# --- the store --------------------------------------------------------------------------------

_QueuedQuery = tuple[str, str, str, str, int, str | None, float, str, str | None]

_INSERT_QUERY = (
    "INSERT INTO queries (created_at, kind, question, question_norm, answered, reason, took_ms,"
    " index_version, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_UNANSWERED = """
SELECT question, SUM(declined), SUM(thumbs_down), MAX(created_at), json_group_array(DISTINCT reason)
FROM (
    SELECT question_norm AS norm, question, 1 AS declined, 0 AS thumbs_down, created_at, reason
    FROM queries WHERE kind = 'ask' AND answered = 0
    UNION ALL
    SELECT COALESCE(question_norm, qa_normalise(question)), question, 0, 1, created_at, NULL
    FROM feedback WHERE vote = 'down'
)
GROUP BY norm
ORDER BY SUM(declined) + SUM(thumbs_down) DESC, MAX(created_at) DESC, norm
LIMIT ?
"""
# The bare `question` comes from the row holding MAX(created_at): SQLite's documented rule for a
# query with a single min() or max() (https://sqlite.org/lang_select.html#bareagg), i.e. the
# latest wording.


class Records:
    """Feedback and the query log in one SQLite file; see the module docstring.

    ``now`` gives the current time (aware datetime); tests pass a clock of
    their own to write rows "in the past" and to move past the retention period.
    """

    def __init__(
        self,
        path: Path,
        query_log: bool = True,
        retention_days: float = 30.0,
        *,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        if retention_days <= 0:
            raise ValueError(f"retention_days must be positive, got {retention_days}")
        self.path = Path(path)
        self.query_log = query_log
        self.retention = timedelta(days=retention_days)
        self._now = now
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)  # QA_FEEDBACK_DB may name a new folder
        self._open_file()
        self._queue: queue.Queue[_QueuedQuery | threading.Event | None] = queue.Queue(QUEUE_LIMIT)
        self._writer: threading.Thread | None = None
        if query_log:
            self._writer = threading.Thread(target=self._write_queued, name="qa-query-log", daemon=True)
            self._writer.start()

    # connections and setup

    def _connect(self) -> sqlite3.Connection:
        """A connection in autocommit mode: transactions are begun explicitly where needed."""
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        db.execute("PRAGMA secure_delete = ON")  # per connection: deleted text is zeroed, not left behind
        # With WAL, NORMAL syncs at checkpoints rather than every commit: a power cut may lose the last
        # moments of the log, never corrupt the file (an fsync a request would cost the server its disk).
        db.execute("PRAGMA synchronous = NORMAL")
        db.create_function("qa_normalise", 1, normalise_question, deterministic=True)
        return db

    def _open_file(self) -> None:
        """Refuse a newer file, switch to WAL, migrate, and apply retention once."""
        with closing(self._connect()) as db:
            found = _user_version(db)
            if found > SCHEMA_VERSION:  # checked before WAL is set, so a refused file is left as it was
                raise RecordsVersionError(self.path, found, SCHEMA_VERSION)
            db.execute("PRAGMA journal_mode = WAL")
            _migrate(db, self.path)
            self._last_prune = self._now()
            self._delete_expired(db, self._last_prune)

    @property
    def schema_version(self) -> int:
        """The version the file is at (SCHEMA_VERSION once opened)."""
        with closing(self._connect()) as db:
            return _user_version(db)

    # feedback

    def add_feedback(
        self, *, question: str, answer: str | None, doc_id: str, citation: dict, vote: str, comment: str | None
    ) -> int:
        """Store one vote at once (the caller returns its id) and return the new row's id."""
        if vote not in ("up", "down"):
            raise ValueError(f"vote must be 'up' or 'down', got {vote!r}")
        # compact and unescaped, as pydantic's model_dump_json wrote it before
        citation_json = json.dumps(citation, ensure_ascii=False, separators=(",", ":"))
        with closing(self._connect()) as db:
            cursor = db.execute(
                "INSERT INTO feedback (created_at, question, answer, doc_id, citation, vote, comment, question_norm)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (_timestamp(self._now()), question, answer, doc_id, citation_json, vote, comment,
                 normalise_question(question)),
            )
            return int(cursor.lastrowid)

    def export_feedback(self) -> Iterator[str]:
        """Every feedback row, oldest first, one JSON object a line (FeedbackStore.export's shape).

        Read a page at a time with a connection per page, so a slow download
        neither holds a read transaction nor needs to stay on one thread.
        """
        last_id = 0
        columns = ", ".join(_FEEDBACK_COLUMNS)
        while True:
            with closing(self._connect()) as db:
                db.row_factory = sqlite3.Row
                rows = db.execute(
                    f"SELECT {columns} FROM feedback WHERE id > ? ORDER BY id LIMIT ?", (last_id, EXPORT_PAGE)
                ).fetchall()
            for row in rows:
                record = dict(row)
                record["citation"] = json.loads(record["citation"])
                yield _one_line(json.dumps(record, ensure_ascii=False)) + "\n"
            if len(rows) < EXPORT_PAGE:
                return
            last_id = rows[-1]["id"]

    # the query log

    def log_query(
        self,
        *,
        kind: str,
        question: str,
        answered: bool,
        reason: str | None,
        took_ms: float,
        index_version: str,
        request_id: str | None = None,
    ) -> None:
        """Queue one query for the writer and return at once.

        A no-op when the log is off or the store closed; if the queue is full
        (the disk stalled) the row is dropped with a warning: a request is never
        slowed or failed for the log's sake.
        """
        if kind not in QUERY_KINDS:
            raise ValueError(f"kind must be one of {QUERY_KINDS}, got {kind!r}")
        if not self.query_log or self._closed:
            return
        row: _QueuedQuery = (
            _timestamp(self._now()), kind, question, normalise_question(question), int(answered), reason,
            float(took_ms), index_version, request_id,
        )
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            logger.warning("query log: %d queries waiting to be written; this one is dropped", QUEUE_LIMIT)

    def unanswered(self, limit: int = 50) -> list[UnansweredQuestion]:
        """The questions most often declined (asks only) or voted down, most frequent first.

        Queries still queued are not counted; call ``flush()`` first to include them.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        with closing(self._connect()) as db:
            rows = db.execute(_UNANSWERED, (limit,)).fetchall()
        return [
            UnansweredQuestion(
                question=question,
                declined=int(declined),
                thumbs_down=int(down),
                last_asked=last,
                reasons=tuple(sorted(r for r in json.loads(reasons) if r is not None)),
            )
            for question, declined, down, last, reasons in rows
        ]

    def purge_queries(self) -> int:
        """Delete every logged query, including any still queued; return how many.

        secure_delete zeroes the rows' pages; the checkpoint then copies those
        pages into the main file and truncates the write-ahead log, which still
        held the text from before.
        """
        self.flush()
        with closing(self._connect()) as db:
            deleted = db.execute("DELETE FROM queries").rowcount
            busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            logger.warning("query log purged, but a reader kept the write-ahead log from being truncated")
        return int(deleted)

    def prune(self) -> int:
        """Apply retention now: delete logged queries older than the retention period; return how many."""
        now = self._now()
        with closing(self._connect()) as db:
            deleted = self._delete_expired(db, now)
        self._last_prune = now
        return deleted

    def _delete_expired(self, db: sqlite3.Connection, now: datetime) -> int:
        cutoff = _timestamp(now - self.retention)
        return int(db.execute("DELETE FROM queries WHERE created_at < ?", (cutoff,)).rowcount)

    # the writer

    def flush(self) -> None:
        """Wait until every query queued before this call is written (for tests and shutdown)."""
        writer = self._writer
        if writer is None or not writer.is_alive():
            return
        written = threading.Event()
        self._queue.put(written)
        while not written.wait(0.1):
            if not writer.is_alive():
                return

    def close(self) -> None:
        """Write what is queued and stop the writer. Queries logged after this are ignored."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()

    def _write_queued(self) -> None:
        """The writer thread: take what is queued, insert it in one transaction, repeat until closed."""
        with closing(self._connect()) as db:
            stopping = False
            while not stopping:
                batch = [self._queue.get()]
                # Gather for a moment: one transaction a second under load, not one a request (each
                # costs the request threads the interpreter lock, and the disk a write).
                deadline = time.monotonic() + GATHER_S
                while len(batch) < BATCH_LIMIT and isinstance(batch[-1], tuple):
                    try:
                        batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                    except queue.Empty:
                        break
                rows = [item for item in batch if isinstance(item, tuple)]
                stopping = None in batch
                try:
                    self._insert(db, rows)
                except Exception:  # the log must outlive a bad disk moment; the rows are lost, not the writer
                    logger.exception("query log: %d queries could not be written", len(rows))
                finally:
                    for item in batch:
                        if isinstance(item, threading.Event):
                            item.set()

    def _insert(self, db: sqlite3.Connection, rows: list[_QueuedQuery]) -> None:
        if rows:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(_INSERT_QUERY, rows)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        now = self._now()
        if now - self._last_prune >= PRUNE_EVERY:
            self._last_prune = now
            self._delete_expired(db, now)
