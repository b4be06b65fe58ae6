"""Swapping in a rebuilt index while the server answers: POST /v1/admin/reload, SIGHUP, every worker."""

from __future__ import annotations

import re
import shutil
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from ingest.build import IndexBuilder
from ingest.bundle import MANIFEST
from ingest.embedding import Embedder
from qa_service.api import create_app
from qa_service.settings import ServiceSettings
from tests.conftest import ADMIN_TOKEN, CORPUS, LiveServer, wait_ready
from tests.qa_service.test_cli import _serve

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EXTRA = "tizanidine-note.txt"
EXTRA_TEXT = (
    "Tizanidine note\n\nTizanidine is a muscle relaxant. The usual starting dose of tizanidine is 2 mg, "
    "taken up to three times a day.\n"
)


@pytest.fixture()
def own_index(tmp_path: Path, embedder: Embedder) -> ServiceSettings:
    """An index of a copy of the corpus that the test may rebuild in place, as `qa ingest` does."""
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    settings = ServiceSettings(corpus_dir=corpus, index_dir=tmp_path / "index", admin_token=ADMIN_TOKEN)
    IndexBuilder(settings, embedder).build()
    return settings


def rebuild(settings: ServiceSettings, embedder: Embedder, extra: bool) -> None:
    path = Path(settings.corpus_dir) / EXTRA
    if extra:
        path.write_text(EXTRA_TEXT, encoding="utf-8")
    else:
        path.unlink(missing_ok=True)
    IndexBuilder(settings, embedder).build()


def test_a_reload_swaps_the_index_without_failing_one_request(own_index: ServiceSettings, embedder: Embedder) -> None:
    statuses: Counter[int] = Counter()
    versions: Counter[str] = Counter()
    errors: list[str] = []
    stop = threading.Event()
    questions = ["How is an overdose of baclofen handled?", "How long does baclofen stay in the system?",
                 "What are the side effects?", "Can I drink alcohol with it?"]

    def client(offset: int) -> None:
        with httpx.Client(timeout=60) as http:
            i = offset
            while not stop.is_set():
                try:
                    if i % 2:
                        response = http.post(live.url + "/v1/ask", json={"question": questions[i % 4]})
                    else:
                        response = http.get(live.url + "/v1/search", params={"q": questions[i % 4]})
                    statuses[response.status_code] += 1
                    versions[response.headers.get("X-Index-Version", "none")] += 1
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                i += 1

    with LiveServer(create_app(own_index)) as live:
        before = httpx.get(live.url + "/readyz").json()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1)
            rebuild(own_index, embedder, extra=True)
            swapped = httpx.post(live.url + "/v1/admin/reload", headers=ADMIN, timeout=120)
            assert swapped.status_code == 200, swapped.text
            body = swapped.json()
            assert body["changed"] and body["previous_version"] == before["index_version"]
            assert body["documents"] == before["documents"] + 1
            time.sleep(1)
            rebuild(own_index, embedder, extra=False)
            back = httpx.post(live.url + "/v1/admin/reload", headers=ADMIN, timeout=120).json()
            assert back["changed"] and back["index_version"] == before["index_version"]  # same corpus, same version
            time.sleep(1)
        finally:
            stop.set()
            for thread in threads:
                thread.join(120)
        again = httpx.post(live.url + "/v1/admin/reload", headers=ADMIN, timeout=120).json()
        assert not again["changed"] and again["index_version"] == before["index_version"]

    assert errors == [] and set(statuses) == {200}, (statuses, errors[:3])
    # answers came from both indexes, each response naming the one it came from
    assert set(versions) == {before["index_version"], body["index_version"]}, versions
    assert sum(statuses.values()) > 20


