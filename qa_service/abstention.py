"""Deciding when the documents don't answer: unknown subjects and low confidence."""

from __future__ import annotations

import math
import re
import numpy as np

from ingest.lexical import tokenize

_WORD = re.compile(r"[^\W\d_][\w'’-]*[^\W_]|[^\W\d_]{2,}")


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
        embedder,  # noqa: ANN001 - ingest.embedding.Embedder
        threshold: float = 0.42,
        prototype: str = "medication",
    ) -> None:
        self.vocabulary = vocabulary
        self.embedder = embedder
        self.threshold = threshold
        self.prototype = prototype
        self._prototype_vector: np.ndarray | None = None

    def absent_words(self, question: str, known: frozenset[str] = frozenset()) -> list[str]:
        """Words of the question whose stems occur nowhere in the corpus."""
        found = []
        for word in dict.fromkeys(_WORD.findall(question)):
            stems = tokenize([word])[0]
            if not stems or word.casefold() in known:
                continue
            if not any(stem in self.vocabulary for stem in stems):
                found.append(word)
        return found

    def find(self, question: str, known: frozenset[str] = frozenset()) -> list[str]:
        """Medicine names in ``question`` that the corpus lacks; ``known`` are words to pass over."""
        candidates = self.absent_words(question, known)
        if not candidates:
            return []
        if self._prototype_vector is None:
            self._prototype_vector = self.embedder.embed([self.prototype])[0]
        similarity = self.embedder.embed(candidates) @ self._prototype_vector
        return [word for word, sim in zip(candidates, similarity) if sim >= self.threshold]


def calibrate(score: float, midpoint: float, slope: float) -> float:
    """Map a raw span score to a confidence in 0..1 (logistic)."""
    return 1.0 / (1.0 + math.exp(-slope * (score - midpoint)))


def confidence_label(confidence: float, threshold: float) -> str:
    if confidence >= max(0.8, threshold + 0.2):
        return "strong match"
    if confidence >= threshold:
        return "moderate match"
    return "weak match"
