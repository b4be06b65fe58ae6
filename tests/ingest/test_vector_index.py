"""The vector index: its kind follows the size, its parameters are recorded and applied,
and every kind answers as exact search does where it should."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ingest.bundle import load_bundle
from ingest.vector_index import IndexKind, IndexPolicy, IndexSpec, VectorIndex, build_index, choose_spec, write_index

REPO = Path(__file__).resolve().parents[2]


def clustered(count: int, dimension: int = 64, seed: int = 0) -> np.ndarray:
    """Unit vectors around 50 centres, as embeddings of passages on a few topics are."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dimension))
    vectors = centres[rng.integers(0, 50, count)] + 0.6 * rng.standard_normal((count, dimension))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def exact_top(vectors: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return np.argsort(-(vectors @ query), kind="stable")[:k].tolist()


def test_the_kind_follows_the_size() -> None:
    policy = IndexPolicy(approximate_above=1000)
    assert choose_spec(1000, policy).kind is IndexKind.FLAT
    spec = choose_spec(1001, policy)
    assert spec.kind is IndexKind.IVF
    assert spec.nlist & (spec.nlist - 1) == 0 and spec.nprobe <= spec.nlist and spec.k_factor > 0
    assert choose_spec(1_000_000).nlist > choose_spec(300_000).nlist
    assert choose_spec(10, IndexPolicy(kind=IndexKind.HNSW)).kind is IndexKind.HNSW


@pytest.mark.parametrize("kind", [IndexKind.FLAT, IndexKind.IVF, IndexKind.HNSW])
def test_each_kind_finds_what_exact_search_finds(tmp_path: Path, kind: IndexKind) -> None:
    vectors = clustered(6000)
    spec = choose_spec(len(vectors), IndexPolicy(kind=kind))
    write_index(build_index(vectors, spec), tmp_path / "v.faiss")
    index = VectorIndex.read(tmp_path / "v.faiss", spec)

    assert index.ntotal == len(vectors)
    np.testing.assert_array_equal(index.vectors, vectors)  # the float vectors are kept, memory-mapped
    queries = clustered(50, seed=1)
    recall = []
    for query in queries:
        ids, scores = index.search(query, 10)
        np.testing.assert_allclose(scores, vectors[ids] @ query, rtol=1e-4, atol=1e-5)  # exact scores
        assert list(scores) == sorted(scores, reverse=True)
        recall.append(len(set(ids.tolist()) & set(exact_top(vectors, query, 10))) / 10)
    assert np.mean(recall) >= (1.0 if kind is IndexKind.FLAT else 0.9)


@pytest.mark.parametrize("kind", [IndexKind.FLAT, IndexKind.IVF])
def test_a_search_within_rows_keeps_to_them(tmp_path: Path, kind: IndexKind) -> None:
    vectors = clustered(3000)
    spec = choose_spec(len(vectors), IndexPolicy(kind=kind))
    index = VectorIndex(build_index(vectors, spec), spec, exact_rows=100)
    query = clustered(1, seed=2)[0]
    few = np.arange(500, 560)  # answered exactly from the stored vectors
    ids, _ = index.search(query, 10, few)
    assert ids.tolist() == [500 + i for i in exact_top(vectors[few], query, 10)]
    many = np.arange(0, 3000, 2)  # through the index, with an id selector
    ids, _ = index.search(query, 10, many)
    assert len(ids) == 10 and all(i % 2 == 0 for i in ids)
    assert index.search(query, 10, np.zeros(0, dtype=np.int64))[0].size == 0


def test_an_approximate_bundle_records_its_index_and_answers_as_the_exact_one(tmp_path: Path) -> None:
    """Built with IVF (forced) over the seed corpus, where every cell is searched: the same answers."""
    answers = {}
    for kind in ("flat", "ivf"):
        index = tmp_path / f"index-{kind}"
        env = {**os.environ, "QA_VECTOR_INDEX__KIND": kind, "QA_VECTOR_INDEX__NPROBE": "4096", "HF_HUB_OFFLINE": "1"}
        subprocess.run([sys.executable, "-m", "qa_service", "ingest", str(REPO / "corpus"), "--index", str(index)],
                       check=True, env=env, capture_output=True, cwd=REPO)
        manifest = json.loads((index / "manifest.json").read_text())
        assert manifest["dense_index"]["kind"] == manifest["unit_index"]["kind"] == kind
        bundle = load_bundle(index)
        assert bundle.dense.spec == IndexSpec.model_validate(manifest["dense_index"])
        out = subprocess.run(
            [sys.executable, "-m", "qa_service", "ask", "how is an overdose handled?", "--index", str(index), "--json"],
            check=True, env=env, capture_output=True, text=True, cwd=REPO,
        )
        answers[kind] = [(a["text"], a["citation"]["start"]) for a in json.loads(out.stdout)["answers"]]
    assert answers["flat"] and answers["ivf"] == answers["flat"]
