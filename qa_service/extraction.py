"""Answer spans: the best unit grown into one to three sentences, or a list.

Units (sentences, list items, headings; cut at ingest, see ``ingest/units.py``)
are scored by the answer ranker (``ranking.py``); the best one is grown into a
contiguous span with neighbours that score nearly as well, and a lead-in that
ends in ":" takes the list it introduces. Headings are never an answer alone.
Offsets always index into the document's canonical text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ingest.analysis import terms as tokenize
from ingest.units import Unit


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


class SpanGrower:
    """Grows the best unit of a passage into an answer span of one to three units,
    or the list it belongs to or introduces; a heading is never an answer alone.

    ``scores`` are the units' answer scores (the ranker's probabilities); a unit
    with a score of ``-inf`` is outside what may be chosen but may still be
    joined as part of a list.
    """

    def __init__(self, max_chars: int = 400, max_list_chars: int = 600, max_units: int = 3,
                 grow_ratio: float = 0.9) -> None:
        self.max_chars = max_chars
        self.max_list_chars = max_list_chars
        self.max_units = max_units
        self.grow_ratio = grow_ratio

    def reach(self, text: str, end: int) -> int:
        """Where reading may stop: up to ``max_list_chars`` past ``end``, at a line end."""
        limit = min(len(text), end + self.max_list_chars)
        cut = text.rfind("\n", end, limit)
        return limit if limit == len(text) else max(end, cut)

    def grow(self, units: Sequence[Unit], scores: np.ndarray, best: int) -> tuple[int, int]:
        """Indices ``(first, last)`` into ``units`` of the span grown from ``units[best]``."""
        first = last = best

        def joinable(i: int) -> bool:
            if not 0 <= i < len(units) or units[i].heading:
                return False
            a, b = min(first, i), max(last, i)
            same_block = units[i].paragraph == units[best].paragraph or (units[i].list_item and units[best].list_item)
            limit = self.max_list_chars if units[i].list_item and units[best].list_item else self.max_chars
            return same_block and units[b].end - units[a].start <= limit

        # A lead-in ("Symptoms of overdose:", "such substances as:") takes what it introduces.
        if units[best].lead_in:
            while (
                last + 1 < len(units)
                and not units[last + 1].heading
                and units[last + 1].end - units[first].start <= self.max_list_chars
                and (last == best or units[last + 1].list_item)
                and units[last + 1].paragraph - units[last].paragraph <= 2
            ):
                last += 1
            return first, last
        # One item of a list says little alone: take its neighbours in the list.
        if units[best].list_item:
            grew = True
            while grew:
                grew = False
                for i in (last + 1, first - 1):
                    if joinable(i) and units[i].list_item:
                        first, last = min(first, i), max(last, i)
                        grew = True
                        break
            return first, last
        # Grow with neighbours that score nearly as well.
        while last - first + 1 < self.max_units:
            options = [
                i for i in (first - 1, last + 1)
                if joinable(i) and np.isfinite(scores[i]) and scores[i] >= self.grow_ratio * scores[best]
            ]
            if not options:
                break
            pick = max(options, key=lambda i: scores[i])
            first, last = min(first, pick), max(last, pick)
        return first, last
