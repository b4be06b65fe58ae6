"""The records file: feedback and the query log in one SQLite file, on disk, no mocks.

Times in the past are written through the clock a Records takes (``now=``), the
documented way to age rows without waiting.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
import time
import typing
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from qa_service.api.schemas import FeedbackReason
from qa_service.records import (
    FEEDBACK_REASONS,
    SCHEMA_VERSION,
    Records,
    RecordsError,
    RecordsUnavailable,
    RecordsVersionError,
    UnansweredQuestion,
)
from qa_service.settings import ServiceSettings
from tests.conftest import ADMIN_TOKEN, LiveServer


# FeedbackStore's table, copied verbatim from qa_service/feedback.py as it shipped (user_version 0).
OLD_FEEDBACK_SCHEMA = """
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

CITATION = {"doc_id": "ibuprofen", "title": "Ibuprofen", "source": "leaflets/ibuprofen.html",
            "section": "Overdose", "start": 120, "end": 164}

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

OpenRecords = Callable[..., Records]


class Clock:
    """A settable clock for Records(now=...)."""

    def __init__(self, at: datetime = START) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


class TickingClock(Clock):
    """Each reading a second after the last, so every row has its own time."""

    def __call__(self) -> datetime:
        self.at += timedelta(seconds=1)
        return self.at


@pytest.fixture
def open_records() -> Iterator[OpenRecords]:
    """Records(...) that are closed when the test ends, pass or fail."""
    opened: list[Records] = []

    def open_(*args: object, **kwargs: object) -> Records:
        records = Records(*args, **kwargs)
        opened.append(records)
        return records

    yield open_
    for records in opened:
        records.close()


def rows(path: Path, sql: str, *params: object) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(sql, params).fetchall()


def log(records: Records, question: str, *, kind: str = "ask", answered: bool = False,
        reason: str | None = "low_confidence", request_id: str | None = None) -> None:
    records.log_query(kind=kind, question=question, answered=answered, reason=None if answered else reason,
                      took_ms=12.5, index_version="idx-1", request_id=request_id)


def vote(records: Records, question: str, direction: str, comment: str | None = None) -> int:
    return records.add_feedback(question=question, answer="Seek medical help at once.", doc_id="ibuprofen",
                                citation=CITATION, vote=direction, comment=comment)


def test_feedback_round_trip_and_export_oldest_first(tmp_path: Path, open_records: OpenRecords) -> None:
    records = open_records(tmp_path / "new" / "records.sqlite3", now=TickingClock())
    ids = [vote(records, "How is an overdose treated?", "up", "first"),
           vote(records, "How is an overdose treated?", "down", "second — ünïcode"),
           vote(records, "Can I drive?", "up")]
    assert ids == sorted(ids)

    exported = [json.loads(line) for line in records.export_feedback()]
    assert [r["id"] for r in exported] == ids
    assert [r["comment"] for r in exported] == ["first", "second — ünïcode", None]
    # FeedbackStore's shape and the reason (not the grouping key), the citation as an object
    assert list(exported[0]) == ["id", "created_at", "question", "answer", "doc_id", "citation", "vote", "comment",
                                 "reason"]
    assert exported[1]["citation"] == CITATION and exported[1]["vote"] == "down"
    assert exported[0]["created_at"] < exported[2]["created_at"]
    with pytest.raises(ValueError, match="vote must be 'up' or 'down', got 'maybe'"):
        vote(records, "Can I drive?", "maybe")


