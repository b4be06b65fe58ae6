"""The question-answering pipeline: retrieve, extract spans, rank, decide to answer."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass

from ingest.bundle import Bundle
from ingest.documents import Document
from ingest.embedding import Embedder

from .aliases import find_aliases
from .abstention import UnknownSubjectDetector, confidence_label
from .confidence import ConfidenceModel
from .expansion import QueryExpander
from .extraction import PassageUnits, Span, SpanExtractor, TermWeights
from .retrieval import Candidate, HybridRetriever, minmax
from .schemas import Answer, AskResponse, Citation, Passage, SearchResponse, SearchResult
from .settings import ServiceSettings


class UnknownDocumentError(ValueError):
    def __init__(self, doc_ids: list[str]) -> None:
        super().__init__(f"unknown doc_id: {', '.join(doc_ids)}")
        self.doc_ids = doc_ids


@dataclass(frozen=True)
class ScoredSpan:
    """An answer candidate: a span of a retrieved passage, its features and confidence."""

    candidate: Candidate
    span: Span
    features: dict[str, float]
    confidence: float


@dataclass(frozen=True)
class Reading:
    """What the pipeline found for a question, before the decision to answer."""

    unknown_subjects: list[str]
    spans: list[ScoredSpan]
    """Best first (by the extractor's span score)."""


def _duplicate(a: ScoredSpan, b: ScoredSpan, text: str, other_text: str) -> bool:
    """The same words (found twice) or overlapping ranges of one document."""
    if " ".join(text.split()).casefold() == " ".join(other_text.split()).casefold():
        return True
    if a.candidate.chunk.doc_id != b.candidate.chunk.doc_id:
        return False
    return a.span.start < b.span.end and b.span.start < a.span.end


class Answerer:
    """Answers questions from one loaded bundle."""

    def __init__(self, bundle: Bundle, embedder: Embedder, settings: ServiceSettings) -> None:
        self.bundle = bundle
        self.embedder = embedder
        self.settings = settings
        self.retriever = HybridRetriever(
            bundle,
            embedder,
            settings.retrieval_candidates,
            settings.fusion,
            settings.fusion_alpha,
            settings.rrf_k,
        )
        lexical = bundle.lexical
        # Lay words from the synonym file; brand <-> generic names from the documents.
        self.expander = QueryExpander.from_file(
            settings.synonyms_file, names=find_aliases(document.text for document in bundle.documents.values())
        )
        self.unknown_subjects = UnknownSubjectDetector(
            lexical.vocabulary, embedder, settings.unknown_drug_similarity
        )
        self.extractor = SpanExtractor(TermWeights(lexical.document_frequencies(), lexical.num_docs))
        self.confidence = ConfidenceModel.load(settings.confidence_model)

    def _check_doc_ids(self, doc_ids: Collection[str] | None) -> None:
        if doc_ids is None:
            return
        unknown = [d for d in doc_ids if d not in self.bundle.documents]
        if unknown:
            raise UnknownDocumentError(unknown)

    def _citation(self, document: Document, start: int, end: int) -> Citation:
        section = document.section_at(start)
        return Citation(
            doc_id=document.doc_id,
            title=document.title,
            source=document.source,
            section=section.title if section else None,
            start=start,
            end=end,
        )

    def search(self, query: str, k: int = 10, doc_ids: Collection[str] | None = None) -> SearchResponse:
        began = time.perf_counter()
        self._check_doc_ids(doc_ids)
        results = []
        expansion = self.expander.expand(query)
        query_vector = self.embedder.embed([expansion.query])[0]
        for candidate in self.retriever.search(expansion.lexical_query, k, doc_ids, query_vector=query_vector):
            chunk = candidate.chunk
            document = self.bundle.documents[chunk.doc_id]
            results.append(
                SearchResult(
                    text=document.text[chunk.start:chunk.end],
                    score=round(candidate.score, 6),
                    citation=self._citation(document, chunk.start, chunk.end),
                )
            )
        return SearchResponse(query=query, results=results, took_ms=(time.perf_counter() - began) * 1000)

    def read(self, question: str, doc_ids: Collection[str] | None = None) -> Reading:
        """Retrieve, extract and score answer spans for a question (no decision yet)."""
        expansion = self.expander.expand(question)
        unknown = self.unknown_subjects.find(question, expansion.known_words)
        if unknown:
            return Reading(unknown, [])
        absent = self.unknown_subjects.absent_share(question, expansion.known_words)
        query = expansion.query
        query_vector = self.embedder.embed([query])[0]
        candidates = self.retriever.search(
            expansion.lexical_query, self.settings.reader_passages, doc_ids, query_vector=query_vector
        )
        documents = self.bundle.documents
        passages = [
            PassageUnits.from_bundle(
                self.bundle, c.chunk.doc_id, c.chunk.start, c.chunk.end,
                self.extractor.reach(documents[c.chunk.doc_id], c.chunk.end),
            )
            for c in candidates
        ]
        spans = self.extractor.extract(query, query_vector, passages, priors=[c.dense for c in candidates])
        scored = []
        for candidate, span in zip(candidates, spans):
            if span is None:
                continue
            features = {"cosine": span.cosine, "coverage": span.coverage, "prior": span.prior, "absent": absent}
            scored.append(ScoredSpan(candidate, span, features, self.confidence(features)))
        # Ranked by the extractor's score plus a little of the passage's retrieval score
        # (normalised over the passages read); the confidence decides whether to answer.
        boost = self.settings.passage_rank_weight * minmax([s.candidate.score for s in scored])
        order = sorted(range(len(scored)), key=lambda i: -(scored[i].span.score + boost[i]))
        return Reading([], [scored[i] for i in order])

    def ask(self, question: str, top_k: int = 3, doc_ids: Collection[str] | None = None) -> AskResponse:
        began = time.perf_counter()
        self._check_doc_ids(doc_ids)

        def declined(reason: str) -> AskResponse:
            return AskResponse(
                question=question,
                answered=False,
                reason=reason,
                answers=[],
                took_ms=(time.perf_counter() - began) * 1000,
            )

        reading = self.read(question, doc_ids)
        if reading.unknown_subjects:
            return declined(f"the documents do not mention {', '.join(reading.unknown_subjects)}")
        found = reading.spans
        documents = self.bundle.documents

        def text_of(item: ScoredSpan) -> str:
            return documents[item.candidate.chunk.doc_id].text[item.span.start:item.span.end]

        threshold = self.settings.min_confidence
        kept: list[ScoredSpan] = []
        for item in found:
            if item.confidence < threshold:
                continue
            if any(_duplicate(item, other, text_of(item), text_of(other)) for other in kept):
                continue
            kept.append(item)
        if not kept:
            best = max((item.confidence for item in found), default=0.0)
            return declined(
                f"no passage answers the question with enough confidence (best {best:.2f}, "
                f"needed {threshold:.2f})"
            )
        # Every source heard: each document's best answer first, then the rest by confidence.
        seen: set[str] = set()
        leaders, others = [], []
        for item in kept:
            doc_id = item.candidate.chunk.doc_id
            (others if doc_id in seen else leaders).append(item)
            seen.add(doc_id)
        answers = []
        for item in (leaders + others)[:top_k]:
            chunk = item.candidate.chunk
            document = documents[chunk.doc_id]
            # A list the answer takes may run past the chunk: the passage holds it all.
            p_start, p_end = min(chunk.start, item.span.start), max(chunk.end, item.span.end)
            answers.append(
                Answer(
                    text=document.text[item.span.start:item.span.end],
                    score=round(item.confidence, 4),
                    confidence=confidence_label(item.confidence, threshold),
                    citation=self._citation(document, item.span.start, item.span.end),
                    passage=Passage(text=document.text[p_start:p_end], start=p_start, end=p_end),
                )
            )
        return AskResponse(
            question=question,
            answered=True,
            answers=answers,
            took_ms=(time.perf_counter() - began) * 1000,
        )
