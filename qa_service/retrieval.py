"""Hybrid passage retrieval: dense (FAISS) and lexical (BM25) candidates, fused per query."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum

import numpy as np

from ingest.bundle import Bundle
from ingest.documents import Chunk
from ingest.embedding import VectorEncoder
from ingest.analysis import terms as tokenize


PARTITION_ABOVE = 4096
"""BM25 matches beyond which the top candidates are partitioned out rather than sorted (ties at
the cut may then fall either way; below it the order is fully stable)."""


class FusionMode(str, Enum):
    """How the dense and BM25 rankings become one.

    ``adaptive`` (default) weighs the two sides per query by how closely the
    embedding matches its best passage: a consumer's "what are the symptoms of
    ..." that a passage (and its title) matches closely leans on the embedding,
    an expert's question full of rare exact terms ("DC-SIGNR in MTCT") that no
    passage matches closely as a whole leans on BM25. ``linear`` mixes min-max normalised scores with a fixed
    weight, ``rrf`` is reciprocal rank fusion, ``dense`` ignores BM25.
    """

    ADAPTIVE = "adaptive"
    LINEAR = "linear"
    RRF = "rrf"
    DENSE = "dense"


class SubjectQuery(str, Enum):
    """What becomes of the names in a question once retrieval is narrowed to the documents about them
    (some of the corpus, not all of it: where every document is about the named medicine, nothing is).

    Within those documents the names tell nothing apart, yet they weigh most (rare
    words): "What is orlistat used for?" would find "The active substance is
    orlistat." ``drop`` leaves them out of the lexical query and compares answer
    units with the question with "it" in their place (passages are still found by
    the embedding of the whole question), ``pronoun`` also embeds that form to find
    passages, ``keep`` searches and ranks with them.
    """

    KEEP = "keep"
    DROP = "drop"
    PRONOUN = "pronoun"


@dataclass(frozen=True)
class Candidate:
    chunk: Chunk
    score: float
    """Fused score (higher is better)."""
    dense: float
    """Cosine similarity between the question and the chunk."""
    lexical: float
    """BM25 score of the chunk (0 when no question term occurs in it)."""


@dataclass(frozen=True)
class QueryFeatures:
    """What the query and its two rankings say about which side to trust."""

    dense_top: float
    """The best cosine between the question and a chunk."""
    lexical_coverage: float = 0.0
    """The best BM25 score as a share of the most the query's terms could score (0..1);
    measured as a fusion signal and found weaker than ``dense_top`` (docs/evaluation.md)."""


@dataclass(frozen=True)
class Pool:
    """Candidates of one query with both raw scores (row ids of the chunk table)."""

    ids: np.ndarray
    dense: np.ndarray
    lexical: np.ndarray
    features: QueryFeatures


def minmax(values) -> np.ndarray:  # noqa: ANN001
    """``values`` scaled to 0..1 (all 0 when they tie)."""
    array = np.asarray(values, dtype=np.float64)
    if not len(array):
        return array
    span = array.max() - array.min()
    return (array - array.min()) / span if span > 0 else np.zeros_like(array)


def _ranks(scores: np.ndarray) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks


def adaptive_alpha(features: QueryFeatures, floor: float = 0.3, ceiling: float = 1.0, pivot: float = 0.6,
                   steep: float = 10.0) -> float:
    """Dense weight for a query, from ``floor`` to ``ceiling`` as the best dense match grows
    closer than ``pivot`` (a logistic step): a question the embedding matches closely
    leans on it, one it matches loosely leans on BM25's exact terms."""
    return floor + (ceiling - floor) / (1.0 + math.exp(-steep * (features.dense_top - pivot)))


ADAPTIVE_DEFAULTS = {"floor": 0.3, "ceiling": 1.0, "pivot": 0.6, "steep": 10.0}
"""Chosen on the dev splits of the gold set, COVID-QA and MedQuAD (eval/tune_fusion.py, docs/evaluation.md)."""
FUSIONS = {
    "adaptive": [
        {"floor": f, "ceiling": c, "pivot": p, "steep": s}
        for f in (0.2, 0.3, 0.4, 0.5) for c in (0.9, 1.0) for p in (0.5, 0.55, 0.6, 0.65, 0.7) for s in (5.0, 10.0, 20.0)
    ],
}
"""Parameter grids that eval/tune_fusion.py replays on the dev splits."""