def test_queries_are_logged_in_the_background_and_written_on_flush(tmp_path: Path, open_records: OpenRecords) -> None:
    path = tmp_path / "records.sqlite3"
    records = open_records(path, now=Clock())
    log(records, "How much paracetamol a day?", answered=True, request_id="req-1")
    log(records, "Is it safe with alcohol?", kind="search", answered=True)
    log(records, "What about my  GRANDMOTHER's pills?", reason="out_of_scope")
    records.flush()

    stored = rows(path, "SELECT created_at, kind, question, question_norm, answered, reason, took_ms,"
                        " index_version, request_id FROM queries ORDER BY id")
    assert stored == [
        ("2025-03-01T09:00:00+00:00", "ask", "How much paracetamol a day?", "how much paracetamol a day?", 1, None,
         12.5, "idx-1", "req-1"),
        ("2025-03-01T09:00:00+00:00", "search", "Is it safe with alcohol?", "is it safe with alcohol?", 1, None,
         12.5, "idx-1", None),
        ("2025-03-01T09:00:00+00:00", "ask", "What about my  GRANDMOTHER's pills?",
         "what about my grandmother's pills?", 0, "out_of_scope", 12.5, "idx-1", None),
    ]
    with pytest.raises(ValueError, match="kind must be one of .*, got 'browse'"):
        log(records, "?", kind="browse")


def test_unanswered_merges_declines_and_down_votes_most_frequent_first(
    tmp_path: Path, open_records: OpenRecords
) -> None:
    records = open_records(tmp_path / "records.sqlite3", now=TickingClock())
    # one question, worded four ways: three declines and a down vote
    log(records, "What is the dose for a child?", reason="low_confidence")
    log(records, "what is the  DOSE for a child?", reason="no_passage")
    log(records, "What is the dose\tfor a child?", reason="low_confidence")
    vote(records, "  WHAT is the dose for a child?  ", "down")
    # another, declined twice
    log(records, "Can I take it while pregnant?")
    log(records, "can i take it while pregnant?")
    # answered, but voted down once
    log(records, "How is an overdose treated?", answered=True)
    vote(records, "How is an overdose treated?", "down", "not the treatment")
    # none of these count: answered asks, declined searches, up votes
    for _ in range(5):
        log(records, "Can I drive?", answered=True)
        log(records, "Can I drive?", kind="search", answered=False, reason="no_passage")
        vote(records, "Can I drive?", "up")
    records.flush()

    found = records.unanswered()
    assert [(q.declined, q.thumbs_down) for q in found] == [(3, 1), (2, 0), (0, 1)]
    child, pregnant, overdose = found
    assert isinstance(child, UnansweredQuestion)
    assert child.question == "  WHAT is the dose for a child?  "  # the latest wording
    assert child.reasons == ("low_confidence", "no_passage")
    assert pregnant.question == "can i take it while pregnant?" and pregnant.reasons == ("low_confidence",)
    assert overdose.question == "How is an overdose treated?" and overdose.reasons == ()
    assert child.last_asked < pregnant.last_asked < overdose.last_asked  # the clock ticked between rows
    assert records.unanswered(limit=2) == found[:2]
    with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
        records.unanswered(limit=0)


def test_retention_prunes_on_prune_on_open_and_hourly_on_write(tmp_path: Path, open_records: OpenRecords) -> None:
    path = tmp_path / "records.sqlite3"
    clock = Clock()
    records = open_records(path, retention_days=30, now=clock)
    log(records, "old one")
    log(records, "old two")
    clock.advance(days=25)
    log(records, "recent")
    records.flush()
    clock.advance(days=10)  # the first two are 35 days old now, the third 10

    assert records.prune() == 2
    assert rows(path, "SELECT question FROM queries") == [("recent",)]
    assert records.prune() == 0
    records.close()

    clock.advance(days=25)  # "recent" is 35 days old: opening the file removes it
    open_records(path, retention_days=30, now=clock).close()
    assert rows(path, "SELECT COUNT(*) FROM queries") == [(0,)]


def test_the_writer_prunes_at_most_once_an_hour(tmp_path: Path, open_records: OpenRecords) -> None:
    path = tmp_path / "records.sqlite3"
    clock = Clock()
    records = open_records(path, retention_days=10 / (24 * 60), now=clock)  # ten minutes
    log(records, "first")
    records.flush()
    clock.advance(minutes=30)  # "first" has expired, but the last prune (on open) was under an hour ago
    log(records, "second")
    records.flush()
    assert rows(path, "SELECT question FROM queries ORDER BY id") == [("first",), ("second",)]

    clock.advance(minutes=31)  # an hour since the last prune: this write prunes
    log(records, "third")
    records.flush()
    assert rows(path, "SELECT question FROM queries ORDER BY id") == [("third",)]


