"""Hybrid passage retrieval: dense (FAISS) and lexical (BM25) candidates, fused."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import faiss
import numpy as np

from ingest.bundle import Bundle
from ingest.documents import Chunk
from ingest.embedding import Embedder
from ingest.lexical import tokenize


@dataclass(frozen=True)
class Candidate:
    chunk: Chunk
    score: float
    """Fused score (higher is better)."""
    dense: float
    """Cosine similarity between the question and the chunk."""
    lexical: float
    """BM25 score of the chunk (0 when no question term occurs in it)."""


def reciprocal_rank_fusion(rankings: list[list[int]], k: int = 60) -> dict[int, float]:
    """Cormack et al. (2009): score(d) = Σ 1 / (k + rank_i(d)), ranks from 1."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused


def minmax(values: list[float]) -> np.ndarray:
    """``values`` scaled to 0..1 (all 0 when they tie)."""
    array = np.asarray(values, dtype=np.float64)
    span = array.max() - array.min() if len(array) else 0.0
    return (array - array.min()) / span if span > 0 else np.zeros_like(array)


def linear_fusion(ids: list[int], dense: list[float], lexical: list[float], alpha: float = 0.5) -> dict[int, float]:
    """alpha * minmax(dense) + (1 - alpha) * minmax(lexical) over the candidate pool."""
    fused = alpha * minmax(dense) + (1.0 - alpha) * minmax(lexical)
    return dict(zip(ids, fused.tolist()))


class HybridRetriever:
    """Dense and BM25 candidates fused into one ranking.

    ``fusion="linear"`` (default) mixes min-max normalised cosine and BM25 scores
    with weight ``alpha`` on the dense side; ``fusion="rrf"`` uses reciprocal rank
    fusion. docs/evaluation.md compares them on the gold set and COVID-QA.
    """

    def __init__(
        self,
        bundle: Bundle,
        embedder: Embedder,
        candidates: int = 40,
        fusion: str = "linear",
        alpha: float = 0.5,
        rrf_k: int = 60,
    ) -> None:
        if fusion not in ("linear", "rrf"):
            raise ValueError(f"unknown fusion {fusion!r}: use 'linear' or 'rrf'")
        self.bundle = bundle
        self.embedder = embedder
        self.candidates = candidates
        self.fusion = fusion
        self.alpha = alpha
        self.rrf_k = rrf_k
        rows: dict[str, list[int]] = {}
        for chunk in bundle.chunks:
            rows.setdefault(chunk.doc_id, []).append(chunk.chunk_id)
        self._doc_rows = {doc: np.asarray(ids, dtype=np.int64) for doc, ids in rows.items()}

    def _allowed(self, doc_ids: Collection[str] | None) -> np.ndarray | None:
        if doc_ids is None:
            return None
        rows = [self._doc_rows[d] for d in doc_ids if d in self._doc_rows]
        return np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)

    def dense_scores(self, query_vector: np.ndarray, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Top chunk ids and cosine similarities from FAISS, optionally restricted to ``allowed``."""
        k = min(self.candidates, self.bundle.dense.ntotal if allowed is None else len(allowed))
        if k == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
        scores, ids = self.bundle.dense.search(query_vector.reshape(1, -1), k, params=params)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def _cosines(
        self, ids: list[int], dense_ids: np.ndarray, dense_sims: np.ndarray, query_vector: np.ndarray
    ) -> dict[int, float]:
        """Cosine of each chunk in ``ids``: from FAISS, or from the stored vector for lexical-only hits."""
        cosine = dict(zip(dense_ids.tolist(), dense_sims.tolist()))
        missing = [i for i in ids if i not in cosine]
        for i, vector in zip(missing, self.bundle.vectors(missing)):
            cosine[i] = float(vector @ query_vector)
        return cosine

    def search(
        self,
        query: str,
        k: int = 10,
        doc_ids: Collection[str] | None = None,
        query_vector: np.ndarray | None = None,
    ) -> list[Candidate]:
        allowed = self._allowed(doc_ids)
        if query_vector is None:
            query_vector = self.embedder.embed([query])[0]
        dense_ids, dense_sims = self.dense_scores(query_vector, allowed)

        lexical = self.bundle.lexical.scores(tokenize([query])[0])
        if allowed is not None:
            mask = np.zeros_like(lexical, dtype=bool)
            mask[allowed] = True
            lexical = np.where(mask, lexical, 0.0)
        positive = np.flatnonzero(lexical > 0)
        lexical_ids = positive[np.argsort(-lexical[positive], kind="stable")][: self.candidates]

        pool = list(dict.fromkeys(dense_ids.tolist() + lexical_ids.tolist()))
        cosine = self._cosines(pool, dense_ids, dense_sims, query_vector)
        if self.fusion == "rrf":
            fused = reciprocal_rank_fusion([dense_ids.tolist(), lexical_ids.tolist()], self.rrf_k)
        else:
            fused = linear_fusion(pool, [cosine[i] for i in pool], [float(lexical[i]) for i in pool], self.alpha)
        ranked = sorted(fused, key=lambda i: -fused[i])[:k]
        return [
            Candidate(self.bundle.chunks[i], fused[i], float(cosine[i]), float(lexical[i]))
            for i in ranked
        ]
