"""The lexical (BM25) side of the index; its terms come from the one analyser (analysis.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np

from .analysis import ANALYSER_VERSION, terms

LEXICAL_VERSION = f"bm25s-lucene-k0.9-b0.4-{ANALYSER_VERSION}"
# Anserini's defaults for passages, not Lucene's 1.2 / 0.75: on COVID-QA they
# lift BM25 R@5 from 0.693 to 0.714 (docs/evaluation.md), and the neighbours
# of this setting score alike, so it is no knife-edge.
K1, B = 0.9, 0.4


class LexicalIndex:
    """BM25 over chunk texts, rows aligned with the chunk table."""

    def __init__(self, retriever: bm25s.BM25) -> None:
        self._retriever = retriever
        self.vocabulary = frozenset(retriever.vocab_dict)

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        return cls.from_terms(terms(texts))

    @classmethod
    def from_terms(cls, tokens: Sequence[list[str]]) -> LexicalIndex:
        """The index of texts already analysed (``analysis.terms``), one list a text."""
        retriever = bm25s.BM25(method="lucene", k1=K1, b=B)
        # bm25s can't index an empty corpus or all-empty documents; a placeholder
        # token keeps rows aligned and never matches a query token.
        tokens = [row or ["\x00"] for row in tokens] or [["\x00"]]
        retriever.index(tokens, show_progress=False)
        return cls(retriever)

    def save(self, directory: Path) -> None:
        self._retriever.save(str(directory), show_progress=False)

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        """The saved index, its score matrix memory-mapped (pages are read as queries touch them)."""
        return cls(bm25s.BM25.load(str(directory), mmap=True, show_progress=False, verbosity=0))

    @property
    def num_docs(self) -> int:
        return int(self._retriever.scores["num_docs"])

    def document_frequencies(self) -> dict[str, int]:
        """How many chunks contain each token (read off the BM25 matrix's columns)."""
        df = np.diff(self._retriever.scores["indptr"])
        return {
            token: int(df[i]) for token, i in self._retriever.vocab_dict.items() if i < len(df) and token
        }

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """BM25 score of every chunk for the (already tokenized) query."""
        known = [token for token in query_tokens if token in self.vocabulary]
        if not known:
            return np.zeros(self._retriever.scores["num_docs"], dtype=np.float32)
        return np.asarray(self._retriever.get_scores(known), dtype=np.float32)
