"""Deciding when the documents don't answer: unknown subjects and low confidence."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from wordfreq import zipf_frequency

from ingest.lexical import tokenize

_WORD = re.compile(r"[^\W\d_][\w'’-]*[^\W_]|[^\W\d_]{2,}")


def unknown_terms(question: str, vocabulary: Iterable[str] | frozenset[str], max_zipf: float) -> list[str]:
    """Uncommon words of the question that occur nowhere in the corpus.

    A word the corpus never uses, and that is rare in everyday English (a drug
    name, a disease), is the subject of a question the documents can't answer.
    Common words the corpus lacks ("forgot", "kick") are left to the retriever.
    """
    found: list[str] = []
    for word in dict.fromkeys(_WORD.findall(question)):
        stems = tokenize([word])[0]
        if not stems or any(stem in vocabulary for stem in stems):
            continue
        if zipf_frequency(word.lower(), "en") < max_zipf:
            found.append(word)
    return found


def calibrate(score: float, midpoint: float, slope: float) -> float:
    """Map a raw span score to a confidence in 0..1 (logistic)."""
    return 1.0 / (1.0 + math.exp(-slope * (score - midpoint)))


def confidence_label(confidence: float, threshold: float) -> str:
    if confidence >= max(0.8, threshold + 0.2):
        return "strong match"
    if confidence >= threshold:
        return "moderate match"
    return "weak match"
