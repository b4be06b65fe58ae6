"""Ingest on a Ray cluster: a real local Ray (2 CPUs), real files, the real model on its workers.

The bundle built through Ray must be the one a single-process build writes: the same
documents, chunks and answer units, the same vectors (within float tolerance) and so
the same answers.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")

from ingest.analysis import terms  # noqa: E402
from ingest.build import IndexBuilder, embed_text  # noqa: E402
from ingest.bundle import CHUNKS, DOCUMENTS, Bundle, load_bundle  # noqa: E402
from ingest.embedding import Embedder  # noqa: E402
from ingest.ray_embedding import OFFLINE_ENV, RayEncoder  # noqa: E402
from qa_service.service import build_answerer  # noqa: E402
from qa_service.settings import ServiceSettings  # noqa: E402
from tests.conftest import CORPUS, PYTHON, REPO, clean_env  # noqa: E402

SHARD = 64
"""Texts per Ray task: small, so that the corpus's few hundred texts make several shards."""
QUESTIONS = [
    "What is the maximum daily dose of Baclosan?",
    "How long does baclofen stay in your system?",
    "How should the tablets be stored?",
    "What are the side effects of sumatriptan?",
    "Can I drink alcohol while taking baclofen?",
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray of 2 CPUs for the module, its own even when RAY_ADDRESS names another cluster;
    yields its address for other processes."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": OFFLINE_ENV})
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def _write_leaflets(folder: Path) -> None:
    """Two short leaflets, one markdown and one plain text."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sumatriptan.md").write_text(
        "# Sumatriptan 50 mg tablets\n\n## What it is for\n\nSumatriptan relieves migraine attacks.\n\n"
        "## Side effects\n\n- Tingling or warmth in the face.\n- Tiredness or drowsiness.\n"
        "- Tightness in the chest, which passes quickly.\n\n## How to store\n\n"
        "Store below 30 °C in the original package.\n",
        encoding="utf-8",
    )
    (folder / "paracetamol.txt").write_text(
        "Paracetamol 500 mg\n\nAdults may take one or two tablets every four to six hours. "
        "Do not take more than eight tablets in 24 hours.\n\nAlcohol\n\n"
        "Avoid drinking alcohol while taking paracetamol.\n",
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repo's corpus and the two leaflets."""
    folder = tmp_path_factory.mktemp("ray") / "corpus"
    shutil.copytree(CORPUS, folder)
    _write_leaflets(folder)
    return folder


@pytest.fixture(scope="module")
def local_index(corpus: Path, embedder: Embedder) -> Path:
    settings = ServiceSettings(corpus_dir=corpus, index_dir=corpus.parent / "local")
    IndexBuilder(settings, embedder).build()
    return settings.index_dir


def _assert_same_bundle(built: Path, reference: Path) -> None:
    """Equal in everything that matters: documents, rows, units and (within tolerance) vectors."""
    ours, theirs = load_bundle(built), load_bundle(reference)
    for field in ("embed_model", "dimension", "settings", "documents", "skipped", "chunk_count", "unit_count"):
        assert getattr(ours.manifest, field) == getattr(theirs.manifest, field), field
    for name in (DOCUMENTS, CHUNKS):
        assert (built / name).read_bytes() == (reference / name).read_bytes(), name
    assert np.array_equal(ours.units, theirs.units)
    np.testing.assert_allclose(np.asarray(ours.unit_vectors), np.asarray(theirs.unit_vectors), atol=1e-5)
    np.testing.assert_allclose(_dense(ours), _dense(theirs), atol=1e-5)
    # BM25: the same statistics and scores (its files' bytes vary between processes)
    assert ours.lexical.document_frequencies() == theirs.lexical.document_frequencies()
    for tokens in terms(QUESTIONS):
        np.testing.assert_allclose(ours.lexical.scores(tokens), theirs.lexical.scores(tokens), atol=1e-6)


def _dense(bundle: Bundle) -> np.ndarray:
    return bundle.vectors([chunk.chunk_id for chunk in bundle.chunks])


