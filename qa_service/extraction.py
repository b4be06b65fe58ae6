"""Answer-span extraction: the best one to three sentences or list items of a passage.

A passage is cut into units (sentences inside each line; every list item is a
unit). Units are scored against the question; the best one is grown into a
contiguous span with neighbours that score nearly as well, and a lead-in that
ends in ":" takes the list it introduces. Headings are never an answer alone.
Offsets always index into the document's canonical text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ingest.documents import Document
from ingest.lexical import tokenize
from ingest.units import Unit, split_units, unit_from_row


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    score: float
    """The within-passage ranking score of the span's best unit."""
    cosine: float
    """Cosine between the question and the best unit."""
    coverage: float
    """Idf-weighted share of the question's terms found in the best unit."""
    prior: float
    """Cosine between the question and the whole passage."""


@dataclass(frozen=True)
class PassageUnits:
    """A passage to read: its document, its range, and the answer units around it
    (a little past its end, for a list the chunk boundary cut off) with their vectors."""

    document: Document
    start: int
    end: int
    units: list[Unit]
    vectors: np.ndarray

    @classmethod
    def from_bundle(cls, bundle, doc_id: str, start: int, end: int, reach: int) -> PassageUnits:  # noqa: ANN001
        """The passage's units as ingest stored them: no segmenting or embedding per question."""
        units = bundle.units
        first, _ = bundle.unit_range(doc_id)
        lo, hi = bundle.unit_range(doc_id, start, max(end, reach))
        if lo > first and units["end"][lo - 1] > start:
            lo -= 1  # the sentence the passage starts inside of
        rows = units[lo:hi]
        return cls(bundle.documents[doc_id], start, end, [unit_from_row(r) for r in rows],
                   np.asarray(bundle.unit_vectors[lo:hi], dtype=np.float32))

    @classmethod
    def from_document(cls, document: Document, start: int, end: int, reach: int, embedder) -> PassageUnits:  # noqa: ANN001
        """Units cut and embedded on the spot (a document that is not in a bundle)."""
        units = [u for u in split_units(document) if u.end > start and u.start < max(end, reach)]
        vectors = embedder.embed([document.text[u.start:u.end] for u in units]) if units else np.zeros((0, 1))
        return cls(document, start, end, units, vectors)


class TermWeights:
    """Inverse document frequency of stemmed terms over the indexed chunks (BM25's idf)."""

    def __init__(self, document_frequencies: dict[str, int], num_docs: int) -> None:
        self._df = document_frequencies
        self._n = num_docs

    def __call__(self, term: str) -> float:
        df = self._df.get(term, 0)
        return math.log(1.0 + (self._n - df + 0.5) / (df + 0.5))

    def known(self, terms: set[str]) -> set[str]:
        """The terms that occur somewhere in the corpus."""
        return {t for t in terms if t in self._df}


def term_coverage(question_terms: set[str], text: str, weights: TermWeights | None = None) -> float:
    """Share of the question's (stemmed, stop-word-free) terms that occur in ``text``,
    each term weighted by its idf when ``weights`` are given."""
    if not question_terms:
        return 0.0
    weight = weights or (lambda _term: 1.0)
    present = question_terms & set(tokenize([text])[0])
    return sum(weight(t) for t in present) / sum(weight(t) for t in question_terms)


