"""Answer-span extraction: the best one to three sentences or list items of a passage.

A passage is cut into units (sentences inside each line; every list item is a
unit). Units are scored against the question; the best one is grown into a
contiguous span with neighbours that score nearly as well, and a lead-in that
ends in ":" takes the list it introduces. Headings are never an answer alone.
Offsets always index into the document's canonical text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pysbd

from ingest.documents import Document
from ingest.lexical import tokenize

MIN_SENTENCE_CHARS = 25
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•·●▪◦‣–—]|\(?\d{1,3}[.)]|\(?[a-z][.)])\s+")


@dataclass(frozen=True)
class Unit:
    start: int
    end: int
    paragraph: int
    """Units in the same paragraph share this number; a blank line starts a new one."""
    list_item: bool
    heading: bool
    lead_in: bool = False
    """The unit ends in ":" and introduces what follows."""


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


@lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False, char_span=True)


def split_units(document: Document, start: int, end: int) -> list[Unit]:
    """Sentences and list items of ``document.text[start:end]`` with absolute offsets."""
    text = document.text
    headings = [s.heading for s in document.sections if s.heading is not None]
    units: list[Unit] = []
    paragraph = 0
    offset = start
    for line in text[start:end].split("\n"):
        line_start = offset
        offset += len(line) + 1
        if not line.strip():
            paragraph += 1
            continue
        marker = _LIST_ITEM.match(line)
        body_start = line_start + (marker.end() if marker else len(line) - len(line.lstrip()))
        body = text[body_start:line_start + len(line)].rstrip()
        if not body:
            continue
        is_heading = any(h.start <= body_start < h.end for h in headings)
        if marker or is_heading:
            pieces = [(0, len(body))]
        else:
            pieces = []
            for sentence in _segmenter().segment(body):
                a, b = sentence.start, sentence.start + len(sentence.sent.rstrip())
                # A fragment too short to be a sentence ("- from 249 rubles." after
                # "50 pcs.") belongs to the sentence before it.
                if pieces and (len(body[a:b].strip()) < MIN_SENTENCE_CHARS or len(body[pieces[-1][0]:pieces[-1][1]].strip()) < MIN_SENTENCE_CHARS):
                    pieces[-1] = (pieces[-1][0], b)
                else:
                    pieces.append((a, b))
        for a, b in pieces:
            while a < b and body[a].isspace():
                a += 1
            if a < b:
                units.append(
                    Unit(
                        body_start + a,
                        body_start + b,
                        paragraph,
                        list_item=bool(marker),
                        heading=is_heading,
                        lead_in=body[b - 1] == ":",
                    )
                )
        if marker or is_heading:
            paragraph += 1
    return units


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
        embedder,  # noqa: ANN001 - ingest.embedding.Embedder
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
        self.embedder = embedder
        self.weights = weights
        self.cosine_weight = cosine_weight
        self.coverage_weight = coverage_weight
        self.passage_weight = passage_weight
        self.neighbour_weight = neighbour_weight
        self.max_chars = max_chars
        self.max_list_chars = max_list_chars
        self.max_units = max_units
        self.grow_ratio = grow_ratio

    def extract(
        self,
        question: str,
        question_vector: np.ndarray,
        passages: list[tuple[Document, int, int]],
        priors: list[float] | None = None,
    ) -> list[Span | None]:
        """The best span of each passage (``None`` for a passage with no usable unit).

        ``priors`` are the passages' own relevance (cosine with the question): a
        sentence of a passage that matches as a whole is more likely the answer.
        """
        terms = set(tokenize([question])[0])
        if self.weights is not None:
            # A term the corpus never uses can't tell one sentence from another.
            terms = self.weights.known(terms)
        # Units are read a little past each passage's end, so that a lead-in or a
        # list cut off by the chunk boundary still takes the rest of its list;
        # only units inside the passage are scored or chosen.
        per_passage = [
            split_units(doc, start, self._reach(doc, end)) for doc, start, end in passages
        ]
        inside = [
            [u.start < end for u in units] for (_, _, end), units in zip(passages, per_passage)
        ]
        texts = [
            doc.text[u.start:u.end]
            for (doc, _, _), units, flags in zip(passages, per_passage, inside)
            for u, flag in zip(units, flags)
            if flag
        ]
        vectors = self.embedder.embed(texts) if texts else np.zeros((0, len(question_vector)))
        cosines = vectors @ question_vector
        priors = priors if priors is not None else [0.0] * len(passages)
        spans: list[Span | None] = []
        row = 0
        for (doc, _, _), units, flags, prior in zip(passages, per_passage, inside, priors):
            n = sum(flags)
            cos = np.full(len(units), -np.inf)
            cos[:n] = cosines[row:row + n]
            cov = np.array(
                [term_coverage(terms, doc.text[u.start:u.end], self.weights) if f else 0.0 for u, f in zip(units, flags)]
            )
            row += n
            spans.append(self._best_span(units, cos, cov, prior))
        return spans

    def _reach(self, document: Document, end: int) -> int:
        """Where reading may stop: up to ``max_list_chars`` past ``end``, at a line end."""
        text = document.text
        limit = min(len(text), end + self.max_list_chars)
        cut = text.rfind("\n", end, limit)
        return limit if limit == len(text) else max(end, cut)

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