def _answers(index: Path, embedder: Embedder) -> list[list[tuple]]:
    answerer = build_answerer(ServiceSettings(index_dir=index), embedder)
    replies = []
    for question in QUESTIONS:
        response = answerer.ask(question, top_k=3)
        replies.append(
            [(a.text, a.citation.doc_id, a.citation.start, a.citation.end) for a in response.answers]
            + [response.answered]
        )
    return replies


def test_ray_build_writes_the_bundle_a_single_process_build_writes(
    cluster: str, corpus: Path, local_index: Path, embedder: Embedder
) -> None:
    settings = ServiceSettings(corpus_dir=corpus, index_dir=corpus.parent / "ray")
    done: list[int] = []

    class Progress:
        def start(self, total: int) -> None:
            done.append(-total)

        def advance(self, n: int) -> None:
            done.append(n)

    with RayEncoder(settings.embed_model, settings.embed_batch_size, workers=2, shard_size=SHARD) as encoder:
        report = IndexBuilder(settings, encoder).build(progress=Progress())
        assert len(encoder._actors) == 2  # the embedding ran on two workers of the cluster
    assert ray.is_initialized()  # a cluster it did not start is left running

    assert (report.documents, report.embedded_documents, report.skipped) == (4, 4, [])
    total = report.chunks + report.units
    assert -done[0] == total and sum(done[1:]) == total  # every text, shard by shard
    assert max(done[1:]) <= SHARD and len(done) - 1 > 2 * 2  # several shards per worker
    _assert_same_bundle(settings.index_dir, local_index)
    answers = _answers(local_index, embedder)
    assert sum(reply[-1] for reply in answers) >= 3  # most questions are answered: a real comparison
    assert _answers(settings.index_dir, embedder) == answers
    # the texts a worker embedded are the ones the builder asks for: spot-check one chunk
    bundle = load_bundle(settings.index_dir)
    chunk = bundle.chunks[-1]
    expected = embedder.embed([embed_text(bundle.documents[chunk.doc_id], chunk)])[0]
    assert float(expected @ bundle.vectors([chunk.chunk_id])[0]) > 0.9999


def qa(*args: str, python: list[str] | None = None) -> subprocess.CompletedProcess:
    env = clean_env()
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [*(python or [PYTHON, "-m", "qa_service"]), *args],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=env,
    )


def test_qa_ingest_on_a_running_cluster_by_its_address(cluster: str, tmp_path: Path, embedder: Embedder) -> None:
    """The command as a user runs it, against a cluster another process started."""
    corpus = tmp_path / "corpus"
    _write_leaflets(corpus)
    reference = IndexBuilder(ServiceSettings(corpus_dir=corpus, index_dir=tmp_path / "local"), embedder)
    reference.build()
    index = tmp_path / "index"
    result = qa("ingest", str(corpus), "--index", str(index), "--ray", cluster, "--ray-shard-size", "32")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("index built: 2 documents")
    _assert_same_bundle(index, tmp_path / "local")
    again = qa("ingest", str(corpus), "--index", str(index), "--ray", cluster)
    assert again.returncode == 0 and again.stdout.startswith("index up to date: 2 documents"), again.stderr


def test_ray_errors_are_clear_and_leave_no_bundle(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = qa("ingest", str(CORPUS), "--index", str(tmp_path / "index"), "--ray", f"127.0.0.1:{port}")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith(f"error: cannot reach the Ray cluster at 127.0.0.1:{port}")
    assert "Traceback" not in unreachable.stderr

    # Ray as if it were not installed: importing it fails.
    without_ray = [PYTHON, "-c", "import sys; sys.modules['ray'] = None; from qa_service.cli import app; app()"]
    missing = qa("ingest", str(CORPUS), "--index", str(tmp_path / "index"), "--ray", "local", python=without_ray)
    assert missing.returncode == 1
    assert "install the ray extra: pip install -e '.[ray]'" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert not (tmp_path / "index").exists()