class SpanExtractor:
    """Scores units of a passage and returns its best contiguous answer span."""

    def __init__(
        self,
        weights: TermWeights | None = None,
        cosine_weight: float = 0.5,
        coverage_weight: float = 0.3,
        passage_weight: float = 0.2,
        neighbour_weight: float = 0.2,
        max_chars: int = 400,
        max_list_chars: int = 600,
        max_units: int = 3,
        grow_ratio: float = 0.9,
    ) -> None:
        self.weights = weights
        self.cosine_weight = cosine_weight
        self.coverage_weight = coverage_weight
        self.passage_weight = passage_weight
        self.neighbour_weight = neighbour_weight
        self.max_chars = max_chars
        self.max_list_chars = max_list_chars
        self.max_units = max_units
        self.grow_ratio = grow_ratio

    def reach(self, document: Document, end: int) -> int:
        """Where reading may stop: up to ``max_list_chars`` past ``end``, at a line end."""
        text = document.text
        limit = min(len(text), end + self.max_list_chars)
        cut = text.rfind("\n", end, limit)
        return limit if limit == len(text) else max(end, cut)

    def extract(
        self,
        question: str,
        question_vector: np.ndarray,
        passages: list[PassageUnits],
        priors: list[float] | None = None,
    ) -> list[Span | None]:
        """The best span of each passage (``None`` for a passage with no usable unit).

        ``priors`` are the passages' own relevance (cosine with the question): a
        sentence of a passage that matches as a whole is more likely the answer.
        Units past a passage's end are read (a lead-in or list cut off by the
        chunk boundary takes the rest of its list) but never scored or chosen.
        """
        terms = set(tokenize([question])[0])
        if self.weights is not None:
            # A term the corpus never uses can't tell one sentence from another.
            terms = self.weights.known(terms)
        priors = priors if priors is not None else [0.0] * len(passages)
        spans: list[Span | None] = []
        for passage, prior in zip(passages, priors):
            text = passage.document.text
            inside = np.array([u.start < passage.end for u in passage.units], dtype=bool)
            cos = np.full(len(passage.units), -np.inf)
            if len(passage.units):
                cos[inside] = (passage.vectors @ question_vector)[inside]
            cov = np.array(
                [term_coverage(terms, text[u.start:u.end], self.weights) if f else 0.0 for u, f in zip(passage.units, inside)]
            )
            spans.append(self._best_span(passage.units, cos, cov, prior))
        return spans

    def _best_span(self, units: list[Unit], cos: np.ndarray, cov: np.ndarray, prior: float) -> Span | None:
        scores = self.cosine_weight * cos + self.coverage_weight * cov + self.passage_weight * prior
        if self.neighbour_weight and len(scores) > 1:
            # A sentence among relevant sentences is more likely the answer than a
            # lone sentence that happens to share words with the question.
            padded = np.pad(scores, 1, constant_values=-np.inf)
            neighbour = np.maximum(padded[:-2], padded[2:])
            scores = scores + self.neighbour_weight * np.where(np.isfinite(neighbour), neighbour, scores)
        candidates = [i for i, u in enumerate(units) if not u.heading and np.isfinite(scores[i])]
        if not candidates:
            return None
        best = max(candidates, key=lambda i: scores[i])
        first = last = best

        def make(a: int, b: int) -> Span:
            return Span(
                units[a].start, units[b].end, float(scores[best]), float(cos[best]), float(cov[best]), float(prior)
            )

        def joinable(i: int) -> bool:
            if not 0 <= i < len(units) or units[i].heading:
                return False
            a, b = min(first, i), max(last, i)
            same_block = units[i].paragraph == units[best].paragraph or (
                units[i].list_item and units[best].list_item
            )
            limit = self.max_list_chars if units[i].list_item and units[best].list_item else self.max_chars
            return same_block and units[b].end - units[a].start <= limit

        # A lead-in ("Symptoms of overdose:", "such substances as:") takes what it introduces.
        if units[best].lead_in:
            while (
                last + 1 < len(units)
                and not units[last + 1].heading
                and units[last + 1].end - units[first].start <= self.max_list_chars
                and (last == best or units[last + 1].list_item)
            ):
                last += 1
        # One item of a list says little alone: take its neighbours in the list.
        if units[best].list_item and not units[best].lead_in:
            grew = True
            while grew:
                grew = False
                for i in (last + 1, first - 1):
                    if joinable(i) and units[i].list_item:
                        first, last = min(first, i), max(last, i)
                        grew = True
                        break
            return make(first, last)
        # Grow with neighbours that score nearly as well.
        while last - first + 1 < self.max_units:
            options = [i for i in (first - 1, last + 1) if joinable(i) and scores[i] >= self.grow_ratio * scores[best]]
            if not options:
                break
            pick = max(options, key=lambda i: scores[i])
            first, last = min(first, pick), max(last, pick)
        return make(first, last)

