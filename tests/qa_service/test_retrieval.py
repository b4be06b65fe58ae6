from __future__ import annotations

import pytest

from qa_service.answering import Answerer
import numpy as np

from qa_service.retrieval import FusionMode, HybridRetriever, QueryFeatures, adaptive_alpha, fuse


def test_reciprocal_rank_fusion_rewards_agreement() -> None:
    dense, lexical = np.array([0.9, 0.8, 0.7, 0.1]), np.array([5.0, 0.0, 9.0, 2.0])
    fused = fuse(FusionMode.RRF, dense, lexical, k=60)
    assert fused[0] == pytest.approx(1 / 61 + 1 / 62)  # first dense, second BM25
    assert fused[1] == pytest.approx(1 / 62)  # no BM25 match: the dense rank alone
    assert list(np.argsort(-fused))[:2] == [0, 2]


def test_linear_fusion_normalises_each_side() -> None:
    fused = fuse(FusionMode.LINEAR, np.array([0.9, 0.5, 0.1]), np.array([0.0, 10.0, 20.0]), alpha=0.5)
    assert fused == pytest.approx([0.5, 0.5, 0.5])
    dense_only = fuse(FusionMode.LINEAR, np.array([0.9, 0.5]), np.array([3.0, 3.0]), alpha=0.5)
    assert dense_only[0] > dense_only[1]


def test_adaptive_fusion_leans_on_the_embedding_when_it_matches_closely() -> None:
    close, loose = QueryFeatures(dense_top=0.85), QueryFeatures(dense_top=0.35)
    assert adaptive_alpha(close) > 0.9 and adaptive_alpha(loose) < 0.4
    dense, lexical = np.array([0.85, 0.80]), np.array([1.0, 8.0])
    assert np.argmax(fuse(FusionMode.ADAPTIVE, dense, lexical, close)) == 0  # the embedding's pick
    dense = np.array([0.35, 0.30])
    assert np.argmax(fuse(FusionMode.ADAPTIVE, dense, lexical, loose)) == 1  # BM25's pick


def test_unknown_fusion_is_refused(answerer: Answerer) -> None:
    with pytest.raises(ValueError, match="'max' is not a valid FusionMode"):
        HybridRetriever(answerer.bundle, answerer.embedder, fusion="max")


def test_a_rare_exact_term_is_found_by_the_lexical_side(answerer: Answerer) -> None:
    results = answerer.retriever.search("lithium", k=3)
    assert "lithium" in answerer.bundle.chunk_text(results[0].chunk).lower()
    assert results[0].lexical > 0


def test_a_paraphrase_is_found_by_the_dense_side(answerer: Answerer) -> None:
    results = answerer.retriever.search("what happens when someone takes far too many tablets", k=5)
    assert any("overdos" in answerer.bundle.chunk_text(r.chunk).lower() for r in results)


@pytest.mark.parametrize("fusion", ["adaptive", "linear", "rrf", "dense"])
def test_doc_filter_restricts_both_sides(answerer: Answerer, fusion: str) -> None:
    retriever = HybridRetriever(answerer.bundle, answerer.embedder, fusion=fusion)
    results = retriever.search("half-life of baclofen", k=10, doc_ids=["baclosan-tablets-leaflet"])
    assert results and {r.chunk.doc_id for r in results} == {"baclosan-tablets-leaflet"}
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
