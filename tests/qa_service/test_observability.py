"""What operators see: request ids, the index behind each answer, metrics, JSON logs, the query log."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from pathlib import Path

import httpx

from qa_service.api import create_app
from qa_service.settings import ServiceSettings
from tests.conftest import ADMIN_TOKEN, PYTHON, REPO, LiveServer, clean_env, read_line, wait_ready

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DECLINED = "How much metformin can a diabetic take?"
ANSWERED = "How is an overdose of baclofen handled?"


def test_every_response_names_its_request_and_the_index_that_answered(client: httpx.Client) -> None:
    ready = client.get("/readyz").json()
    answer = client.post("/v1/ask", json={"question": ANSWERED})
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-ID"])
    assert answer.headers["X-Index-Version"] == ready["index_version"]
    # the models that answered: the embedding model (and no reader: off by default; tests/qa_service/test_reader.py)
    assert ready["reader_model"] is None
    assert answer.headers["X-Model"] == ready["embed_model"]
    # the caller's own id is kept when it is a sane token, replaced when it is not
    assert client.get("/healthz", headers={"X-Request-ID": "desk-7.42"}).headers["X-Request-ID"] == "desk-7.42"
    odd = client.get("/healthz", headers={"X-Request-ID": "<script>" + "x" * 200}).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", odd)
    # errors carry them too
    missing = client.get("/v1/documents/nope")
    assert missing.status_code == 404 and missing.headers["X-Index-Version"] == ready["index_version"]
    assert "X-Request-ID" in missing.headers


def _sample(text: str, name: str, default: float | None = None, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0] if "{" not in line else line))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    if default is not None:  # a labelled counter appears once it is first counted
        return default
    raise AssertionError(f"no sample {name} {labels} in /metrics")


def test_metrics_count_requests_outcomes_cache_and_describe_the_index(seed_settings: ServiceSettings,
                                                                      tmp_path: Path) -> None:
    # A server of its own: the index gauges describe the index loaded last in this process, whatever
    # other tests served or reloaded before (the counters are read as differences).
    settings = seed_settings.model_copy(update={"feedback_db": tmp_path / "records.sqlite3"})
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.url, timeout=60) as client:
        _check_metrics(client)


def _check_metrics(client: httpx.Client) -> None:
    before = client.get("/metrics").text
    client.post("/v1/ask", json={"question": DECLINED})
    client.post("/v1/ask", json={"question": ANSWERED})
    client.post("/v1/ask", json={"question": ANSWERED})  # a repeat: from the cache
    client.post("/v1/ask", json={})  # a 422
    after = client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    ask_ok = {"route": "/v1/ask", "method": "POST", "status": "200"}
    assert _sample(text, "qa_requests_total", **ask_ok) - _sample(before, "qa_requests_total", 0, **ask_ok) == 3
    assert _sample(text, "qa_requests_total", route="/v1/ask", method="POST", status="422") >= 1
    assert _sample(text, "qa_questions_total", outcome="declined") - _sample(before, "qa_questions_total", 0, outcome="declined") == 1
    assert _sample(text, "qa_answer_cache_total", result="hit") - _sample(before, "qa_answer_cache_total", 0, result="hit") >= 1
    assert _sample(text, "qa_request_duration_seconds_count", route="/v1/ask") >= 4
    ready = client.get("/readyz").json()
    assert _sample(text, "qa_index_info", version=ready["index_version"]) == 1
    assert _sample(text, "qa_index_documents") == ready["documents"]
    assert _sample(text, "qa_index_chunks") == ready["chunks"]


def test_the_query_log_reports_what_went_unanswered_and_is_purged(seed_settings: ServiceSettings, tmp_path: Path) -> None:
    settings = seed_settings.model_copy(update={"feedback_db": tmp_path / "records.sqlite3"})
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.url, timeout=60) as http:
        http.post("/v1/ask", json={"question": DECLINED})
        http.post("/v1/ask", json={"question": "  how much METFORMIN can a diabetic take?"})
        answered = http.post("/v1/ask", json={"question": ANSWERED}).json()
        first = answered["answers"][0]
        vote = {"question": ANSWERED, "citation": first["citation"], "answer": first["text"], "vote": "down"}
        assert http.post("/v1/feedback", json=vote).status_code == 201
        report = http.get("/v1/admin/unanswered", headers=ADMIN).json()
        assert report[0]["declined"] == 2 and "metformin" in report[0]["question"].lower()
        about = http.get("/v1/coverage").json()["subjects"]
        [reason] = report[0]["reasons"]
        assert reason.startswith("the documents do not mention metformin; they are about ") and about
        assert all(name in reason for name in about)
        down = next(item for item in report if item["question"] == ANSWERED)
        assert down["thumbs_down"] == 1 and down["declined"] == 0

        purged = http.delete("/v1/admin/queries", headers=ADMIN).json()
        assert purged["deleted"] == 3
        after = http.get("/v1/admin/unanswered", headers=ADMIN).json()
        assert [item["question"] for item in after] == [ANSWERED]  # the vote is feedback: it stays
    assert b"metformin" not in (tmp_path / "records.sqlite3").read_bytes().lower()


def test_the_query_log_can_be_turned_off(seed_settings: ServiceSettings, tmp_path: Path) -> None:
    settings = seed_settings.model_copy(update={"feedback_db": tmp_path / "records.sqlite3", "query_log": False})
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.url, timeout=60) as http:
        http.post("/v1/ask", json={"question": DECLINED})
        assert http.get("/v1/admin/unanswered", headers=ADMIN).json() == []


def test_serve_logs_one_json_line_a_request_with_its_id(seed_settings: ServiceSettings) -> None:
    proc = subprocess.Popen(
        [PYTHON, "-m", "qa_service", "serve", "--port", "0", "--index", str(seed_settings.index_dir)],
        cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=clean_env(),
    )
    lines: list[str] = []
    try:
        base = re.search(r"(http://127\.0\.0\.1:\d+)/docs", read_line(proc.stderr, timeout=120)).group(1)
        threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
        wait_ready(base + "/readyz", process=proc)
        response = httpx.post(base + "/v1/ask", json={"question": ANSWERED}, headers={"X-Request-ID": "trace-123"},
                              timeout=60)
        assert response.status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(records) == len([line for line in lines if line.strip()]), lines  # every line is JSON
    access = [r for r in records if r.get("request_id") == "trace-123"]
    assert len(access) == 1
    assert access[0]["status"] == 200 and access[0]["route"] == "/v1/ask" and access[0]["level"] == "INFO"
    assert access[0]["index_version"] == response.headers["X-Index-Version"] and access[0]["duration_ms"] > 0