def fuse(rule: str, dense: np.ndarray, lexical: np.ndarray, features: QueryFeatures | None = None, **params: float) -> np.ndarray:
    """One fused score per pooled candidate (higher is better)."""
    if rule == FusionMode.DENSE:
        return np.asarray(dense, dtype=np.float64)
    if rule == "lexical":
        return np.asarray(lexical, dtype=np.float64)
    if rule == FusionMode.RRF:
        k = params.get("k", 60)
        has_lexical = np.asarray(lexical) > 0
        return 1.0 / (k + _ranks(np.asarray(dense))) + np.where(has_lexical, 1.0 / (k + _ranks(np.asarray(lexical))), 0.0)
    if rule == FusionMode.LINEAR:
        alpha = params.get("alpha", 0.5)
    elif rule == FusionMode.ADAPTIVE:
        if features is None:
            raise ValueError("adaptive fusion needs the query's features")
        alpha = adaptive_alpha(features, **{**ADAPTIVE_DEFAULTS, **params})
    else:
        raise ValueError(f"unknown fusion {rule!r}")
    return alpha * minmax(dense) + (1.0 - alpha) * minmax(lexical)


class HybridRetriever:
    """Dense and BM25 candidates fused into one ranking (see :class:`FusionMode`)."""

    def __init__(
        self,
        bundle: Bundle,
        embedder: VectorEncoder,
        candidates: int = 40,
        fusion: FusionMode | str = FusionMode.ADAPTIVE,
        params: dict[str, float] | None = None,
    ) -> None:
        self.bundle = bundle
        self.embedder = embedder
        self.candidates = candidates
        self.fusion = FusionMode(fusion)
        self.params = params or {}
        rows: dict[str, list[int]] = {}
        for chunk in bundle.chunks:
            rows.setdefault(chunk.doc_id, []).append(chunk.chunk_id)
        self._doc_rows = {doc: np.asarray(ids, dtype=np.int64) for doc, ids in rows.items()}
        lexical = bundle.lexical
        df = lexical.document_frequencies()
        n = lexical.num_docs
        self._idf = {t: math.log(1.0 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def _allowed(self, doc_ids: Collection[str] | None) -> np.ndarray | None:
        if doc_ids is None:
            return None
        rows = [self._doc_rows[d] for d in doc_ids if d in self._doc_rows]
        return np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)

    def dense_scores(self, query_vector: np.ndarray, allowed: np.ndarray | None, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Top chunk ids and cosine similarities, optionally restricted to the ``allowed`` rows."""
        return self.bundle.dense.search(query_vector, depth, allowed)

    def pool(
        self, query: str, query_vector: np.ndarray, doc_ids: Collection[str] | None = None, depth: int | None = None
    ) -> Pool:
        """The union of both retrievers' top ``depth`` candidates, with both raw scores."""
        depth = depth or self.candidates
        allowed = self._allowed(doc_ids)
        dense_ids, dense_sims = self.dense_scores(query_vector, allowed, depth)

        tokens = tokenize([query])[0]
        lexical = self.bundle.lexical.scores(tokens)
        if allowed is not None:
            mask = np.zeros_like(lexical, dtype=bool)
            mask[allowed] = True
            lexical = np.where(mask, lexical, 0.0)
        positive = np.flatnonzero(lexical > 0)
        if len(positive) > PARTITION_ABOVE:  # a large corpus: the top ``depth`` without sorting every match
            positive = np.sort(positive[np.argpartition(-lexical[positive], depth - 1)[:depth]])
        lexical_ids = positive[np.argsort(-lexical[positive], kind="stable")][:depth]

        ids = np.asarray(list(dict.fromkeys(dense_ids.tolist() + lexical_ids.tolist())), dtype=np.int64)
        cosine = dict(zip(dense_ids.tolist(), dense_sims.tolist()))
        missing = [int(i) for i in ids if int(i) not in cosine]
        for i, vector in zip(missing, self.bundle.vectors(missing)):
            cosine[i] = float(vector @ query_vector)
        dense = np.array([cosine[int(i)] for i in ids], dtype=np.float64)
        lexical_pool = lexical[ids].astype(np.float64) if len(ids) else np.zeros(0)

        # A term's BM25 score tends to its idf as its frequency grows (bm25s' Lucene variant).
        terms = [t for t in tokens if t in self._idf]
        ceiling = sum(self._idf[t] for t in terms)
        top = float(lexical_pool.max()) if len(lexical_pool) else 0.0
        features = QueryFeatures(float(dense.max()) if len(dense) else 0.0, min(1.0, top / ceiling) if ceiling else 0.0)
        return Pool(ids, dense, lexical_pool, features)

    def search(
        self,
        query: str,
        k: int = 10,
        doc_ids: Collection[str] | None = None,
        query_vector: np.ndarray | None = None,
    ) -> list[Candidate]:
        if query_vector is None:
            query_vector = self.embedder.embed([query])[0]
        pool = self.pool(query, query_vector, doc_ids)
        if not len(pool.ids):
            return []
        fused = fuse(self.fusion, pool.dense, pool.lexical, pool.features, **self.params)
        order = np.argsort(-fused, kind="stable")[:k]
        return [
            Candidate(self.bundle.chunks[int(pool.ids[i])], float(fused[i]), float(pool.dense[i]), float(pool.lexical[i]))
            for i in order
        ]
