"""Hybrid passage retrieval: dense (FAISS) and lexical (BM25) candidates, fused per query."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from ingest.bundle import Bundle
from ingest.documents import Chunk
from ingest.embedding import VectorEncoder
from ingest.analysis import stems as stem_tokens
from ingest.analysis import terms as tokenize


PHRASE_GAP = 2
"""Words a phrase of the expansion may have inserted in a passage ("more than you should" in
"If you take more Xenical than you should")."""
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


class SubjectNarrowing(str, Enum):
    """What the subjects a question names do to retrieval.

    ``filter`` reads only the documents about them. ``declared`` (default) does
    so only where the documents declare their subjects (a sidecar's
    ``subjects``, leaflet-template headings, active-substance statements);
    where a subject was guessed from a title, its documents' passages gain a
    bonus (``subject_boost``) but every document can still answer: many
    answer passages of a real corpus never name the medicine, and a title
    guess can miss or mislabel a page.
    """

    FILTER = "filter"
    DECLARED = "declared"


@dataclass(frozen=True)
class Candidate:
    chunk: Chunk
    score: float
    """Fused score (higher is better)."""
    dense: float
    """Cosine similarity between the question and the chunk."""
    lexical: float
    """BM25 score of the chunk (0 when no question term occurs in it)."""
    phrase: float = 0.0
    """Share of the expansion's phrases the chunk holds (0 without an expansion bonus)."""
    boosted: bool = False
    """The chunk gained the subject boost."""


@dataclass(frozen=True)
class Ranking:
    """A fused ranking and how it was made (what ``explain`` reports)."""

    candidates: list[Candidate]
    considered: int
    """Chunks scored (both retrievers' candidates, pooled)."""
    fusion: str
    dense_weight: float | None
    """The dense side's weight in linear or adaptive fusion (the lexical side's is 1 minus it)."""
    features: QueryFeatures | None = None


@dataclass(frozen=True)
class QueryFeatures:
    """What the query and its two rankings say about which side to trust."""

    dense_top: float
    """The best cosine between the question and a chunk."""
    lexical_coverage: float = 0.0
    """The best BM25 score as a share of the most the query's terms could score (0..1);
    measured as a fusion signal and found weaker than ``dense_top`` (docs/evaluation.md)."""
    dense_gap: float = 0.0
    """How far the best cosine is ahead of the best chunk of another document."""


@dataclass(frozen=True)
class Pool:
    """Candidates of one query with both raw scores (row ids of the chunk table)."""

    ids: np.ndarray
    dense: np.ndarray
    lexical: np.ndarray
    features: QueryFeatures


def holds_phrase(tokens: tuple[str, ...], phrase: tuple[str, ...], gap: int = PHRASE_GAP) -> bool:
    """``phrase``'s stems in order in ``tokens``, with at most ``gap`` other words inserted."""
    if not phrase:
        return False
    for i, token in enumerate(tokens):
        if token != phrase[0]:
            continue
        at, skipped = i + 1, 0
        for part in phrase[1:]:
            while at < len(tokens) and tokens[at] != part and skipped <= gap:
                at += 1
                skipped += 1
            if at >= len(tokens) or skipped > gap:
                break
            at += 1
        else:
            return True
    return False


def minmax(values) -> np.ndarray:  # noqa: ANN001
    """``values`` scaled to 0..1 (all 0 when they tie)."""
    array = np.asarray(values, dtype=np.float64)
    if not len(array):
        return array
    span = array.max() - array.min()
    return (array - array.min()) / span if span > 0 else np.zeros_like(array)


def dense_weight(rule: str, features: QueryFeatures | None, **params: float) -> float | None:
    """The dense weight :func:`fuse` gives a query under ``rule`` (None for rules without one)."""
    if rule == FusionMode.LINEAR:
        return params.get("alpha", 0.5)
    if (rule == FusionMode.ADAPTIVE or rule == "adaptive-confident") and features is not None:
        return adaptive_alpha(features, **{**ADAPTIVE_DEFAULTS, **params})
    if rule == FusionMode.DENSE:
        return 1.0
    return None


