from __future__ import annotations

import pytest

from qa_service.answering import Answerer
from qa_service.retrieval import HybridRetriever, linear_fusion, reciprocal_rank_fusion


def test_reciprocal_rank_fusion_rewards_agreement() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]], k=60)
    assert sorted(fused, key=lambda i: -fused[i])[:2] == [1, 3]
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[4] == pytest.approx(1 / 63)


def test_linear_fusion_normalises_each_side() -> None:
    fused = linear_fusion([7, 8, 9], dense=[0.9, 0.5, 0.1], lexical=[0.0, 10.0, 20.0], alpha=0.5)
    assert fused == pytest.approx({7: 0.5, 8: 0.5, 9: 0.5})
    dense_only = linear_fusion([7, 8], dense=[0.9, 0.5], lexical=[3.0, 3.0], alpha=0.5)
    assert dense_only[7] > dense_only[8]


def test_unknown_fusion_is_refused(answerer: Answerer) -> None:
    with pytest.raises(ValueError, match="fusion"):
        HybridRetriever(answerer.bundle, answerer.embedder, fusion="max")


def test_a_rare_exact_term_is_found_by_the_lexical_side(answerer: Answerer) -> None:
    results = answerer.retriever.search("lithium", k=3)
    assert "lithium" in answerer.bundle.chunk_text(results[0].chunk).lower()
    assert results[0].lexical > 0


def test_a_paraphrase_is_found_by_the_dense_side(answerer: Answerer) -> None:
    results = answerer.retriever.search("what happens when someone takes far too many tablets", k=5)
    assert any("overdos" in answerer.bundle.chunk_text(r.chunk).lower() for r in results)


@pytest.mark.parametrize("fusion", ["linear", "rrf"])
def test_doc_filter_restricts_both_sides(answerer: Answerer, fusion: str) -> None:
    retriever = HybridRetriever(answerer.bundle, answerer.embedder, fusion=fusion)
    results = retriever.search("half-life of baclofen", k=10, doc_ids=["baclosan-tablets-leaflet"])
    assert results and {r.chunk.doc_id for r in results} == {"baclosan-tablets-leaflet"}
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