def test_a_bundle_that_cannot_load_is_refused_and_the_old_one_serves_on(own_index: ServiceSettings) -> None:
    manifest = Path(own_index.index_dir) / MANIFEST
    with LiveServer(create_app(own_index)) as live, httpx.Client(base_url=live.url, timeout=120) as http:
        version = http.get("/readyz").json()["index_version"]
        manifest.write_text(manifest.read_text(encoding="utf-8").replace('"format_version": ', '"format_version": 9'),
                            encoding="utf-8")
        refusals = _refusals(http.get("/metrics").text)
        refused = http.post("/v1/admin/reload", headers=ADMIN)
        assert refused.status_code == 409
        error = refused.json()["error"]
        assert error["code"] == "reload_refused" and "previous one is still served" in error["message"]
        assert "format" in error["message"] and "qa ingest" in error["message"]
        answer = http.post("/v1/ask", json={"question": "How is an overdose of baclofen handled?"})
        assert answer.status_code == 200 and answer.json()["answered"]
        assert answer.headers["X-Index-Version"] == version
        assert _refusals(http.get("/metrics").text) == refusals + 1


def _refusals(metrics: str) -> float:
    found = re.search(r'^qa_index_reloads_total\{result="refused"\} (\S+)$', metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _worker_versions(base: str) -> dict[str, str]:
    """pid -> index version of every live worker, from the metrics all workers write."""
    found = {}
    for line in httpx.get(base + "/metrics", timeout=30).text.splitlines():
        if line.startswith("qa_index_info{") and line.endswith(" 1.0"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            found[labels["pid"]] = labels["version"]
    return found


def _until(predicate, base: str, timeout: float = 120) -> dict[str, str]:  # noqa: ANN001
    """The workers' versions once ``predicate`` holds for them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        versions = _worker_versions(base)
        if len(versions) == 2 and predicate(versions):
            return versions
        time.sleep(0.3)
    raise AssertionError(f"the workers did not get there in time: {versions}")


def test_sighup_and_the_reload_endpoint_reach_every_worker(own_index: ServiceSettings, embedder: Embedder) -> None:
    proc, base = _serve("--index", str(own_index.index_dir), "--workers", "2", QA_ADMIN_TOKEN=ADMIN_TOKEN)
    try:
        wait_ready(base + "/readyz", process=proc)
        first = _until(lambda versions: True, base)
        old = set(first.values())
        assert len(old) == 1

        rebuild(own_index, embedder, extra=True)
        proc.send_signal(signal.SIGHUP)  # to the supervisor: every worker reloads in place
        after_hup = _until(lambda versions: not old & set(versions.values()), base)
        assert after_hup.keys() == first.keys()  # the same processes, not restarted ones
        new = set(after_hup.values())

        rebuild(own_index, embedder, extra=False)
        reloaded = httpx.post(base + "/v1/admin/reload", headers=ADMIN, timeout=120)
        assert reloaded.status_code == 200 and reloaded.json()["changed"]
        back = _until(lambda versions: set(versions.values()) == old, base)
        assert back.keys() == first.keys() and new != old
    finally:
        proc.terminate()
        assert proc.wait(30) in (0, -signal.SIGTERM)


def test_sighup_reloads_a_single_process_server(own_index: ServiceSettings, embedder: Embedder) -> None:
    proc, base = _serve("--index", str(own_index.index_dir))
    try:
        old = wait_ready(base + "/readyz", process=proc).json()["index_version"]
        rebuild(own_index, embedder, extra=True)
        proc.send_signal(signal.SIGHUP)  # no supervisor: the server itself reloads, and keeps running
        deadline = time.monotonic() + 120
        while (new := httpx.get(base + "/readyz", timeout=30).json()["index_version"]) == old:
            assert proc.poll() is None, "SIGHUP ended the server"
            assert time.monotonic() < deadline, "SIGHUP did not reload the index"
            time.sleep(0.2)
        assert httpx.get(base + "/readyz", timeout=30).json()["documents"] == 3  # the extra document is served
        assert proc.poll() is None
    finally:
        proc.terminate()
        assert proc.wait(30) in (0, -signal.SIGTERM)
