"""Hardening: a corrupt bundle, oversized bodies, text that is not Unicode, many doc_ids, the bundle's
file modes, control characters in the text log. Real processes, real HTTP, real files."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ingest.build import IndexBuilder
from ingest.bundle import ENCODER
from qa_service.api import create_app
from qa_service.settings import ServiceSettings
from tests.conftest import ADMIN_TOKEN, CORPUS, PYTHON, REPO, LiveServer, clean_env, read_line, wait_ready

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
QUESTION = "How is an overdose of baclofen handled?"
UMASK = 0o027
"""The umask `qa ingest` runs with below: the bundle's folders must be 0750 and its files 0640."""


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _garble(path: Path) -> None:
    path.write_bytes(b"\x00not what it should be{" * 64)


CORRUPTIONS = {"model.onnx": _truncate, "tokenizer.json": _garble}
"""Files of the bundle's encoder/ and how each is damaged."""


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two bundles as `qa ingest` writes them by default (ONNX, with encoder/): the seed corpus, built by
    a real `qa ingest` under umask 027, and the seed corpus with one more note (another version)."""
    root = tmp_path_factory.mktemp("faults")
    corpus = root / "corpus"
    shutil.copytree(CORPUS, corpus)
    first = root / "first"
    built = subprocess.run(
        ["sh", "-c", f'umask {UMASK:03o} && exec "$0" -m qa_service ingest "$1" --index "$2"', PYTHON,
         str(corpus), str(first)],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=clean_env(),
    )
    assert built.returncode == 0, built.stderr
    assert (first / ENCODER / "model.onnx").is_file()
    (corpus / "tizanidine-note.txt").write_text(
        "Tizanidine note\n\nTizanidine is a muscle relaxant. The usual starting dose is 2 mg.\n", encoding="utf-8"
    )
    second = root / "second"
    IndexBuilder(ServiceSettings(corpus_dir=corpus, index_dir=second)).build()
    return first, second


def _place(bundle: Path, index: Path, damaged: str | None = None) -> None:
    """``bundle`` copied to ``index`` (replacing what is there), one file of its encoder damaged."""
    shutil.rmtree(index, ignore_errors=True)
    shutil.copytree(bundle, index)
    if damaged is not None:
        CORRUPTIONS[damaged](index / ENCODER / damaged)


def test_a_corrupt_encoder_is_refused_on_reload_and_the_old_index_serves_on(
    bundles: tuple[Path, Path], tmp_path: Path
) -> None:
    first, second = bundles
    index = tmp_path / "index"
    _place(first, index)
    with LiveServer(create_app(ServiceSettings(index_dir=index, admin_token=ADMIN_TOKEN))) as live, httpx.Client(
        base_url=live.url, timeout=120
    ) as http:
        version = http.get("/readyz").json()["index_version"]
        for name in CORRUPTIONS:
            _place(second, index, damaged=name)
            refused = http.post("/v1/admin/reload", headers=ADMIN)
            assert refused.status_code == 409, (name, refused.text)
            error = refused.json()["error"]
            assert error["code"] == "reload_refused" and "previous one is still served" in error["message"]
            assert "encoder" in error["message"] and "re-ingest" in error["message"], error
            answer = http.post("/v1/ask", json={"question": QUESTION})
            assert answer.status_code == 200 and answer.json()["answered"]
            assert answer.headers["X-Index-Version"] == version
        _place(second, index)  # the same bundle undamaged is taken
        assert http.post("/v1/admin/reload", headers=ADMIN).json()["changed"]


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_a_service_started_on_a_corrupt_encoder_says_the_index_failed_to_load(
    bundles: tuple[Path, Path], tmp_path: Path, name: str
) -> None:
    index = tmp_path / "index"
    _place(bundles[0], index, damaged=name)
    app = create_app(ServiceSettings(index_dir=index))
    with LiveServer(app, ready_path="/healthz") as live:
        app.state.service.wait(120)  # the loader thread has given up
        response = httpx.get(live.url + "/readyz", timeout=30)
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "not_ready" and "still loading" not in error["message"]
        assert error["message"].startswith("the index failed to load: ") and "encoder" in error["message"], error
        assert "re-ingest" in error["message"]
        assert httpx.post(live.url + "/v1/ask", json={"question": QUESTION}, timeout=30).json()["error"] == error


def _urlopen_status(url: str, data: bytes | Iterator[bytes], headers: dict[str, str]) -> tuple[int, dict]:
    """Python's own HTTP client, which sends the whole body before it reads the response."""
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_every_client_reads_the_413_of_an_oversized_body(server: LiveServer) -> None:
    eight_mb = b'{"question": "' + b"x" * (8 << 20) + b'"}'
    json_type = {"Content-Type": "application/json"}
    for _ in range(3):  # a reset is a race the server used to win every time; ask more than once
        status, body = _urlopen_status(server.url + "/v1/ask", eight_mb, json_type)
        assert status == 413 and body["error"]["code"] == "body_too_large", body

    def chunked() -> Iterator[bytes]:  # no length: refused once past the limit, while being read
        for _ in range(128):
            yield b"x" * 65536

    status, body = _urlopen_status(server.url + "/v1/feedback", chunked(), {**json_type, "Transfer-Encoding": "chunked"})
    assert status == 413 and body["error"]["code"] == "body_too_large", body
    status, body = _urlopen_status(server.url + "/v1/ask", json.dumps({"question": QUESTION}).encode(), json_type)
    assert status == 200 and body["answered"]


