"""Deciding when the documents don't answer: unknown subjects and low confidence."""

from __future__ import annotations

import threading

import numpy as np
from cachetools import LRUCache
from rapidfuzz import fuzz, process

from ingest.analysis import content_words, terms as tokenize
from ingest.embedding import VectorEncoder
from ingest.subjects import is_rare_word


NAME_ZIPF = 2.0
"""Below this Zipf frequency (once in 100 million words) a word is taken for a name..."""
TYPO_SCORE = 85.0
"""...unless its stem is this near (rapidfuzz ratio) to one the corpus uses: a misspelling."""
VERDICTS_KEPT = 100_000
"""Words whose verdict (a name or not) is remembered: each cost a model run to decide, and a help
line's questions use the same words again and again."""


class UnknownSubjectDetector:
    """Finds medicine names in a question that the corpus never mentions.

    A question about a drug the documents don't cover ("the maximum dose of
    ibuprofen") must be declined even though passages about another drug's
    dose look similar. A word is such a subject when it occurs nowhere in the
    corpus (after stemming), is not a known lay word, and its embedding is close
    to that of the word "medication".
    """

    def __init__(
        self,
        vocabulary: frozenset[str],
        embedder: VectorEncoder,
        threshold: float = 0.42,
        prototype: str = "medication",
    ) -> None:
        self.vocabulary = vocabulary
        self.embedder = embedder
        self.threshold = threshold
        self.prototype = prototype
        self._prototype_vector: np.ndarray | None = None
        self._vocabulary_list: list[str] | None = None
        self._verdicts: LRUCache[str, bool] = LRUCache(VERDICTS_KEPT)
        self._verdicts_lock = threading.Lock()

    @staticmethod
    def _content_words(question: str) -> list[str]:
        """Distinct words of the question that carry meaning (no stop words)."""
        return content_words(question)

    def absent_words(self, question: str, known: frozenset[str] = frozenset()) -> list[str]:
        """Content words of the question, other than ``known`` ones, whose stems occur nowhere in the corpus."""
        # Compared by stem, so "expires" is known when the synonym key is "expire".
        known_stems = {stem for stems in tokenize(sorted(known)) for stem in stems} if known else set()
        return [
            word for word in self._content_words(question)
            if not any(stem in self.vocabulary or stem in known_stems for stem in tokenize([word])[0])
        ]

    def absent_share(self, question: str, absent: list[str]) -> float:
        """Share of the question's content words that the corpus never uses (``absent``: :meth:`absent_words`)."""
        words = self._content_words(question)
        return len(absent) / len(words) if words else 0.0

    def find(self, question: str, known: frozenset[str] = frozenset()) -> list[str]:
        """Names in ``question`` that the corpus lacks; ``known`` are words to pass over.

        A word the corpus never uses is such a name when its embedding is close to
        "medication" (ibuprofen, metformin) or when it is a name at all: a word of
        four letters or more that general English hardly knows (wordfreq Zipf below
        2: "Quixomex", "orlistat", "keratoconus"; "dizzy" is 3.6) and no misspelling of
        a word the corpus uses ("challege", "carageenan"). A question about a medicine
        no document covers is not answered from another medicine's leaflet.
        """
        candidates = self.absent_words(question, known)
        undecided = self.undecided(candidates)
        return self.names_among(candidates, dict(zip(undecided, self.embedder.embed(undecided)))
                                if undecided else {})

    def undecided(self, candidates: list[str]) -> list[str]:
        """The words of ``candidates`` not yet judged: only these need encoding for :meth:`names_among`."""
        with self._verdicts_lock:
            return [word for word in dict.fromkeys(candidates) if word not in self._verdicts]

    def names_among(self, candidates: list[str], vectors: dict[str, np.ndarray]) -> list[str]:
        """:meth:`find` for words already picked by :meth:`absent_words`: ``vectors`` holds the embedding
        of each word :meth:`undecided` named (the caller encodes them in one call with the question);
        the others' verdicts are remembered."""
        if not candidates:
            return []
        if self._prototype_vector is None:
            self._prototype_vector = self.embedder.embed([self.prototype])[0]
        found = []
        for word in candidates:
            with self._verdicts_lock:
                verdict = self._verdicts.get(word)
            if verdict is None:
                vector = vectors.get(word)
                if vector is None:  # judged by another request and forgotten since: rare, encode it
                    vector = self.embedder.embed([word])[0]
                verdict = bool(vector @ self._prototype_vector >= self.threshold) or self._looks_like_a_name(word)
                with self._verdicts_lock:
                    self._verdicts[word] = verdict
            if verdict:
                found.append(word)
        return found

    def _looks_like_a_name(self, word: str) -> bool:
        """Rare in general English, and no misspelling of a word the corpus uses ("challege")."""
        if len(word) < 4 or not is_rare_word(word, below=NAME_ZIPF):
            return False
        if self._vocabulary_list is None:
            self._vocabulary_list = sorted(self.vocabulary)
        stem = tokenize([word])[0]
        return not stem or process.extractOne(stem[0], self._vocabulary_list, scorer=fuzz.ratio, score_cutoff=TYPO_SCORE) is None


def confidence_label(confidence: float, threshold: float) -> str:
    """The confidence in words, relative to the answering threshold."""
    if confidence >= min(1.0, 2 * threshold):
        return "strong match"
    if confidence >= threshold:
        return "moderate match"
    return "weak match"
