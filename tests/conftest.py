"""Shared fixtures: the real model, a real index of the repo's corpus, a real HTTP server."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from ingest.build import IndexBuilder  # noqa: E402
from ingest.bundle import load_bundle  # noqa: E402
from ingest.embedding import Embedder  # noqa: E402
from qa_service.answering import Answerer  # noqa: E402
from qa_service.settings import ServiceSettings  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"
GOLD = REPO / "eval" / "gold.jsonl"
ADMIN_TOKEN = "test-admin-token"


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    model = Embedder(ServiceSettings().embed_model)
    model.warm_up()
    return model


@pytest.fixture(scope="session")
def seed_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> ServiceSettings:
    """Settings pointing at an index built from the repo's corpus."""
    index = tmp_path_factory.mktemp("seed") / "index"
    settings = ServiceSettings(corpus_dir=CORPUS, index_dir=index, admin_token=ADMIN_TOKEN)
    IndexBuilder(settings, embedder).build()
    return settings


@pytest.fixture(scope="session")
def answerer(seed_settings: ServiceSettings, embedder: Embedder) -> Answerer:
    return Answerer(load_bundle(seed_settings.index_dir), embedder, seed_settings)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """The real app behind a real uvicorn server on a loopback port, in a thread."""

    def __init__(self, app, ready_path: str = "/readyz", port: int | None = None) -> None:  # noqa: ANN001
        self.ready_path = ready_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become ready")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def server(seed_settings: ServiceSettings):
    from qa_service.api import create_app

    with LiveServer(create_app(seed_settings)) as live:
        yield live


@pytest.fixture()
def client(server: LiveServer):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http
