"""What the service remembers: answer feedback and a query log, in one SQLite file.

What is stored, and why
-----------------------
* ``feedback``: the widget's thumbs up / down on an answer (question, answer,
  citation, vote, optional comment, and for a down vote an optional reason:
  one of ``FEEDBACK_REASONS``). Staff export it (``export_feedback``) to
  judge answers and grow the corpus. The caller checks what it stores: the
  service rebuilds the citation and the answer from its index.
* ``queries``: every question asked or searched (kind, question, answered or
  declined and why, time taken, index version, request id). Staff read it back
  as ``unanswered()``: the questions most often declined or voted down, i.e.
  what the corpus lacks. It is on by default; ``query_log=False``
  (``QA_QUERY_LOG=off``) logs nothing. The review page also reads ``asked()``
  (every question asked, how often) and ``down_votes()`` (the thumbs-down with
  their reasons); ``qa_service.review`` groups the questions by wording.

The file is created readable and writable by its owner only (0600; SQLite gives
its ``-wal`` and ``-shm`` files the same mode). A file found deleted under a
running service is made again, empty, with its tables (the migrations), and
the service goes on writing to the new one.

Retention and purge
-------------------
A question may repeat what a patient told staff, so the query log never leaves
this file and does not grow without end:

* logged queries older than ``retention_days`` (default 30) and feedback older
  than ``feedback_days`` (default 365) are deleted when the file is opened,
  then by the writer thread every ``prune_every`` (default an hour, whether or
  not anything new was written), and whenever ``prune()`` is called;
* ``purge_queries()`` and ``purge_feedback()`` delete every row of either at
  once (admin calls);
* every connection runs with ``PRAGMA secure_delete=ON`` so deleted text is
  overwritten with zeros rather than left in free pages, and a purge
  checkpoints and truncates the write-ahead log so no old copy of a page
  remains in it.

Schema versions
---------------
``PRAGMA user_version`` holds the schema version. Version 0 is a new, empty
file or one written by the former feedback store (before the query log:
a ``feedback`` table, user_version 0); ``MIGRATIONS`` bring either up to
``SCHEMA_VERSION``, one transaction a step. A file newer than this code is
refused with ``RecordsVersionError`` rather than misread.

Threads, and a locked file
--------------------------
The server calls one ``Records`` from many threads, and none of its calls may
hold up an answer. ``log_query`` only puts a row on a queue: one background
writer thread inserts what is queued in one transaction; while the file is
locked it keeps the rows and tries again, so they land once the lock is gone.
Everything else opens a connection for the call (the file is in WAL mode:
readers do not block the writer) and waits at most ``busy_timeout`` seconds
(default 1) for another connection's lock, then raises ``RecordsUnavailable``.
The server runs those calls on the records' own small pool (``submit``,
``run``), never on the threads that answer questions. Call ``close()`` at
shutdown (it writes what is queued); ``flush()`` waits until what was queued
so far is written.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import queue
import re
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .settings import ServiceSettings

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 1.0
"""Default of how long a call waits for another connection's lock before giving up (RecordsUnavailable)."""

OPEN_TIMEOUT_S = 10.0
"""How long opening the file at start waits for a lock (another worker process migrating it, say)."""

PRUNE_EVERY = timedelta(hours=1)
"""Default of how often the writer applies retention (opening the file always does)."""

PRUNE_RETRY_S = 60.0
"""After a prune that failed (the file locked), the writer tries again this much later."""

RETRY_S = 0.5
"""While queued rows could not be written (the file locked), the writer tries again this often."""

QUEUE_LIMIT = 10_000
"""Queries waiting for the writer; beyond this they are dropped (and a warning logged), never waited for."""

BATCH_LIMIT = 1_000
"""Most queued rows the writer inserts in one transaction."""

GATHER_S = 1.0
"""Longest a logged question waits for others to be written with (flush() and close() don't wait)."""

EXPORT_PAGE = 500
"""Feedback rows read per connection while exporting (no read transaction held across a slow client)."""

POOL_THREADS = 2
"""Threads that run the records' calls for the server (``submit``): a locked file holds these, not a request's."""

SUBMIT_LIMIT = 32
"""Calls waiting for or running on those threads; beyond this ``submit`` refuses at once (RecordsUnavailable)."""

FILE_MODE = 0o600
"""A new records file is readable and writable by its owner only; SQLite gives -wal and -shm the same mode."""