def test_purge_deletes_every_query_and_leaves_no_text_in_the_file(tmp_path: Path, open_records: OpenRecords) -> None:
    path = tmp_path / "records.sqlite3"
    records = open_records(path, now=Clock())
    secret = "My patient Zebediah Quartermaine takes warfarin and 40 mg of Xylocaine"
    for i in range(50):  # declined, so also in the partial index
        log(records, f"{secret} #{i}", request_id=f"req-{i}")
    log(records, secret, answered=True)
    vote(records, "Can I drive?", "down")  # feedback is not the query log: it stays
    records.flush()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert b"Zebediah" in path.read_bytes()  # the check below would find the text were it left

    assert records.purge_queries() == 51
    assert rows(path, "SELECT COUNT(*) FROM queries") == [(0,)]
    assert [q.question for q in records.unanswered()] == ["Can I drive?"]
    # no checkpoint of the test's own: the purge leaves neither the file nor its write-ahead log holding the text
    files = [p for p in tmp_path.iterdir() if p.name.startswith(path.name)]
    for file in files:
        data = file.read_bytes()
        for fragment in ("Zebediah", "zebediah", "Quartermaine", "quartermaine", "req-7"):
            assert fragment.encode() not in data, (file.name, fragment)
    assert records.purge_queries() == 0


def test_query_log_off_logs_nothing(tmp_path: Path, open_records: OpenRecords) -> None:
    path = tmp_path / "records.sqlite3"
    records = open_records(path, query_log=False)
    log(records, "How is an overdose treated?")
    records.flush()
    assert rows(path, "SELECT COUNT(*) FROM queries") == [(0,)]
    assert vote(records, "Can I drive?", "down") == 1  # feedback still works
    assert [q.thumbs_down for q in records.unanswered()] == [1]


def test_an_old_feedback_file_migrates_and_keeps_its_rows(tmp_path: Path, open_records: OpenRecords) -> None:
    path = tmp_path / "feedback.sqlite3"
    old_rows = [
        ("2024-11-02T10:00:00+00:00", "How is an overdose treated?", "Seek help.", "ibuprofen",
         json.dumps(CITATION), "down", "not the treatment"),
        ("2024-11-03T11:30:00+00:00", "Dosierung für Kinder?", None, "ibuprofen", json.dumps(CITATION), "up", None),
    ]
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(OLD_FEEDBACK_SCHEMA)
        db.executemany("INSERT INTO feedback (created_at, question, answer, doc_id, citation, vote, comment)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?)", old_rows)
    assert rows(path, "PRAGMA user_version") == [(0,)]

    records = open_records(path, now=Clock())  # within a year of the old votes: feedback retention keeps them
    assert records.schema_version == SCHEMA_VERSION == 3
    exported = [json.loads(line) for line in records.export_feedback()]
    assert [(r["id"], r["created_at"], r["question"], r["vote"], r["comment"], r["reason"]) for r in exported] == [
        (1, "2024-11-02T10:00:00+00:00", "How is an overdose treated?", "down", "not the treatment", None),
        (2, "2024-11-03T11:30:00+00:00", "Dosierung für Kinder?", "up", None, None),
    ]
    assert exported[0]["citation"] == CITATION
    # old down votes were given the grouping key
    assert [(q.question, q.thumbs_down) for q in records.unanswered()] == [("How is an overdose treated?", 1)]
    assert vote(records, "Can I drive?", "up") == 3  # ids go on from the old rows
    records.close()

    # opening again changes nothing
    tables = rows(path, "SELECT type, name, sql FROM sqlite_master ORDER BY name")
    again = open_records(path, now=Clock())
    assert again.schema_version == SCHEMA_VERSION
    assert rows(path, "SELECT type, name, sql FROM sqlite_master ORDER BY name") == tables
    assert len(list(again.export_feedback())) == 3