def test_the_413_is_sent_before_the_body_is_read(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/ask HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 8388608\r\n\r\n")  # and not one byte of the body
        head = sock.recv(65536).decode("latin-1")
    assert head.startswith("HTTP/1.1 413 "), head
    assert "connection: close" in head.lower()


CITATION = '{"doc_id": "baclosan-tablets-leaflet", "title": "t", "source": "s", "section": null, "start": 0, "end": 1}'


@pytest.mark.parametrize(
    "path,body,field",
    [  # JSON escapes of lone surrogates: valid JSON, but no character
        ("/v1/ask", r'{"question": "dose?", "doc_ids": ["\ud800"]}', "doc_ids.0"),
        ("/v1/ask", r'{"question": "dose?", "doc_ids": ["baclosan-tablets-leaflet", "x\udc00"]}', "doc_ids.1"),
        ("/v1/ask", r'{"question": "what dose\ud800?"}', "question"),
        ("/v1/feedback", r'{"question": "dose?", "vote": "up", "citation": ' + CITATION.replace("baclosan", r"\udfff") + "}",
         "citation.doc_id"),
        ("/v1/feedback", r'{"question": "dose?", "vote": "up", "comment": "\ud800", "citation": ' + CITATION + "}",
         "comment"),
    ],
)
def test_a_lone_surrogate_is_a_422_naming_the_field(client: httpx.Client, path: str, body: str, field: str) -> None:
    response = client.post(path, content=body.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_unicode" and f"'{field}'" in error["message"], error


def test_search_parameters_that_are_not_utf8_are_no_500(client: httpx.Client) -> None:
    # A query string is decoded as UTF-8 (what isn't becomes U+FFFD): a surrogate can't get in.
    assert client.get("/v1/search?q=dose%ED%A0%80").status_code == 200
    unknown = client.get("/v1/search?q=dose&doc_id=%ED%A0%80")
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_doc_id"


def test_doc_ids_are_taken_once_each_and_at_most_a_thousand(client: httpx.Client) -> None:
    leaflet, other = "baclosan-tablets-leaflet", "baclofen-how-long-in-system"
    question = "What is the maximum daily dose?"
    once = client.post("/v1/ask", json={"question": question, "doc_ids": [leaflet]}).json()
    repeated = client.post("/v1/ask", json={"question": question, "doc_ids": [leaflet] * 1000})
    assert repeated.status_code == 200 and repeated.json()["answers"] == once["answers"]
    searched = client.get("/v1/search", params=[("q", "maximum daily dose"), *[("doc_id", leaflet)] * 1000])
    assert searched.status_code == 200
    assert {r["citation"]["doc_id"] for r in searched.json()["results"]} == {leaflet}
    # each id is looked at once: an unknown one repeated is named once
    unknown = client.post("/v1/ask", json={"question": question, "doc_ids": ["nope", leaflet, "nope", "nope"]})
    assert unknown.status_code == 422 and unknown.json()["error"]["message"] == "unknown doc_id: nope"

    too_many = client.post("/v1/ask", json={"question": question, "doc_ids": [leaflet, other] * 1000})
    assert too_many.status_code == 422, too_many.text
    assert too_many.json()["error"]["code"] == "too_many_doc_ids" and "1000" in too_many.json()["error"]["message"]
    too_many = client.get("/v1/search", params=[("q", "dose"), *[("doc_id", leaflet)] * 1001])
    assert too_many.status_code == 422 and too_many.json()["error"]["code"] == "too_many_doc_ids", too_many.text


def test_the_bundle_gets_the_modes_of_the_umask_it_was_written_under(bundles: tuple[Path, Path]) -> None:
    # `qa ingest` ran under umask 027: folders 0750, files 0640, the encoder's (copied from a private
    # cache folder) as much as the rest; a service running as another user of the group can read it all.
    index = bundles[0]
    folders = [index, *(p for p in index.rglob("*") if p.is_dir())]
    files = [p for p in index.rglob("*") if p.is_file()]
    assert index / ENCODER in folders and index / ENCODER / "model.onnx" in files
    assert {str(p.relative_to(index)): oct(p.stat().st_mode & 0o7777) for p in folders if p.stat().st_mode & 0o7777 != 0o750} == {}
    assert {str(p.relative_to(index)): oct(p.stat().st_mode & 0o7777) for p in files if p.stat().st_mode & 0o7777 != 0o640} == {}


def test_a_line_break_in_a_request_path_cannot_forge_a_text_log_line(seed_settings: ServiceSettings) -> None:
    forged = "2026-01-01 00:00:00,000 INFO qa_service.access: GET /v1/forged 200 1.0 ms"
    proc = subprocess.Popen(
        [PYTHON, "-m", "qa_service", "serve", "--port", "0", "--index", str(seed_settings.index_dir)],
        cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=clean_env(QA_LOG_FORMAT="text"),
    )
    lines: list[str] = []
    try:
        base = re.search(r"(http://127\.0\.0\.1:\d+)/docs", read_line(proc.stderr, timeout=120)).group(1)
        threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
        wait_ready(base + "/readyz", process=proc)
        path = "/v1/marker-7f3a%0A" + urllib.parse.quote(forged) + "%0D%0A%1B[2J"
        assert httpx.get(base + path, timeout=30).status_code == 404
        assert httpx.get(base + "/healthz", timeout=30).status_code == 200  # a line after it: the log is flushed
    finally:
        proc.terminate()
        proc.wait(30)
    assert not [line for line in lines if line.startswith("2026-01-01")], lines
    logged = [line for line in lines if "marker-7f3a" in line]
    assert len(logged) == 1, lines
    assert "qa_service.access: GET /v1/marker-7f3a\\n" + forged + "\\r\\n\\x1b[2J 404 " in logged[0], logged
    assert not any("\x1b" in line for line in lines)  # the escape sequence is written out, not the byte
