"""The question-answering pipeline: retrieve, extract spans, rank, decide to answer."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass

from ingest.bundle import Bundle
from ingest.documents import Document
from ingest.embedding import Embedder

from .abstention import UnknownSubjectDetector, calibrate, confidence_label
from .expansion import QueryExpander
from .extraction import Span, SpanExtractor, TermWeights
from .retrieval import Candidate, HybridRetriever
from .schemas import Answer, AskResponse, Citation, Passage, SearchResponse, SearchResult
from .settings import ServiceSettings

# Logistic calibration of the extractor's span score, fitted on the tune part of
# the gold set (see docs/evaluation.md): 0.5 confidence at CALIBRATION_MIDPOINT.
CALIBRATION_MIDPOINT = 0.45
CALIBRATION_SLOPE = 12.0


class UnknownDocumentError(ValueError):
    def __init__(self, doc_ids: list[str]) -> None:
        super().__init__(f"unknown doc_id: {', '.join(doc_ids)}")
        self.doc_ids = doc_ids


@dataclass(frozen=True)
class _Found:
    candidate: Candidate
    span: Span
    confidence: float


def _overlaps(a: _Found, b: _Found) -> bool:
    if a.candidate.chunk.doc_id != b.candidate.chunk.doc_id:
        return False
    return a.span.start < b.span.end and b.span.start < a.span.end


class Answerer:
    """Answers questions from one loaded bundle."""

    def __init__(self, bundle: Bundle, embedder: Embedder, settings: ServiceSettings) -> None:
        self.bundle = bundle
        self.embedder = embedder
        self.settings = settings
        self.retriever = HybridRetriever(bundle, embedder, settings.retrieval_candidates, settings.rrf_k)
        lexical = bundle.lexical
        self.expander = QueryExpander.from_file(settings.synonyms_file)
        self.unknown_subjects = UnknownSubjectDetector(
            lexical.vocabulary, embedder, settings.unknown_drug_similarity
        )
        self.extractor = SpanExtractor(embedder, TermWeights(lexical.document_frequencies(), lexical.num_docs))

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
        expanded = " ".join([query, *self.expander.expand(query).terms])
        for candidate in self.retriever.search(expanded, k, doc_ids):
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

        expansion = self.expander.expand(question)
        unknown = self.unknown_subjects.find(question, expansion.known_words)
        if unknown:
            return declined(f"the documents do not mention {', '.join(unknown)}")

        query = " ".join([question, *expansion.terms])
        query_vector = self.embedder.embed([query])[0]
        candidates = self.retriever.search(
            query, self.settings.reader_passages, doc_ids, query_vector=query_vector
        )
        documents = self.bundle.documents
        spans = self.extractor.extract(
            query,
            query_vector,
            [(documents[c.chunk.doc_id], c.chunk.start, c.chunk.end) for c in candidates],
            priors=[c.dense for c in candidates],
        )
        found = sorted(
            (
                _Found(c, s, calibrate(s.score, CALIBRATION_MIDPOINT, CALIBRATION_SLOPE))
                for c, s in zip(candidates, spans)
                if s is not None
            ),
            key=lambda f: -f.confidence,
        )
        threshold = self.settings.min_confidence
        kept: list[_Found] = []
        for item in found:
            if item.confidence < threshold:
                break
            if any(_overlaps(item, other) for other in kept):
                continue
            kept.append(item)
        if not kept:
            best = found[0].confidence if found else 0.0
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
            answers.append(
                Answer(
                    text=document.text[item.span.start:item.span.end],
                    score=round(item.confidence, 4),
                    confidence=confidence_label(item.confidence, threshold),
                    citation=self._citation(document, item.span.start, item.span.end),
                    passage=Passage(text=document.text[chunk.start:chunk.end], start=chunk.start, end=chunk.end),
                )
            )
        return AskResponse(
            question=question,
            answered=True,
            answers=answers,
            took_ms=(time.perf_counter() - began) * 1000,
        )