# The file as the code of schema version 2 (before feedback reasons) made it: its statements, verbatim.
VERSION_2_SCHEMA = (
    OLD_FEEDBACK_SCHEMA,
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
        """,
    "CREATE INDEX queries_created_at ON queries (created_at)",
    "CREATE INDEX queries_declined ON queries (question_norm) WHERE kind = 'ask' AND answered = 0",
    "ALTER TABLE feedback ADD COLUMN question_norm TEXT",
    "CREATE INDEX feedback_down ON feedback (question_norm) WHERE vote = 'down'",
    "PRAGMA user_version = 2",
)


def test_a_version_2_file_gains_the_reason_column_and_keeps_working(tmp_path: Path, open_records: OpenRecords) -> None:
    path = tmp_path / "records.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        for statement in VERSION_2_SCHEMA:
            db.execute(statement)
        db.execute("INSERT INTO feedback (created_at, question, answer, doc_id, citation, vote, comment, question_norm)"
                   " VALUES ('2025-02-27T08:00:00+00:00', 'Can I drive?', 'No.', 'ibuprofen', ?, 'down', 'vague',"
                   " 'can i drive?')", (json.dumps(CITATION),))
        db.execute("INSERT INTO queries (created_at, kind, question, question_norm, answered, reason, took_ms,"
                   " index_version) VALUES ('2025-02-28T08:00:00+00:00', 'ask', 'Can I drive?', 'can i drive?', 0,"
                   " 'low_confidence', 3.0, 'idx-0')")
    assert "reason" not in [row[1] for row in rows(path, "PRAGMA table_info(feedback)")]

    records = open_records(path, now=Clock())
    assert records.schema_version == SCHEMA_VERSION == 3
    assert "reason" in [row[1] for row in rows(path, "PRAGMA table_info(feedback)")]
    new_id = records.add_feedback(question="Can I drive?", answer="No.", doc_id="ibuprofen", citation=CITATION,
                                  vote="down", comment=None, reason="outdated")
    exported = [json.loads(line) for line in records.export_feedback()]
    assert [(r["id"], r["comment"], r["reason"]) for r in exported] == [(1, "vague", None), (new_id, None, "outdated")]
    assert [(q.question, q.declined, q.thumbs_down) for q in records.unanswered()] == [("Can I drive?", 1, 2)]


def test_a_reason_goes_with_a_down_vote_only_and_is_one_of_four(tmp_path: Path, open_records: OpenRecords) -> None:
    path = tmp_path / "records.sqlite3"
    records = open_records(path)
    kept = {reason: records.add_feedback(question="q?", answer=None, doc_id="ibuprofen", citation=CITATION,
                                         vote="down", comment=None, reason=reason) for reason in FEEDBACK_REASONS}
    assert FEEDBACK_REASONS == ("wrong_medicine", "wrong_section", "outdated", "other")
    assert FEEDBACK_REASONS == typing.get_args(FeedbackReason)  # the HTTP contract names the same four
    with pytest.raises(ValueError, match="a reason goes with a down vote only"):
        records.add_feedback(question="q?", answer=None, doc_id="ibuprofen", citation=CITATION, vote="up",
                             comment=None, reason="outdated")
    with pytest.raises(ValueError, match="reason must be one of"):
        records.add_feedback(question="q?", answer=None, doc_id="ibuprofen", citation=CITATION, vote="down",
                             comment=None, reason="boring")
    assert rows(path, "SELECT id, reason FROM feedback ORDER BY id") == sorted((i, r) for r, i in kept.items())


def test_a_newer_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RecordsVersionError) as refused:
        Records(path)
    message = str(refused.value)
    assert f"version {SCHEMA_VERSION + 1}" in message and f"version {SCHEMA_VERSION})" in message
    assert (refused.value.found, refused.value.known) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    assert rows(path, "PRAGMA journal_mode") == [("delete",)]
    assert rows(path, "SELECT name FROM sqlite_master") == []


def test_a_foreign_feedback_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE feedback (id INTEGER PRIMARY KEY, stars INTEGER)")
    with pytest.raises(RecordsError, match="unexpected columns"):
        Records(path)
    assert rows(path, "PRAGMA user_version") == [(0,)]


def test_queries_logged_from_eight_threads_are_all_written(tmp_path: Path, open_records: OpenRecords) -> None:
    path = tmp_path / "records.sqlite3"
    records = open_records(path)
    threads, each = 8, 250
    start = threading.Barrier(threads)

    def ask(worker: int) -> None:
        start.wait()
        for i in range(each):
            log(records, f"question {i} from {worker}", answered=i % 2 == 0, request_id=f"{worker}-{i}")

    workers = [threading.Thread(target=ask, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert not worker.is_alive()
    records.flush()
    assert rows(path, "SELECT COUNT(*), COUNT(DISTINCT request_id) FROM queries") == [(threads * each,) * 2]
    assert sum(q.declined for q in records.unanswered(limit=10_000)) == threads * each // 2


def test_close_writes_what_is_queued(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite3"
    records = Records(path)
    for i in range(100):
        log(records, f"question {i}")
    records.close()
    records.close()  # twice is harmless
    log(records, "after close")  # ignored, not an error
    assert rows(path, "SELECT COUNT(*) FROM queries") == [(100,)]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll ``check`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


class Lock:
    """Another connection holding the records file's write lock (BEGIN EXCLUSIVE) until released.

    The file is in WAL mode, so this stops writers only: readers go on reading what is committed.
    """

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self.db.close()


# --- the store on its own: a locked, deleted or ageing file ------------------------------------------


def test_a_locked_file_refuses_feedback_quickly_and_keeps_logged_queries(
    tmp_path: Path, open_records: OpenRecords
) -> None:
    path = tmp_path / "records.sqlite3"
    records = open_records(path, busy_timeout=0.2)
    lock = Lock(path)
    try:
        began = time.monotonic()
        with pytest.raises(RecordsUnavailable, match="locked"):
            vote(records, "Can I drive?", "up")
        assert time.monotonic() - began < 5
        log(records, "asked while the file was locked", request_id="locked-1")
        assert records.flush(timeout=1.5) is False  # not written yet: it waits, it is not dropped
        assert [q.question for q in records.unanswered()] == []  # reading is not blocked
    finally:
        lock.release()
    assert records.flush(timeout=20)
    assert rows(path, "SELECT question FROM queries WHERE request_id = 'locked-1'") == [
        ("asked while the file was locked",)
    ]
    assert rows(path, "SELECT COUNT(*) FROM feedback") == [(0,)]


def test_a_deleted_file_is_made_again_and_written_to(tmp_path: Path, open_records: OpenRecords) -> None:
    path = tmp_path / "records.sqlite3"
    records = open_records(path)
    vote(records, "Before the deletion?", "up")
    log(records, "logged before")
    records.flush()
    path.unlink()  # as `rm` would: its -wal and -shm are left behind

    assert vote(records, "After the deletion?", "down") == 1  # a new file: ids start again
    log(records, "logged after")
    records.flush()
    assert rows(path, "SELECT question FROM feedback") == [("After the deletion?",)]
    assert rows(path, "SELECT question FROM queries") == [("logged after",)]
    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert {q.question for q in records.unanswered()} == {"After the deletion?", "logged after"}
    assert mode(path) == 0o600


def test_the_file_and_its_wal_and_shm_are_private(tmp_path: Path, open_records: OpenRecords) -> None:
    path = tmp_path / "records.sqlite3"
    records = open_records(path)
    vote(records, "Can I drive?", "up")
    log(records, "Can I drive?")
    records.flush()
    files = {p.name: mode(p) for p in tmp_path.iterdir()}
    assert files == {"records.sqlite3": 0o600, "records.sqlite3-wal": 0o600, "records.sqlite3-shm": 0o600}


def test_retention_runs_on_a_timer_and_ages_feedback_too(tmp_path: Path, open_records: OpenRecords) -> None:
    path = tmp_path / "records.sqlite3"
    clock = Clock()
    records = open_records(path, retention_days=1, feedback_days=10, prune_every=timedelta(seconds=0.3), now=clock)
    log(records, "old question")
    vote(records, "old vote", "down")
    records.flush()
    clock.advance(days=5)
    vote(records, "newer vote", "up")
    # nothing more is written: the writer's timer deletes the question (5 days old), not the votes
    assert wait_for(lambda: rows(path, "SELECT COUNT(*) FROM queries") == [(0,)])
    assert rows(path, "SELECT question FROM feedback ORDER BY id") == [("old vote",), ("newer vote",)]
    clock.advance(days=6)  # the old vote is 11 days old
    assert wait_for(lambda: rows(path, "SELECT question FROM feedback") == [("newer vote",)])
    assert records.prune() == 0


def test_purge_feedback_deletes_every_vote_and_leaves_the_log(tmp_path: Path, open_records: OpenRecords) -> None:
    path = tmp_path / "records.sqlite3"
    records = open_records(path)
    for i in range(3):
        vote(records, f"Secret patient Zebediah {i}", "down", comment="Quartermaine")
    log(records, "a logged question")
    records.flush()
    assert records.purge_feedback() == 3
    assert list(records.export_feedback()) == []
    assert rows(path, "SELECT question FROM queries") == [("a logged question",)]
    for file in tmp_path.iterdir():
        assert b"Quartermaine" not in file.read_bytes(), file.name


def test_a_lone_surrogate_in_a_logged_question_costs_no_row(tmp_path: Path, open_records: OpenRecords) -> None:
    path = tmp_path / "records.sqlite3"
    records = open_records(path)
    log(records, "before")
    log(records, "half a pair: \ud800")
    log(records, "after")
    records.flush()
    assert rows(path, "SELECT question FROM queries ORDER BY id") == [
        ("before",), ("half a pair: \ufffd",), ("after",)
    ]


# --- under a running server ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory, seed_settings: ServiceSettings) -> Iterator[LiveServer]:
    """The real app over the seed index with a records file of its own (these tests lock and delete it),
    retention applied every half second: questions kept a day, feedback two."""
    from qa_service.api import create_app

    path = tmp_path_factory.mktemp("own-records") / "records.sqlite3"
    settings = seed_settings.model_copy(update={
        "feedback_db": path, "records_prune_interval": 0.5, "query_log_days": 1.0, "feedback_days": 2.0,
    })
    with LiveServer(create_app(settings)) as live:
        live.records_path = path  # type: ignore[attr-defined]
        yield live


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


REFUSED_WITHIN_S = 5.0
"""A call the locked file refuses answers within this (the busy timeout is 1 s; six votes share the records'
two threads): not after sqlite's default five seconds a call, nor the client's own timeout."""


def timed(call: Callable[..., httpx.Response], *args: object, **kwargs: object) -> httpx.Response:
    """``call``'s response, with the seconds it took as ``response.took``."""
    began = time.monotonic()
    response = call(*args, **kwargs)
    response.took = time.monotonic() - began  # type: ignore[attr-defined]
    return response


def assert_records_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == {"error": {"code": "records_unavailable", "message": response.json()["error"]["message"]}}
    assert response.headers["retry-after"]
    assert response.took < REFUSED_WITHIN_S, f"{response.request.method} {response.request.url.path} took {response.took:.1f} s"  # type: ignore[attr-defined]


def _vote_body(http: httpx.Client) -> dict:
    answer = http.post("/v1/ask", json={"question": "How is an overdose treated?"}).json()["answers"][0]
    return {"question": "How is an overdose treated?", "citation": answer["citation"], "vote": "down"}


def test_a_locked_records_file_holds_up_no_answer(own_server: LiveServer) -> None:
    path: Path = own_server.records_path  # type: ignore[attr-defined]
    with httpx.Client(base_url=own_server.url, timeout=60) as http:
        body = _vote_body(http)
        feedback_before = rows(path, "SELECT COUNT(*) FROM feedback")
        request_id = f"locked-{uuid.uuid4().hex}"
        question = f"How is an overdose treated? {uuid.uuid4().hex[:8]}"  # not in the answer cache

        def post_vote(_: int) -> httpx.Response:
            with httpx.Client(base_url=own_server.url, timeout=60) as other:
                return timed(other.post, "/v1/feedback", json=body)

        lock = Lock(path)
        try:
            with ThreadPoolExecutor(6) as pool:
                voting = [pool.submit(post_vote, i) for i in range(6)]  # more votes than request threads
                time.sleep(0.5)  # the votes are in: waiting on the lock, if on a request thread
                began = time.monotonic()
                asked = http.post("/v1/ask", json={"question": question}, headers={"X-Request-ID": request_id})
                took = time.monotonic() - began
                votes = [future.result() for future in voting]
            unanswered = timed(http.get, "/v1/admin/unanswered", headers=ADMIN)
            purge = timed(http.delete, "/v1/admin/queries", headers=ADMIN)
        finally:
            lock.release()
        assert asked.status_code == 200 and asked.json()["question"] == question
        assert took < 5, f"/v1/ask took {took:.1f} s while the records file was locked"
        for refused in votes:
            assert_records_unavailable(refused)
        assert unanswered.status_code == 200  # a report reads what is written (WAL: a writer's lock)
        assert_records_unavailable(purge)

        # the lock gone: the queued question lands, votes are taken again, and none was half stored
        assert wait_for(lambda: rows(path, "SELECT question FROM queries WHERE request_id = ?", request_id)
                        == [(question,)])
        assert rows(path, "SELECT COUNT(*) FROM feedback") == feedback_before
        assert http.post("/v1/feedback", json=body).status_code == 201


def test_an_unreadable_records_file_makes_every_report_a_quick_503(own_server: LiveServer) -> None:
    """The file swapped for one that is no database (a botched restore): feedback and every admin report
    are 503 records_unavailable, answers are not held up; once it is removed, a new file is made."""
    path: Path = own_server.records_path  # type: ignore[attr-defined]
    with httpx.Client(base_url=own_server.url, timeout=60) as http:
        body = _vote_body(http)
        assert http.post("/v1/feedback", json=body).status_code == 201
        garbage = path.with_name("restored.tmp")
        garbage.write_bytes(b"this is not a SQLite database\n" * 200)
        os.replace(garbage, path)
        try:
            asked = timed(http.post, "/v1/ask", json={"question": f"Can I drive? {uuid.uuid4().hex[:8]}"})
            refused = [
                timed(http.post, "/v1/feedback", json=body),
                timed(http.get, "/v1/admin/unanswered", headers=ADMIN),
                timed(http.get, "/v1/admin/feedback", headers=ADMIN),
                timed(http.delete, "/v1/admin/feedback", headers=ADMIN),
                timed(http.delete, "/v1/admin/queries", headers=ADMIN),
            ]
        finally:
            path.unlink()
        assert asked.status_code == 200 and asked.took < 5  # type: ignore[attr-defined]
        for response in refused:
            assert_records_unavailable(response)
        assert http.post("/v1/feedback", json=body).status_code == 201
        assert rows(path, "SELECT COUNT(*) FROM feedback") == [(1,)]
        assert mode(path) == 0o600


def test_a_records_file_deleted_under_the_server_is_made_again(own_server: LiveServer) -> None:
    path: Path = own_server.records_path  # type: ignore[attr-defined]
    with httpx.Client(base_url=own_server.url, timeout=60) as http:
        body = _vote_body(http)
        assert http.post("/v1/feedback", json=body).status_code == 201
        path.unlink()

        request_id = f"deleted-{uuid.uuid4().hex}"
        assert http.post("/v1/ask", json={"question": "Can I drink alcohol with it?"},
                         headers={"X-Request-ID": request_id}).status_code == 200
        voted = http.post("/v1/feedback", json={**body, "comment": "after the deletion"})
        assert voted.status_code == 201, voted.text
        unanswered = http.get("/v1/admin/unanswered", headers=ADMIN)
        assert unanswered.status_code == 200, unanswered.text
        assert [q["question"] for q in unanswered.json()] == ["How is an overdose treated?"]
        export = http.get("/v1/admin/feedback", headers=ADMIN)
        assert export.status_code == 200
        assert [json.loads(line)["comment"] for line in export.text.splitlines()] == ["after the deletion"]

        # in the new file, which is private like the first
        assert rows(path, "SELECT comment FROM feedback") == [("after the deletion",)]
        assert wait_for(lambda: rows(path, "SELECT COUNT(*) FROM queries WHERE request_id = ?", request_id)
                        == [(1,)])
        assert mode(path) == 0o600
        assert http.delete("/v1/admin/queries", headers=ADMIN).json()["deleted"] >= 1


def test_the_server_prunes_on_a_timer_and_purges_feedback(own_server: LiveServer) -> None:
    path: Path = own_server.records_path  # type: ignore[attr-defined]
    with httpx.Client(base_url=own_server.url, timeout=60) as http:
        body = _vote_body(http)
        assert http.post("/v1/feedback", json=body).status_code == 201

        # -wal and -shm last while a connection has read the file: the writer's, once it has logged the ask
        def files() -> dict[str, int]:
            return {p.name: mode(p) for p in path.parent.iterdir() if p.name.startswith(path.name)}

        assert wait_for(lambda: len(files()) == 3)
        assert files() == {path.name: 0o600, f"{path.name}-wal": 0o600, f"{path.name}-shm": 0o600}

        # rows of days ago, as an older server would have left them; the server writes nothing meanwhile
        def ago(days: float) -> str:
            return (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")

        with sqlite3.connect(path, timeout=10) as db:
            for days, question in ((3, "three days old"), (0.5, "half a day old")):
                db.execute("INSERT INTO queries (created_at, kind, question, question_norm, answered, took_ms,"
                           " index_version) VALUES (?, 'ask', ?, ?, 1, 1.0, 'old')", (ago(days), question, question))
            for days, comment in ((3, "three days old"), (1.5, "a day and a half old")):
                db.execute("INSERT INTO feedback (created_at, question, doc_id, citation, vote, comment)"
                           " VALUES (?, 'q', 'd', '{}', 'up', ?)", (ago(days), comment))
        assert wait_for(lambda: rows(path, "SELECT COUNT(*) FROM queries WHERE question = 'three days old'")
                        == [(0,)])
        assert wait_for(lambda: rows(path, "SELECT COUNT(*) FROM feedback WHERE comment = 'three days old'")
                        == [(0,)])
        assert rows(path, "SELECT COUNT(*) FROM queries WHERE question = 'half a day old'") == [(1,)]
        assert rows(path, "SELECT COUNT(*) FROM feedback WHERE comment = 'a day and a half old'") == [(1,)]

        purged = http.delete("/v1/admin/feedback", headers=ADMIN)
        assert purged.status_code == 200 and purged.json()["deleted"] >= 2
        assert http.get("/v1/admin/feedback", headers=ADMIN).text == ""
        assert rows(path, "SELECT COUNT(*) FROM feedback") == [(0,)]
        assert rows(path, "SELECT COUNT(*) FROM queries WHERE question = 'half a day old'") == [(1,)]
