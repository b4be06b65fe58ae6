"""Prometheus metrics (prometheus-client), served at ``/metrics``.

With several worker processes (``qa serve --workers N``) each process writes its
samples to the folder named by ``PROMETHEUS_MULTIPROC_DIR`` (``qa serve`` makes
one) and ``/metrics``, whichever process answers, adds them up: the counts are
the server's, not one worker's.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter("qa_requests_total", "HTTP requests answered, by route, method and status.",
                   ["route", "method", "status"])
LATENCY = Histogram(
    "qa_request_duration_seconds", "Time to answer an HTTP request, by route.", ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
QUESTIONS = Counter("qa_questions_total", "Questions asked (/v1/ask), by outcome: answered or declined.", ["outcome"])
CACHE = Counter("qa_answer_cache_total", "Asks and searches by answer-cache result: hit or miss.", ["result"])
RELOADS = Counter("qa_index_reloads_total", "Index reloads, by result: changed, unchanged or refused.", ["result"])
INDEX_INFO = Gauge("qa_index_info", "The served index (value 1): its version and model.", ["version", "model"],
                   multiprocess_mode="liveall")
DOCUMENTS = Gauge("qa_index_documents", "Documents in the served index.", multiprocess_mode="livemax")
CHUNKS = Gauge("qa_index_chunks", "Chunks in the served index.", multiprocess_mode="livemax")


_shown: dict[str, str] = {}


def show_index(version: str, model: str, documents: int, chunks: int) -> None:
    """Point the index gauges at the bundle now served (the one before drops to 0: with several
    workers a sample once written stays in its file, so it is zeroed rather than removed)."""
    if _shown:
        INDEX_INFO.labels(**_shown).set(0)
    _shown.update(version=version, model=model)
    INDEX_INFO.labels(**_shown).set(1)
    DOCUMENTS.set(documents)
    CHUNKS.set(chunks)


def render() -> tuple[bytes, str]:
    """The exposition text of every metric (all worker processes' when there are several)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
