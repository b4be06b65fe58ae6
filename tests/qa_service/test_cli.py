"""The ``qa`` command as a user runs it: a real process, real files, real output."""

from __future__ import annotations

import json
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from ingest.embedding import resolve_model_path
from qa_service.api import create_app
from qa_service.evaluation import Floors, Outcome
from qa_service.settings import ServiceSettings
from tests.conftest import CORPUS, PYTHON, SECOND_MEDICINE, SEVERAL_MEDICINES, REPO, LiveServer, clean_env, read_line, wait_ready

SEED_DOCS = {"baclosan-tablets-leaflet", "baclofen-how-long-in-system"}


def qa(*args: str, timeout: float = 300, **settings: str) -> subprocess.CompletedProcess:
    """``qa ARGS`` in a fresh process, with no QA_ variable but ``settings``."""
    return subprocess.run(
        [PYTHON, "-m", "qa_service", *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, env=clean_env(**settings),
    )


def test_ingest_reports_and_signals_skipped_files(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    index = tmp_path / "index"
    result = qa("ingest", str(corpus), "--index", str(index))
    assert result.returncode == 3, result.stderr
    assert "skipped broken.pdf:" in result.stderr
    assert "Traceback" not in result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("index built: 2 documents,") and "1 skipped" in last and " s" in last

    (corpus / "broken.pdf").unlink()
    again = qa("ingest", str(corpus), "--index", str(index))
    assert again.returncode == 0
    assert again.stdout.strip().startswith("index up to date: 2 documents")

    forced = qa("ingest", str(corpus), "--index", str(index), "--force")
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.strip().startswith("index built: 2 documents") and "(2 embedded, 0 reused" in forced.stdout


def test_ingest_of_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    result = qa("ingest", str(tmp_path / "nope"), "--index", str(tmp_path / "index"))
    assert result.returncode == 1
    assert result.stderr.startswith("error: corpus folder") and "Traceback" not in result.stderr


def test_a_bundle_of_another_model_is_rebuilt_by_ingest_and_refused_by_ask_and_serve(tmp_path: Path) -> None:
    # "Another model": the same weights under another name (a folder link), which the
    # manifest records as a different model.
    other = tmp_path / "other-model"
    other.symlink_to(resolve_model_path(ServiceSettings().embed_model), target_is_directory=True)
    index = tmp_path / "index"
    assert qa("ingest", str(CORPUS), "--index", str(index)).returncode == 0
    rebuilt = qa("ingest", str(CORPUS), "--index", str(index), QA_EMBED_MODEL=str(other))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "index built: 2 documents" in rebuilt.stdout and "(2 embedded, 0 reused" in rebuilt.stdout
    assert json.loads((index / "manifest.json").read_text())["embed_model"] == str(other)

    refused = qa("ask", "What is the maximum daily dose?", "--index", str(index))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert str(other) in refused.stderr and "re-ingest" in refused.stderr

    with LiveServer(create_app(ServiceSettings(index_dir=index)), ready_path="/healthz") as live:
        deadline = time.monotonic() + 120
        while True:  # the loader thread reports the refusal once it has read the manifest
            response = httpx.get(live.url + "/readyz", timeout=10)
            error = response.json()["error"]
            if "still loading" not in error["message"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert response.status_code == 503 and error["code"] == "not_ready"
        assert "re-ingest" in error["message"] and str(other) in error["message"]


def test_ask_human_readable_json_and_restricted_to_a_document(seed_settings: ServiceSettings) -> None:
    index = str(seed_settings.index_dir)
    human = qa("ask", "What is the maximum daily dose for adults?", "--index", index)
    assert human.returncode == 0, human.stderr
    assert human.stdout.startswith('1. "') and "Source: " in human.stdout

    raw = qa("ask", "What is the maximum daily dose for adults?", "--top-k", "2", "--json", "--index", index)
    assert raw.returncode == 0, raw.stderr
    body = json.loads(raw.stdout)
    assert body["answered"] and 1 <= len(body["answers"]) <= 2

    only = qa("ask", "What is the maximum daily dose for adults?", "--top-k", "5", "--json",
              "--doc-id", "baclofen-how-long-in-system", "--index", index)
    assert only.returncode == 0, only.stderr
    answers = json.loads(only.stdout)["answers"]
    assert answers and {a["citation"]["doc_id"] for a in answers} == {"baclofen-how-long-in-system"}

    declined = qa("ask", "What is the maximum dose of ibuprofen?", "--index", index)
    assert declined.returncode == 0
    assert declined.stdout.startswith("No answer in the documents:") and "ibuprofen" in declined.stdout


def test_ask_says_the_notice_when_the_answers_are_about_different_medicines(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    (corpus / "corvalex-tablets-leaflet.txt").write_text(SECOND_MEDICINE, encoding="utf-8")
    built = qa("ingest", str(corpus), "--index", str(tmp_path / "index"))
    assert built.returncode == 0, built.stderr
    raw = qa("ask", SEVERAL_MEDICINES, "--json", "--index", str(tmp_path / "index"))
    body = json.loads(raw.stdout)
    assert body["answered"] and body["notice"], body
    human = qa("ask", SEVERAL_MEDICINES, "--index", str(tmp_path / "index"))
    assert human.returncode == 0 and human.stdout.startswith(f"Note: {body['notice']}\n1. \""), human.stdout


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["ask", ""], 2, "invalid question"),
        (["ask", "x" * 2001], 2, "invalid question"),
        (["ask", "dose?", "--doc-id", "no-such-doc"], 2, "unknown doc_id"),
        (["ask", "dose?", "--top-k", "0"], 2, "--top-k"),
    ],
)
def test_ask_bad_input_is_a_message_without_traceback(seed_settings: ServiceSettings, args, code, message) -> None:
    result = qa(*args, "--index", str(seed_settings.index_dir))
    assert result.returncode == code
    assert message in result.stderr and "Traceback" not in result.stderr


def test_ask_without_an_index_says_to_ingest(tmp_path: Path) -> None:
    result = qa("ask", "dose?", "--index", str(tmp_path / "none"))
    assert result.returncode == 1
    assert "qa ingest" in result.stderr and "Traceback" not in result.stderr


def _serve(*args: str, **settings: str) -> tuple[subprocess.Popen, str]:
    """``qa serve`` on a free port; returns the process and its base URL (from its first line)."""
    proc = subprocess.Popen(
        [PYTHON, "-m", "qa_service", "serve", "--port", "0", *args],
        cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=clean_env(**settings),
    )
    try:
        first = read_line(proc.stderr, timeout=120)
        found = re.search(r"API docs at (http://127\.0\.0\.1:\d+)/docs", first)
        assert found, first
    except BaseException:
        proc.kill()
        proc.wait(30)
        raise
    # keep reading the log so the pipe never fills up and blocks the server
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc, found.group(1)


def test_serve_logs_where_to_go_first_and_answers_over_http(seed_settings: ServiceSettings) -> None:
    proc, base = _serve("--index", str(seed_settings.index_dir))
    try:
        wait_ready(base + "/readyz", process=proc)
        answer = httpx.post(base + "/v1/ask", json={"question": "How long does baclofen stay in the body?"}, timeout=60)
        assert answer.status_code == 200 and answer.json()["answered"]
    finally:
        proc.terminate()
        # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status tells why it ended
        assert proc.wait(30) in (0, -signal.SIGTERM)


def test_serve_runs_several_worker_processes_over_one_bundle(seed_settings: ServiceSettings) -> None:
    import psutil

    proc, base = _serve("--index", str(seed_settings.index_dir), "--workers", "2")
    try:
        deadline = time.monotonic() + 120
        while len(psutil.Process(proc.pid).children()) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, "two workers did not start"
            time.sleep(0.2)
        # every worker loads the bundle; each new connection may reach either of them
        ready_in_a_row = 0
        while ready_in_a_row < 10:
            assert time.monotonic() < deadline, "the workers did not all become ready"
            try:  # refused until the workers listen
                ok = httpx.get(base + "/readyz", timeout=10, headers={"Connection": "close"}).status_code == 200
            except httpx.TransportError:
                ok = False
            ready_in_a_row = ready_in_a_row + 1 if ok else 0
            time.sleep(0.05)
        for _ in range(4):
            answer = httpx.post(base + "/v1/ask", json={"question": "How long does baclofen stay in the body?"},
                                headers={"Connection": "close"}, timeout=60)
            assert answer.status_code == 200 and answer.json()["answered"]
    finally:
        proc.terminate()
        assert proc.wait(30) in (0, -signal.SIGTERM)


def test_serve_takes_its_settings_from_the_environment(seed_settings: ServiceSettings, tmp_path: Path) -> None:
    feedback_db = tmp_path / "votes" / "feedback.sqlite3"
    proc, base = _serve(
        QA_INDEX_DIR=str(seed_settings.index_dir),
        QA_CORS_ORIGINS='["https://portal.example"]',
        QA_FEEDBACK_DB=str(feedback_db),
        QA_ANSWER__MIN_CONFIDENCE="0.99",
        QA_ADMIN_TOKEN="env-token-of-16-or-more",
        QA_QUERY_LOG="off",
        QA_MAX_BODY_BYTES="4000",
    )
    try:
        ready = wait_ready(base + "/readyz", process=proc)
        assert ready.json()["documents"] == 2  # QA_INDEX_DIR: no --index was given
        with httpx.Client(base_url=base, timeout=60) as http:
            # QA_CORS_ORIGINS, and the default regex: localhost, 127.0.0.1 and [::1] on any port
            for origin in ("https://portal.example", "http://localhost:5173", "http://127.0.0.1:3000", "http://[::1]:8080"):
                assert http.get("/healthz", headers={"Origin": origin}).headers.get("access-control-allow-origin") == origin
            for origin in ("https://elsewhere.example", "http://localhost.evil.example"):
                assert "access-control-allow-origin" not in http.get("/healthz", headers={"Origin": origin}).headers
            # QA_ANSWER__MIN_CONFIDENCE: a question answered at the default threshold is declined at 0.99
            body = http.post("/v1/ask", json={"question": "What is the maximum daily dose for adults?"}).json()
            assert body["answered"] is False and "needed 0.99" in body["reason"]
            # QA_FEEDBACK_DB and QA_ADMIN_TOKEN
            document = http.get("/v1/documents/baclosan-tablets-leaflet").json()
            citation = {"doc_id": document["doc_id"], "title": document["title"], "source": document["source"],
                        "section": None, "start": 0, "end": 10}
            sent = http.post("/v1/feedback", json={"question": "q?", "citation": citation, "vote": "up"})
            assert sent.status_code == 201
            assert feedback_db.exists()
            export = http.get("/v1/feedback", headers={"Authorization": "Bearer env-token-of-16-or-more"})
            assert export.status_code == 200 and len(export.text.splitlines()) == 1
            # QA_MAX_BODY_BYTES: a body of 5,000 bytes is refused (the default takes 128 KiB), one of 1,900 is read
            assert http.post("/v1/ask", json={"question": "x" * 5000}).status_code == 413
            assert http.post("/v1/ask", json={"question": "dose? " + " " * 1900}).status_code == 200
            # QA_QUERY_LOG=off: the questions asked and declined were not logged
            unanswered = http.get("/v1/admin/unanswered", headers={"Authorization": "Bearer env-token-of-16-or-more"})
            assert unanswered.status_code == 200 and unanswered.json() == []
        with closing(sqlite3.connect(feedback_db)) as db:
            assert db.execute("SELECT count(*) FROM queries").fetchone() == (0,)
            assert db.execute("SELECT count(*) FROM feedback").fetchone() == (1,)
    finally:
        proc.terminate()
        # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status tells why it ended
        assert proc.wait(30) in (0, -signal.SIGTERM)


def _tiny_gold(tmp_path: Path) -> Path:
    gold = tmp_path / "gold.jsonl"
    gold.write_text(
        "\n".join(
            json.dumps(q)
            for q in [
                {"id": "a", "question": "How long does baclofen stay in the body?", "answerable": True,
                 "evidence": ["2.5-4 h", "roughly 2 hours", "decline by half every two Hours"],
                 "docs": ["baclofen-how-long-in-system"], "split": "heldout"},
                {"id": "u", "question": "What is the maximum dose of ibuprofen?", "answerable": False, "split": "heldout"},
            ]
        ),
        encoding="utf-8",
    )
    return gold


def test_eval_prints_the_metrics_table_and_writes_details(seed_settings: ServiceSettings, tmp_path: Path) -> None:
    gold = _tiny_gold(tmp_path)
    details = tmp_path / "details.jsonl"
    result = qa("eval", str(gold), "--index", str(seed_settings.index_dir), "--json", "--details", str(details))
    assert result.returncode == 0, result.stderr  # no floors.json beside this gold file: nothing to hold
    table = json.loads(result.stdout)
    assert set(table) == {"heldout", "all"}
    assert table["heldout"]["unanswerable_declined"] == 1.0
    rows = [json.loads(line) for line in details.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a", "u"]
    assert rows[1]["answered"] is False and rows[1]["answers"] == []


def test_eval_exits_non_zero_below_its_floors_and_names_the_changed_questions(
    seed_settings: ServiceSettings, tmp_path: Path
) -> None:
    gold = _tiny_gold(tmp_path)
    # Floors no run can meet, and a baseline in which question "u" was answered.
    impossible = Floors(
        margin_questions=0,
        floors={"heldout": {"unanswerable_declined": 1.0, "answer_mrr": 1.01}},
        baseline=[Outcome(id="u", split="heldout", answered=True, answer_rank=None, passage_rank=None)],
    )
    (tmp_path / "floors.json").write_text(impossible.model_dump_json(), encoding="utf-8")
    result = qa("eval", str(gold), "--index", str(seed_settings.index_dir))
    assert result.returncode == 4, result.stderr
    for metric in ("answer_hit@1", "answer_hit@3", "passage_hit@3", "answer_mrr", "unanswerable_declined", "answerable_declined"):
        assert metric in result.stdout
    assert "heldout answer_mrr fell to" in result.stderr and "floor 1.010" in result.stderr
    assert "unanswerable_declined" not in result.stderr  # that one held
    assert "u [heldout]" in result.stderr and "-> declined" in result.stderr
    assert "Traceback" not in result.stderr

    skipped = qa("eval", str(gold), "--index", str(seed_settings.index_dir), "--no-floors", "--json")
    assert skipped.returncode == 0, skipped.stderr


def test_eval_writes_floors_it_then_holds_and_takes_them_from_any_path(
    seed_settings: ServiceSettings, tmp_path: Path
) -> None:
    gold = _tiny_gold(tmp_path)
    floors = tmp_path / "elsewhere" / "my-floors.json"
    index = ["--index", str(seed_settings.index_dir)]
    missing = qa("eval", str(gold), *index, "--floors", str(floors))
    assert missing.returncode == 1 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr

    floors.parent.mkdir()
    written = qa("eval", str(gold), *index, "--floors", str(floors), "--write-floors", "--json")
    assert written.returncode == 0, written.stderr
    assert f"floors written to {floors}" in written.stderr
    assert not (gold.parent / "floors.json").exists()  # written where it was told, not beside the gold file
    table = json.loads(written.stdout)
    held = Floors.load(floors)
    assert set(held.floors) == {"heldout", "all"} and held.margin_questions == 2
    assert [o.id for o in held.baseline] == ["a", "u"]
    # each floor two questions under the run's figure (one unanswerable question: 1.0 - 2/1, kept at 0)
    assert held.floors["heldout"]["unanswerable_declined"] < table["heldout"]["unanswerable_declined"]

    assert qa("eval", str(gold), *index, "--floors", str(floors)).returncode == 0  # the run meets its own floors

    raised = held.model_copy(update={"floors": {"all": {**held.floors["all"], "unanswerable_declined": 1.5}}})
    floors.write_text(raised.model_dump_json(), encoding="utf-8")
    breached = qa("eval", str(gold), *index, "--floors", str(floors))
    assert breached.returncode == 4 and "all unanswerable_declined fell to" in breached.stderr, breached.stderr
    assert qa("eval", str(gold), *index, "--floors", str(floors), "--no-floors").returncode == 0

    floors.write_text("{not json", encoding="utf-8")
    invalid = qa("eval", str(gold), *index, "--floors", str(floors))
    assert invalid.returncode == 1 and "is invalid" in invalid.stderr and "Traceback" not in invalid.stderr


def test_serve_refuses_unusable_files_with_a_message(seed_settings: ServiceSettings, tmp_path: Path) -> None:
    import sqlite3

    newer = tmp_path / "records.sqlite3"
    with sqlite3.connect(newer) as db:
        db.execute("PRAGMA user_version = 99")
    commented = tmp_path / "commented-keys.txt"
    commented.write_text("# staff keys, rotated\n\n   \n# (none yet)\n", encoding="utf-8")
    latin1 = tmp_path / "latin1-keys.txt"
    latin1.write_bytes("clé-du-guichet\n".encode("latin-1"))
    for settings, expected in [
        ({"QA_API_KEYS_FILE": str(tmp_path / "missing-keys.txt")}, "API keys file can't be read"),
        # configured but empty never opens the API
        ({"QA_API_KEYS_FILE": str(commented)}, "holds no key"),
        ({"QA_API_KEYS": '[""]'}, "blank API key"),
        ({"QA_API_KEYS_FILE": str(latin1)}, "not UTF-8"),
        ({"QA_ADMIN_TOKEN": "letmein"}, "at least 16 characters"),
        ({"QA_FEEDBACK_DB": str(newer)}, "version 99"),
        ({"QA_RATE_LIMIT": "lots"}, "QA_RATE_LIMIT"),
    ]:
        result = subprocess.run(
            [PYTHON, "-m", "qa_service", "serve", "--port", "0", "--index", str(seed_settings.index_dir)],
            cwd=REPO, capture_output=True, text=True, env=clean_env(**settings), timeout=120,
        )
        assert result.returncode != 0 and expected in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_serve_keeps_the_records_its_retention_settings_keep(seed_settings: ServiceSettings, tmp_path: Path) -> None:
    """The check ``qa serve`` makes of the records file before it starts opens it with the configured
    retention periods (opening applies them): not the defaults, which would delete a 60-day-old question
    kept for 90 days, or a 400-day-old vote kept for 1000."""
    import sqlite3
    from datetime import UTC, datetime, timedelta

    from qa_service.records import Records

    path = tmp_path / "records.sqlite3"
    Records(path, retention_days=10_000, feedback_days=10_000).close()

    def ago(days: int) -> str:
        return (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")

    with sqlite3.connect(path) as db:
        for days in (60, 100):
            db.execute("INSERT INTO queries (created_at, kind, question, question_norm, answered, took_ms,"
                       " index_version) VALUES (?, 'ask', ?, ?, 1, 1.0, 'old')", (ago(days), f"{days}", f"{days}"))
        for days in (400, 1100):
            db.execute("INSERT INTO feedback (created_at, question, doc_id, citation, vote, comment)"
                       " VALUES (?, 'q', 'd', '{}', 'up', ?)", (ago(days), f"{days}"))
    proc, base = _serve("--index", str(seed_settings.index_dir), QA_FEEDBACK_DB=str(path),
                        QA_QUERY_LOG_DAYS="90", QA_FEEDBACK_DAYS="1000")
    try:
        wait_ready(base + "/readyz", process=proc)
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT question FROM queries ORDER BY id").fetchall() == [("60",)]
            assert db.execute("SELECT comment FROM feedback ORDER BY id").fetchall() == [("400",)]
    finally:
        proc.terminate()
        assert proc.wait(30) in (0, -signal.SIGTERM)


@pytest.mark.parametrize("trusted,statuses", [("127.0.0.1", [200, 200]), ("10.9.8.7", [200, 429])])
def test_serve_believes_x_forwarded_for_only_from_the_proxies_it_is_told(
    seed_settings: ServiceSettings, trusted: str, statuses: list[int]
) -> None:
    """Behind a proxy, the rate limit counts the callers it forwards, never the proxy itself; a
    forwarded address from anybody else is ignored (or any caller could pick a fresh budget)."""
    proc, base = _serve("--index", str(seed_settings.index_dir), "--forwarded-allow-ips", trusted,
                        QA_RATE_LIMIT="1/minute")
    try:
        wait_ready(base + "/readyz", process=proc)
        got = [httpx.get(base + "/v1/documents", headers={"X-Forwarded-For": caller}, timeout=60).status_code
               for caller in ("203.0.113.1", "203.0.113.2")]
        assert got == statuses
    finally:
        proc.terminate()
        proc.wait(60)