def _ranks(scores: np.ndarray) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks


def adaptive_alpha(features: QueryFeatures, floor: float = 0.3, ceiling: float = 1.0, pivot: float = 0.6,
                   steep: float = 10.0, gap_pivot: float = 0.0, gap_steep: float = 0.0) -> float:
    """Dense weight for a query, from ``floor`` to ``ceiling`` as the best dense match grows
    closer than ``pivot`` (a logistic step): a question the embedding matches closely
    leans on it, one it matches loosely leans on BM25's exact terms.

    With ``gap_steep`` > 0 the weight also rises towards ``ceiling`` as the best dense match
    stands clear of the rest (``dense_gap`` past ``gap_pivot``, a second logistic step): an
    embedding that is confident and clearly ahead is not overridden by a better word match."""
    alpha = floor + (ceiling - floor) / (1.0 + math.exp(-steep * (features.dense_top - pivot)))
    if gap_steep > 0:
        alpha += (ceiling - alpha) / (1.0 + math.exp(-gap_steep * (features.dense_gap - gap_pivot)))
    return alpha


ADAPTIVE_DEFAULTS = {"floor": 0.3, "ceiling": 1.0, "pivot": 0.6, "steep": 10.0}
"""Chosen on the dev splits of the gold set, COVID-QA and MedQuAD (eval/tune_fusion.py, docs/evaluation.md)."""
CONFIDENT_DEFAULTS = {"gap_pivot": 0.05, "gap_steep": 100.0}
"""The confidence step of adaptive fusion (``RetrievalSettings.fusion_confidence``; tuned with
eval/tune_fusion.py and eval/bench_variants.py on the dev splits)."""
FUSIONS = {
    "adaptive": [
        {"floor": f, "ceiling": c, "pivot": p, "steep": s}
        for f in (0.2, 0.3, 0.4, 0.5) for c in (0.9, 1.0) for p in (0.5, 0.55, 0.6, 0.65, 0.7) for s in (5.0, 10.0, 20.0)
    ],
    "adaptive-confident": [
        {**ADAPTIVE_DEFAULTS, "gap_pivot": g, "gap_steep": s}
        for g in (0.0, 0.02, 0.03, 0.05, 0.08, 0.12) for s in (25.0, 50.0, 100.0, 200.0)
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
    elif rule == FusionMode.ADAPTIVE or rule == "adaptive-confident":
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
        # Each chunk's place in passage-id order (document id, then offsets): equal scores keep it.
        by_id = sorted(range(len(bundle.chunks)), key=lambda i: (bundle.chunks[i].doc_id, bundle.chunks[i].start,
                                                                 bundle.chunks[i].end))
        self._passage_order = np.empty(len(bundle.chunks), dtype=np.int64)
        self._passage_order[by_id] = np.arange(len(by_id))
        lexical = bundle.lexical
        df = lexical.document_frequencies()
        n = lexical.num_docs
        self._idf = {t: math.log(1.0 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        self._stems: dict[int, tuple[str, ...]] = {}

    def _chunk_stems(self, chunk_id: int) -> tuple[str, ...]:
        """A chunk's words stemmed, stop words kept, after its section title (kept for the next query)."""
        found = self._stems.get(chunk_id)
        if found is None:
            chunk = self.bundle.chunks[chunk_id]
            found = stem_tokens(f"{chunk.section or ''} . {self.bundle.chunk_text(chunk)}")
            if len(self._stems) > 200_000:
                self._stems.clear()
            self._stems[chunk_id] = found
        return found

    def phrase_share(self, ids: np.ndarray, phrases: list[str]) -> np.ndarray:
        """For each chunk, the share of ``phrases`` it (or its section title) holds (:func:`holds_phrase`)."""
        wanted = [p for p in (stem_tokens(x) for x in phrases) if p]
        if not wanted:
            return np.zeros(len(ids))
        return np.array([sum(holds_phrase(self._chunk_stems(int(i)), p) for p in wanted) / len(wanted) for i in ids])

    def _allowed(self, doc_ids: Collection[str] | None, rows: np.ndarray | None = None) -> np.ndarray | None:
        """The chunk rows a query may score: those of ``doc_ids`` (None: all), within ``rows`` when given."""
        if doc_ids is None:
            return rows
        found = [self._doc_rows[d] for d in doc_ids if d in self._doc_rows]
        allowed = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
        return allowed if rows is None else np.intersect1d(allowed, rows)

    def dense_scores(self, query_vector: np.ndarray, allowed: np.ndarray | None, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Top chunk ids and cosine similarities, optionally restricted to the ``allowed`` rows."""
        return self.bundle.dense.search(query_vector, depth, allowed)

    def _lexical_top(self, lexical: np.ndarray, depth: int) -> np.ndarray:
        positive = np.flatnonzero(lexical > 0)
        if len(positive) > PARTITION_ABOVE:  # a large corpus: the top ``depth`` without sorting every match
            positive = np.sort(positive[np.argpartition(-lexical[positive], depth - 1)[:depth]])
        return positive[np.argsort(-lexical[positive], kind="stable")][:depth]

    def _gap(self, ids: np.ndarray, dense: np.ndarray) -> float:
        """How far the best cosine is ahead of the best chunk of another document (0 when every
        candidate is of one document: there the embedding's lead tells sections apart, not sources)."""
        if len(ids) < 2:
            return 0.0
        order = np.argsort(-dense, kind="stable")
        best = self.bundle.chunks[int(ids[order[0]])].doc_id
        for i in order[1:]:
            if self.bundle.chunks[int(ids[i])].doc_id != best:
                return float(dense[order[0]] - dense[i])
        return 0.0

    def pool(
        self, query: str, query_vector: np.ndarray, doc_ids: Collection[str] | None = None, depth: int | None = None,
        boost_docs: Collection[str] | None = None, rows: np.ndarray | None = None,
    ) -> Pool:
        """The union of both retrievers' top ``depth`` candidates, with both raw scores (and, with
        ``boost_docs``, of both retrievers' top ``depth`` among those documents' chunks). Only chunks
        of ``doc_ids`` and ``rows`` (when given) are scored at all."""
        depth = depth or self.candidates
        allowed = self._allowed(doc_ids, rows)
        if allowed is not None and not len(allowed):
            return Pool(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), QueryFeatures(0.0))
        dense_ids, dense_sims = self.dense_scores(query_vector, allowed, depth)

        tokens = tokenize([query])[0]
        lexical = self.bundle.lexical.scores(tokens)
        if allowed is not None:
            mask = np.zeros_like(lexical, dtype=bool)
            mask[allowed] = True
            lexical = np.where(mask, lexical, 0.0)
        lexical_ids = self._lexical_top(lexical, depth)
        listed = dense_ids.tolist() + lexical_ids.tolist()
        cosine = dict(zip(dense_ids.tolist(), dense_sims.tolist()))
        favoured = self._allowed(boost_docs) if boost_docs else None
        if favoured is not None and len(favoured):
            if allowed is not None:
                favoured = np.intersect1d(favoured, allowed)
            if len(favoured):
                near_ids, near_sims = self.dense_scores(query_vector, favoured, depth)
                cosine.update(zip(near_ids.tolist(), near_sims.tolist()))
                inside = np.zeros_like(lexical)
                inside[favoured] = lexical[favoured]
                listed += near_ids.tolist() + self._lexical_top(inside, depth).tolist()

        ids = np.asarray(list(dict.fromkeys(listed)), dtype=np.int64)
        missing = [int(i) for i in ids if int(i) not in cosine]
        for i, vector in zip(missing, self.bundle.vectors(missing)):
            cosine[i] = float(vector @ query_vector)
        dense = np.array([cosine[int(i)] for i in ids], dtype=np.float64)
        lexical_pool = lexical[ids].astype(np.float64) if len(ids) else np.zeros(0)

        # A term's BM25 score tends to its idf as its frequency grows (bm25s' Lucene variant).
        terms = [t for t in tokens if t in self._idf]
        ceiling = sum(self._idf[t] for t in terms)
        top = float(lexical_pool.max()) if len(lexical_pool) else 0.0
        features = QueryFeatures(float(dense.max()) if len(dense) else 0.0, min(1.0, top / ceiling) if ceiling else 0.0,
                                 self._gap(ids, dense))
        return Pool(ids, dense, lexical_pool, features)

    def search(
        self,
        query: str,
        k: int = 10,
        doc_ids: Collection[str] | None = None,
        query_vector: np.ndarray | None = None,
        boost_docs: Collection[str] | None = None,
        boost: float = 0.0,
        expansion: Sequence[str] = (),
        expansion_weight: float = 0.0,
        rows: np.ndarray | None = None,
    ) -> list[Candidate]:
        """The top ``k`` fused candidates (:meth:`rank`'s)."""
        return self.rank(query, k, doc_ids, query_vector, boost_docs, boost, expansion, expansion_weight,
                         rows).candidates

    def rank(
        self,
        query: str,
        k: int = 10,
        doc_ids: Collection[str] | None = None,
        query_vector: np.ndarray | None = None,
        boost_docs: Collection[str] | None = None,
        boost: float = 0.0,
        expansion: Sequence[str] = (),
        expansion_weight: float = 0.0,
        rows: np.ndarray | None = None,
        depth: int | None = None,
    ) -> Ranking:
        """The top ``k`` fused candidates, from ``doc_ids`` and ``rows`` only when given (nothing else
        is scored); chunks of ``boost_docs`` gain ``boost`` (a share of the fused scores' range) over
        the rest; ``expansion`` (the clinical terms the question's lay words stand for) adds the share
        of them a chunk holds as phrases (stop words and all, a name between allowed: "more than you
        should"), at ``expansion_weight``: evidence from words the question only implies, kept out of
        the embedding. Each retriever gives its top ``depth`` (default ``candidates``) to the pool;
        equal scores are ordered by passage id."""
        if query_vector is None:
            query_vector = self.embedder.embed([query])[0]
        pool = self.pool(query, query_vector, doc_ids, depth, boost_docs=boost_docs if boost else None, rows=rows)
        weight = dense_weight(self.fusion, pool.features, **self.params)
        if not len(pool.ids):
            return Ranking([], 0, self.fusion.value, weight, pool.features)
        fused = fuse(self.fusion, pool.dense, pool.lexical, pool.features, **self.params)
        phrase = np.zeros(len(pool.ids))
        if expansion and expansion_weight:
            phrase = self.phrase_share(pool.ids, list(expansion))
            fused = minmax(fused) + expansion_weight * phrase
        favoured = np.zeros(len(pool.ids), dtype=bool)
        if boost and boost_docs:
            mask = np.zeros(len(self.bundle.chunks), dtype=bool)
            mask[self._allowed(boost_docs)] = True
            favoured = mask[pool.ids]
            fused = minmax(fused) + boost * favoured
        order = np.lexsort((self._passage_order[pool.ids], -fused))[:k]
        candidates = [
            Candidate(self.bundle.chunks[int(pool.ids[i])], float(fused[i]), float(pool.dense[i]),
                      float(pool.lexical[i]), float(phrase[i]), bool(favoured[i]))
            for i in order
        ]
        return Ranking(candidates, len(pool.ids), self.fusion.value, weight, pool.features)