QUERY_KINDS = ("ask", "search")

FEEDBACK_REASONS = ("wrong_medicine", "wrong_section", "outdated", "other")
"""Why an answer was voted down, when the voter said (only a down vote has one)."""

_FEEDBACK_COLUMNS = ("id", "created_at", "question", "answer", "doc_id", "citation", "vote", "comment")
"""The feedback table as FeedbackStore made it (what version 1 adopts)."""

_EXPORT_COLUMNS = (*_FEEDBACK_COLUMNS, "reason")
"""What the export gives of a vote: FeedbackStore's columns, then the reason of a down vote (or null)."""


_LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})


def _one_line(encoded: str) -> str:
    """A JSON object that reads as one line to every line splitter: JSON escapes CR and LF but
    writes U+2028, U+2029 and NEL as they are, and ``str.splitlines`` (and editors) break lines at
    them. They can only occur inside strings, where their escapes mean the same characters."""
    return encoded.translate(_LINE_BREAKS)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _encodable(text: str) -> str:
    """``text`` with any lone surrogate (JSON's ``"\\ud800"`` decodes to one: no character, and UTF-8,
    SQLite and JSON writers refuse it) replaced by U+FFFD, so it can be stored."""
    return _SURROGATE.sub("\ufffd", text)


def _is_busy(exc: BaseException) -> bool:
    """Whether a SQLite error is another connection's lock (as opposed to a broken file)."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return isinstance(exc, sqlite3.OperationalError) and code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _create_private(path: Path) -> bool:
    """Create ``path`` empty with FILE_MODE (an empty file is an empty SQLite database); False if it exists."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        return False
    return True


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive flock on ``folder`` (the records file's), held while a deleted file is made again, so
    that worker processes over one file don't each make it (and remove the other's fresh -wal)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class RecordsError(Exception):
    """The file cannot be used as a records file."""


class RecordsUnavailable(RecordsError):
    """The file can't be read or written now: locked by another connection past the busy timeout, or
    unreadable. Nothing was stored; the caller may try again later."""


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


@dataclass(frozen=True)
class AskedQuestion:
    """A question asked (``/v1/ask``), as often as it was: ``question`` is its latest wording (rows
    grouped by ``normalise_question``), ``asked`` how many times, ``answered`` how many of those were
    answered; ``last_asked`` is ISO 8601, UTC."""

    question: str
    asked: int
    answered: int
    last_asked: str


@dataclass(frozen=True)
class DownVote:
    """A thumbs-down as stored: the question, the answer and citation the index had (``citation``: the
    answer's doc_id, title, source, section, start and end), the comment and the reason (or None)."""

    id: int
    created_at: str
    question: str
    answer: str | None
    citation: dict[str, Any]
    comment: str | None
    reason: str | None


def normalise_question(question: str) -> str:
    """The grouping key of a question: case-folded, runs of whitespace made one space, trimmed."""
    return " ".join(question.casefold().split())


def _sql_limit(limit: int | None) -> int:
    """A LIMIT's value: ``limit`` (at least 1), or -1 (SQLite's "no limit") for None."""
    if limit is None:
        return -1
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    return limit


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


def _add_feedback_reason(db: sqlite3.Connection) -> None:
    """Version 3: why a down vote was given (one of FEEDBACK_REASONS, checked by ``add_feedback``), null
    for every vote before it. No CHECK in the file: a reason added later needs no rebuild of the table."""
    db.execute("ALTER TABLE feedback ADD COLUMN reason TEXT")


MIGRATIONS: Sequence[Callable[[sqlite3.Connection], None]] = (
    _adopt_feedback_table, _add_query_log, _add_feedback_reason,
)
SCHEMA_VERSION = len(MIGRATIONS)


