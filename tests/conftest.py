"""Shared fixtures: the real model, a real index of the repo's corpus, a real HTTP server."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

# The tests set every QA_ setting they depend on themselves: a QA_ADMIN_TOKEN or
# QA_INDEX_DIR in the caller's shell must not change what they see. QA_WIDGET_SCREENSHOT and
# QA_ADMIN_SCREENSHOT are no settings of the service but the tests' own (`make screenshot`: where
# the widget's and the review page's pictures go).
TEST_VARIABLES = frozenset({"QA_WIDGET_SCREENSHOT", "QA_ADMIN_SCREENSHOT"})
for _name in [n for n in os.environ if n.startswith("QA_") and n not in TEST_VARIABLES]:
    del os.environ[_name]
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from ingest.build import IndexBuilder  # noqa: E402
from ingest.embedding import Embedder  # noqa: E402
from qa_service.answering import Answerer  # noqa: E402
from qa_service.settings import ServiceSettings  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"
GOLD = REPO / "eval" / "gold.jsonl"
ADMIN_TOKEN = "test-admin-token"
SERVER_START_TIMEOUT = 120.0
"""Seconds a server may take to load the model and index on a busy 2-core machine."""


# A second medicine's leaflet beside the seed corpus (all baclofen): answers about different medicines.
SECOND_MEDICINE = (
    "Corvalex 20 mg film-coated tablets: package leaflet\n\n"
    "What Corvalex is and what it is used for\n\n"
    "Corvalex contains the active substance corvalexin. Corvalex tablets are used to lower raised blood "
    "pressure in adults.\n\n"
    "How to store Corvalex\n\n"
    "Store Corvalex tablets below 30 degrees in the original package to protect them from moisture. "
    "Keep the tablets out of the sight and reach of children.\n\n"
    "If you take more Corvalex than you should\n\n"
    "If you take too many Corvalex tablets, contact your doctor or the nearest hospital emergency "
    "department at once. Take the pack with you.\n"
)
SEVERAL_MEDICINES = "How should I store my tablets?"
"""A question naming no medicine that both medicines' leaflets answer (the service's notice)."""


def seed_corpus_plus(root: Path, embedder: Embedder, leaflets: dict[str, str] | None = None,
                     **settings: object) -> ServiceSettings:
    """Settings of an index built under ``root`` from a copy of the repo's corpus with ``leaflets``
    (file name: text) added; ``settings`` beside the admin token."""
    corpus = root / "corpus"
    shutil.copytree(CORPUS, corpus)
    for name, text in (leaflets or {}).items():
        (corpus / name).write_text(text, encoding="utf-8")
    built = ServiceSettings(corpus_dir=corpus, index_dir=root / "index", admin_token=ADMIN_TOKEN, **settings)
    IndexBuilder(built, embedder).build()
    return built

def clean_env(**settings: str) -> dict[str, str]:
    """The environment for a process the tests start: no QA_ variable but ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **settings})
    return env


@pytest.fixture(autouse=True)
def _no_inherited_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without QA_ variables (a test that sets one gets it undone)."""
    for name in [n for n in os.environ if n.startswith("QA_") and n not in TEST_VARIABLES]:
        monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    model = Embedder(ServiceSettings().embed_model)
    model.warm_up()
    return model


@pytest.fixture(scope="session")
def seed_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> ServiceSettings:
    """Settings pointing at an index built from the repo's corpus."""
    index = tmp_path_factory.mktemp("seed") / "index"
    # Many tests send wrong keys and tokens from one address to the shared server: the failure and admin
    # budgets are raised here, and tests/qa_service/test_access.py checks the defaults on servers of its own.
    settings = ServiceSettings(corpus_dir=CORPUS, index_dir=index, admin_token=ADMIN_TOKEN,
                               auth_failure_limit="10000/minute", admin_rate_limit="10000/minute")
    IndexBuilder(settings, embedder).build()
    return settings


@pytest.fixture(scope="session")
def answerer(seed_settings: ServiceSettings, embedder: Embedder) -> Answerer:
    from qa_service.service import build_answerer

    return build_answerer(seed_settings, embedder)


def bind_loopback(port: int = 0, timeout: float = 30.0) -> socket.socket:
    """A listening-ready socket on 127.0.0.1: any free port (0), or ``port`` once it is free again."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wait_ready(url: str, timeout: float = SERVER_START_TIMEOUT, process=None) -> httpx.Response:  # noqa: ANN001
    """Poll ``url`` until it answers 200 (or fail with what it last said)."""
    deadline = time.monotonic() + timeout
    last: httpx.Response | Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            last = httpx.get(url, timeout=5)
            if last.status_code == 200:
                return last
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s (last: {last!r})")


class LiveServer:
    """The real app behind a real uvicorn server on a loopback port, in a thread.

    The server is handed a socket the test bound itself, so the port is known
    before it starts and is never raced for; ``port`` re-binds a port an earlier
    server used (waiting until the system has let it go).
    """

    def __init__(self, app, ready_path: str = "/readyz", port: int = 0) -> None:  # noqa: ANN001
        self.ready_path = ready_path
        self.socket = bind_loopback(port)
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_ready(self.url + self.ready_path)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(60)
        self.socket.close()
        if self.thread.is_alive():
            raise RuntimeError("the server did not stop within 60 s")


@pytest.fixture(scope="session")
def server(seed_settings: ServiceSettings) -> Iterator[LiveServer]:
    from qa_service.api import create_app

    with LiveServer(create_app(seed_settings)) as live:
        yield live


@pytest.fixture()
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


def read_line(stream, timeout: float) -> str:  # noqa: ANN001
    """One line from a child process's pipe, or an error after ``timeout`` seconds."""
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not result:
        raise TimeoutError(f"no line from the process within {timeout:.0f} s")
    return result[0]


PYTHON = sys.executable
