"""The ``qa`` command as a user runs it: a real process, real files, real output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from qa_service.settings import ServiceSettings
from tests.conftest import CORPUS, REPO, free_port


def qa(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qa_service", *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
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


def test_ingest_of_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    result = qa("ingest", str(tmp_path / "nope"), "--index", str(tmp_path / "index"))
    assert result.returncode == 1
    assert result.stderr.startswith("error: corpus folder") and "Traceback" not in result.stderr


def test_ask_human_readable_and_json(seed_settings: ServiceSettings) -> None:
    index = str(seed_settings.index_dir)
    human = qa("ask", "What is the maximum daily dose for adults?", "--index", index)
    assert human.returncode == 0, human.stderr
    assert human.stdout.startswith('1. "') and "Source: " in human.stdout

    raw = qa("ask", "What is the maximum daily dose for adults?", "--top-k", "2", "--json", "--index", index)
    body = json.loads(raw.stdout)
    assert body["answered"] and 1 <= len(body["answers"]) <= 2

    declined = qa("ask", "What is the maximum dose of ibuprofen?", "--index", index)
    assert declined.returncode == 0
    assert declined.stdout.startswith("No answer in the documents:") and "ibuprofen" in declined.stdout


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


def test_serve_logs_where_to_go_first_and_answers_over_http(seed_settings: ServiceSettings) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa_service", "serve", "--index", str(seed_settings.index_dir), "--port", str(port)],
        cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    try:
        first = proc.stderr.readline()
        assert f"http://127.0.0.1:{port}/docs" in first
        deadline = time.monotonic() + 120
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert ready is not None and ready.status_code == 200
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/ask",
            json={"question": "How long does baclofen stay in the body?"}, timeout=30,
        ).json()
        assert answer["answered"]
    finally:
        proc.terminate()
        proc.wait(20)


def test_eval_prints_the_metrics_table(seed_settings: ServiceSettings, tmp_path: Path) -> None:
    gold = tmp_path / "gold.jsonl"
    gold.write_text(
        "\n".join(
            json.dumps(q)
            for q in [
                {"id": "a", "question": "How long does baclofen stay in the body?", "answerable": True,
                 "evidence": ["2.5-4 h", "roughly 2 hours", "decline by half every two Hours"], "docs": ["baclofen-how-long-in-system"], "split": "tune"},
                {"id": "u", "question": "What is the maximum dose of ibuprofen?", "answerable": False, "split": "heldout"},
            ]
        ),
        encoding="utf-8",
    )
    result = qa("eval", str(gold), "--index", str(seed_settings.index_dir), "--json")
    assert result.returncode == 0, result.stderr
    table = json.loads(result.stdout)
    assert set(table) == {"tune", "heldout", "all"}
    assert table["heldout"]["unanswerable_declined"] == 1.0
    human = qa("eval", str(gold), "--index", str(seed_settings.index_dir))
    for metric in ("answer_hit@1", "answer_hit@3", "passage_hit@3", "answer_mrr", "unanswerable_declined", "answerable_declined"):
        assert metric in human.stdout