def _user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the file to SCHEMA_VERSION, one transaction a step.

    The version is read again inside each write transaction, so two processes
    opening the same old file at once do not both run a step. A file already at
    SCHEMA_VERSION is left without taking the write lock.
    """
    if _user_version(db) == SCHEMA_VERSION:
        return
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

_ASKED = """
SELECT question, COUNT(*), SUM(answered), MAX(created_at)
FROM queries WHERE kind = 'ask'
GROUP BY question_norm
ORDER BY COUNT(*) DESC, MAX(created_at) DESC, question_norm
LIMIT ?
"""
# The bare `question`: the latest wording, by the same rule.

_DOWN_VOTES = """
SELECT id, created_at, question, answer, citation, comment, reason
FROM feedback WHERE vote = 'down'
ORDER BY id DESC
LIMIT ?
"""


_T = TypeVar("_T")
_Identity = tuple[int, int]
"""A file as (device, inode): what tells the file opened from a new one at the same path."""


class Records:
    """Feedback and the query log in one SQLite file; see the module docstring.

    ``retention_days`` keeps logged queries, ``feedback_days`` feedback;
    ``prune_every`` is how often the writer applies both; ``busy_timeout`` is how
    long a call waits for another connection's lock (seconds). ``now`` gives the
    current time (aware datetime); tests pass a clock of their own to write rows
    "in the past" and to move past the retention period.
    """

    def __init__(
        self,
        path: Path,
        query_log: bool = True,
        retention_days: float = 30.0,
        *,
        feedback_days: float = 365.0,
        prune_every: timedelta = PRUNE_EVERY,
        busy_timeout: float = BUSY_TIMEOUT_S,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        if retention_days <= 0 or feedback_days <= 0:
            raise ValueError(f"retention periods must be positive, got {retention_days} and {feedback_days}")
        if prune_every <= timedelta(0) or busy_timeout < 0:
            raise ValueError(f"prune_every must be positive and busy_timeout not negative, got "
                             f"{prune_every} and {busy_timeout}")
        self.path = Path(path)
        self.query_log = query_log
        self.retention = timedelta(days=retention_days)
        self.feedback_retention = timedelta(days=feedback_days)
        self.prune_every = prune_every
        self.busy_timeout = busy_timeout
        self._now = now
        self._closed = False
        self._identity: _Identity | None = None
        self._reopening = threading.Lock()
        self._open_file(max(busy_timeout, OPEN_TIMEOUT_S))
        self._pool = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="qa-records")
        self._slots = threading.BoundedSemaphore(SUBMIT_LIMIT)
        self._queue: queue.Queue[_QueuedQuery | threading.Event | None] = queue.Queue(QUEUE_LIMIT)
        self._writer: threading.Thread | None = None
        # The writer applies retention on a timer even when nothing is logged (the feedback ages too).
        self._writer = threading.Thread(target=self._write_queued, name="qa-records-writer", daemon=True)
        self._writer.start()

    # connections and setup

    def _raw_connect(self, timeout: float) -> sqlite3.Connection:
        """A connection in autocommit mode: transactions are begun explicitly where needed."""
        db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        db.execute("PRAGMA secure_delete = ON")  # per connection: deleted text is zeroed, not left behind
        # With WAL, NORMAL syncs at checkpoints rather than every commit: a power cut may lose the last
        # moments of the log, never corrupt the file (an fsync a request would cost the server its disk).
        db.execute("PRAGMA synchronous = NORMAL")
        db.create_function("qa_normalise", 1, normalise_question, deterministic=True)
        return db

    @contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        """A connection to the file now at ``path`` for one call; any failure is RecordsUnavailable."""
        try:
            self._ensure_file()
            with closing(self._raw_connect(self.busy_timeout)) as db:
                yield db
        except RecordsUnavailable:
            raise
        except (sqlite3.Error, OSError, RecordsError) as exc:
            raise RecordsUnavailable(f"the records file {self.path} can't be used now: {exc}") from exc

    def _open_file(self, timeout: float) -> None:
        """Create the file (owner only) if need be, refuse a newer one, switch to WAL, migrate, and apply
        retention once."""
        self.path.parent.mkdir(parents=True, exist_ok=True)  # QA_FEEDBACK_DB may name a new folder
        if not _create_private(self.path):
            mode = stat.S_IMODE(os.stat(self.path).st_mode)
            if mode & 0o077:
                logger.warning("the records file %s can be read by others (mode %o): chmod 600 it",
                               self.path, mode)
        with closing(self._raw_connect(timeout)) as db:
            found = _user_version(db)
            if found > SCHEMA_VERSION:  # checked before WAL is set, so a refused file is left as it was
                raise RecordsVersionError(self.path, found, SCHEMA_VERSION)
            db.execute("PRAGMA journal_mode = WAL")
            _migrate(db, self.path)
            self._last_prune = self._now()
            self._next_prune = time.monotonic() + self.prune_every.total_seconds()
            try:
                self._delete_expired(db, self._last_prune)
            except sqlite3.OperationalError as exc:  # locked: the writer's timer prunes later
                if not _is_busy(exc):
                    raise
                self._next_prune = time.monotonic()
        self._identity = self._identity_now()

    def _identity_now(self) -> _Identity | None:
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            return None
        return found.st_dev, found.st_ino

    def _ensure_file(self) -> _Identity | None:
        """The file at ``path``, as opened: one found deleted is made again (empty, with its tables) and
        one found replaced is opened (and migrated). Returns its identity."""
        if (found := self._identity_now()) is not None and found == self._identity:
            return found
        self.path.parent.mkdir(parents=True, exist_ok=True)  # the folder may be gone too
        with self._reopening, _folder_lock(self.path.parent):
            # Looked at again under both locks: another thread, or another worker process over the
            # same file, may have just made it again (then its -wal holds rows: it must not be removed).
            found = self._identity_now()
            if found is not None and found == self._identity:
                return found
            if found is None:
                logger.warning("the records file %s was deleted: a new, empty one is made", self.path)
                # The deleted database's write-ahead log and index must not be read into the new one.
                for suffix in ("-wal", "-shm"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            else:
                logger.warning("the records file %s was replaced: the new one is opened", self.path)
            self._open_file(self.busy_timeout)
            return self._identity

    @property
    def schema_version(self) -> int:
        """The version the file is at (SCHEMA_VERSION once opened)."""
        with self._session() as db:
            return _user_version(db)

    # the server's calls, on the records' own threads

    def submit(self, call: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        """Run ``call(*args, **kwargs)`` on the records' own threads, never the caller's.

        A locked file then holds one of these threads for at most ``busy_timeout``,
        not a thread that answers questions. When SUBMIT_LIMIT calls are already
        waiting or running, raises RecordsUnavailable at once instead of queueing.
        """
        if not self._slots.acquire(blocking=False):
            raise RecordsUnavailable(f"the records file {self.path} is busy: {SUBMIT_LIMIT} calls are waiting")
        try:
            future = self._pool.submit(call, *args, **kwargs)
        except RuntimeError as exc:  # the pool is shut down: the store is closed
            self._slots.release()
            raise RecordsUnavailable(f"the records file {self.path} is closed") from exc
        future.add_done_callback(lambda _: self._slots.release())
        return future

    async def run(self, call: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        """``submit`` for a coroutine: await the call's result (or its exception)."""
        return await asyncio.wrap_future(self.submit(call, *args, **kwargs))

    # feedback

    def add_feedback(
        self, *, question: str, answer: str | None, doc_id: str, citation: dict, vote: str, comment: str | None,
        reason: str | None = None,
    ) -> int:
        """Store one vote at once (the caller returns its id) and return the new row's id. ``reason``, one
        of FEEDBACK_REASONS, is given with a down vote only (or not at all)."""
        if vote not in ("up", "down"):
            raise ValueError(f"vote must be 'up' or 'down', got {vote!r}")
        if reason is not None and reason not in FEEDBACK_REASONS:
            raise ValueError(f"reason must be one of {FEEDBACK_REASONS} or None, got {reason!r}")
        if reason is not None and vote != "down":
            raise ValueError(f"a reason goes with a down vote only, got {reason!r} with {vote!r}")
        # compact and unescaped, as pydantic's model_dump_json wrote it before
        citation_json = json.dumps(citation, ensure_ascii=False, separators=(",", ":"))
        with self._session() as db:
            cursor = db.execute(
                "INSERT INTO feedback (created_at, question, answer, doc_id, citation, vote, comment, question_norm,"
                " reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_timestamp(self._now()), question, answer, doc_id, citation_json, vote, comment,
                 normalise_question(question), reason),
            )
            return int(cursor.lastrowid)

    def export_feedback(self) -> Iterator[str]:
        """Every feedback row, oldest first, one JSON object a line (FeedbackStore.export's shape, and
        the ``reason`` of a down vote, or null).

        The first page is read by this call, so a file that can't be read raises
        RecordsUnavailable here rather than in the middle of a download. The rest
        is read a page at a time with a connection per page, so a slow download
        neither holds a read transaction nor needs to stay on one thread.
        """
        return self._export_from(self._feedback_page(0))

    def _feedback_page(self, after_id: int) -> list[sqlite3.Row]:
        columns = ", ".join(_EXPORT_COLUMNS)
        with self._session() as db:
            db.row_factory = sqlite3.Row
            return db.execute(
                f"SELECT {columns} FROM feedback WHERE id > ? ORDER BY id LIMIT ?", (after_id, EXPORT_PAGE)
            ).fetchall()

    def _export_from(self, rows: list[sqlite3.Row]) -> Iterator[str]:
        while True:
            for row in rows:
                record = dict(row)
                record["citation"] = json.loads(record["citation"])
                yield _one_line(json.dumps(record, ensure_ascii=False)) + "\n"
            if len(rows) < EXPORT_PAGE:
                return
            rows = self._feedback_page(rows[-1]["id"])

    def purge_feedback(self) -> int:
        """Delete every feedback row now; return how many (see ``purge_queries`` for how)."""
        return self._purge("feedback")

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
        slowed or failed for the log's sake. A lone surrogate in the question is
        stored as U+FFFD (it can't be encoded, and would fail the writer's batch).
        """
        if kind not in QUERY_KINDS:
            raise ValueError(f"kind must be one of {QUERY_KINDS}, got {kind!r}")
        if not self.query_log or self._closed:
            return
        question = _encodable(question)
        row: _QueuedQuery = (
            _timestamp(self._now()), kind, question, normalise_question(question), int(answered), reason,
            float(took_ms), index_version, request_id,
        )
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            logger.warning("query log: %d queries waiting to be written; this one is dropped", QUEUE_LIMIT)

    def unanswered(self, limit: int | None = 50) -> list[UnansweredQuestion]:
        """The questions most often declined (asks only) or voted down, most frequent first (``limit``
        None: every one).

        Queries still queued are not counted; call ``flush()`` first to include them.
        """
        with self._session() as db:
            rows = db.execute(_UNANSWERED, (_sql_limit(limit),)).fetchall()
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

    def asked(self, limit: int | None = None) -> list[AskedQuestion]:
        """The questions asked (``/v1/ask``, answered or not), most often asked first, then the latest
        (``limit`` None: every one). Queries still queued are not counted; ``flush()`` first."""
        with self._session() as db:
            rows = db.execute(_ASKED, (_sql_limit(limit),)).fetchall()
        return [AskedQuestion(question=question, asked=int(asked), answered=int(answered), last_asked=last)
                for question, asked, answered, last in rows]

    def down_votes(self, limit: int | None = None) -> list[DownVote]:
        """The thumbs-down votes, newest first (``limit`` None: every one)."""
        with self._session() as db:
            rows = db.execute(_DOWN_VOTES, (_sql_limit(limit),)).fetchall()
        return [DownVote(id=int(row_id), created_at=created, question=question, answer=answer,
                         citation=json.loads(citation), comment=comment, reason=reason)
                for row_id, created, question, answer, citation, comment, reason in rows]

    def purge_queries(self) -> int:
        """Delete every logged query, including any still queued; return how many.

        Raises RecordsUnavailable when the queued ones can't be written first
        (the file locked), rather than leave them to be written after the purge.
        """
        if not self.flush(timeout=self.busy_timeout + GATHER_S + RETRY_S):
            raise RecordsUnavailable(f"the records file {self.path} is locked: queued queries are not written yet")
        return self._purge("queries")

    def _purge(self, table: str) -> int:
        """Delete every row of ``table``. secure_delete zeroes the rows' pages; the checkpoint then copies
        those pages into the main file and truncates the write-ahead log, which still held the text."""
        with self._session() as db:
            deleted = db.execute(f"DELETE FROM {table}").rowcount
            busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            logger.warning("%s purged, but a reader kept the write-ahead log from being truncated", table)
        return int(deleted)

    # retention

    def prune(self) -> int:
        """Apply retention now: delete logged queries and feedback older than their periods; return how many."""
        now = self._now()
        with self._session() as db:
            deleted = self._delete_expired(db, now)
        self._pruned(now)
        return deleted

    def _pruned(self, now: datetime) -> None:
        self._last_prune = now
        self._next_prune = time.monotonic() + self.prune_every.total_seconds()

    def _prune_due(self) -> bool:
        return time.monotonic() >= self._next_prune or self._now() - self._last_prune >= self.prune_every

    def _delete_expired(self, db: sqlite3.Connection, now: datetime) -> int:
        queries = db.execute("DELETE FROM queries WHERE created_at < ?", (_timestamp(now - self.retention),))
        feedback = db.execute(
            "DELETE FROM feedback WHERE created_at < ?", (_timestamp(now - self.feedback_retention),)
        )
        return int(queries.rowcount) + int(feedback.rowcount)

    # the writer

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every query queued before this call is written (for tests, reports and shutdown).

        False if that took longer than ``timeout`` seconds (the file locked: the
        rows stay queued and are written once it is free).
        """
        writer = self._writer
        if writer is None or not writer.is_alive():
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        written = threading.Event()
        try:
            self._queue.put(written, timeout=timeout)
        except queue.Full:
            return False
        while not written.wait(0.1):
            if not writer.is_alive():
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return True

    def close(self) -> None:
        """Write what is queued and stop the writer and the pool. Queries logged after this are ignored."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _take(self, timeout: float) -> list[_QueuedQuery | threading.Event | None]:
        """What is queued: the first item within ``timeout`` seconds (none: an empty list), then what
        arrives in the GATHER_S after it (one transaction a second under load, not one a request: each
        costs the request threads the interpreter lock, and the disk a write)."""
        try:
            batch = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + GATHER_S
        while len(batch) < BATCH_LIMIT and isinstance(batch[-1], tuple):
            try:
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _write_queued(self) -> None:
        """The writer thread: write what is queued, in one transaction, until closed; keep rows the locked
        file refused and try again; apply retention when it is due."""
        db: sqlite3.Connection | None = None
        opened: _Identity | None = None
        rows: list[_QueuedQuery] = []
        waiting: list[threading.Event] = []
        stopping = False
        locked = False
        try:
            while not stopping:
                wait = RETRY_S if rows else max(0.0, self._next_prune - time.monotonic())
                for item in self._take(wait):
                    if item is None:
                        stopping = True
                    elif isinstance(item, threading.Event):
                        waiting.append(item)
                    else:
                        rows.append(item)
                if len(rows) > QUEUE_LIMIT:
                    logger.warning("query log: the file is locked; %d queries are dropped", len(rows) - QUEUE_LIMIT)
                    del rows[:-QUEUE_LIMIT]
                try:
                    # the file now at the path: a deleted one is made again, and written to from then on
                    if db is None or opened != self._ensure_file():
                        if db is not None:
                            db.close()
                            db = None
                        opened = self._identity
                        db = self._raw_connect(self.busy_timeout)
                    self._insert(db, rows)
                    rows = []
                    if locked:
                        logger.info("query log: the records file is free again; queued queries written")
                        locked = False
                except Exception as exc:  # the log must outlive a bad disk moment
                    if _is_busy(exc) and not stopping:
                        if not locked:
                            logger.warning("query log: the records file is locked; %d queries wait", len(rows))
                            locked = True
                    else:
                        logger.exception("query log: %d queries could not be written", len(rows))
                        rows = []
                if db is not None and not locked and self._prune_due():
                    self._prune_with(db)
                if not rows:  # flush() returns once its rows are written, and retention applied if due
                    for event in waiting:
                        event.set()
                    waiting = []
        finally:
            if db is not None:
                db.close()
            for event in waiting:
                event.set()

    def _insert(self, db: sqlite3.Connection, rows: list[_QueuedQuery]) -> None:
        if not rows:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(_INSERT_QUERY, rows)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _prune_with(self, db: sqlite3.Connection) -> None:
        now = self._now()
        try:
            deleted = self._delete_expired(db, now)
        except sqlite3.Error as exc:
            logger.warning("records: retention not applied (%s); trying again in %.0f s", exc, PRUNE_RETRY_S)
            self._next_prune = time.monotonic() + min(PRUNE_RETRY_S, self.prune_every.total_seconds())
            return
        self._pruned(now)
        if deleted:
            logger.info("records: %d rows past their retention period deleted", deleted)


def open_records(settings: ServiceSettings) -> Records:
    """The records file as the settings describe it (opened, migrated, retention applied, its writer
    started): the server's, and the one ``qa serve`` checks before it starts."""
    return Records(
        settings.feedback_path(), settings.query_log, settings.query_log_days,
        feedback_days=settings.feedback_days,
        prune_every=timedelta(seconds=settings.records_prune_interval),
        busy_timeout=settings.records_busy_timeout,
    )
