"""The one analyser: how text becomes words, stems and search terms, for every stage.

BM25 indexing and querying, the idf-weighted term coverage of answer units,
the question's lay-phrase matching, the content words abstention looks at and
the brand / generic name finder all split, stem and drop stop words here, in
the same way (the bm25s tokenizer with PyStemmer's English Snowball stemmer
and NLTK's English stop words as bm25s ships them).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import bm25s
import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS

STOP_WORDS = frozenset(STOPWORDS_EN_PLUS)
_STOP_LIST = sorted(STOP_WORDS)
ANALYSER_VERSION = "bm25s-snowball-nltk-stop-v1"
_TOKEN = re.compile(r"[\w'’-]+")
_WORD = re.compile(r"[^\W\d_][\w'’-]*[^\W_]|[^\W\d_]{2,}")
"""A word with letters: "baclofen", "half-life", "don't"; not "10" or "mg/d" pieces of numbers."""


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def stem(word: str) -> str:
    return _stemmer().stemWord(word.lower())


def terms(texts: Sequence[str]) -> list[list[str]]:
    """Search terms of each text: lower-cased, stop-word-free, stemmed (what BM25 indexes)."""
    if len(texts) == 1:  # a word, a question, a heading: asked again and again at query time
        return [list(_terms_of(texts[0]))]
    return bm25s.tokenize(
        list(texts), stopwords=_STOP_LIST, stemmer=_stemmer(), return_ids=False, show_progress=False
    )


@lru_cache(maxsize=65536)
def _terms_of(text: str) -> tuple[str, ...]:
    return tuple(bm25s.tokenize([text], stopwords=_STOP_LIST, stemmer=_stemmer(), return_ids=False, show_progress=False)[0])


_BM25_TOKEN = re.compile(r"(?u)\b\w\w+\b")
"""bm25s' token pattern: what ``terms`` splits text at."""


def term_spans(text: str, wanted: frozenset[str] | set[str]) -> list[tuple[int, int]]:
    """Offsets ``(start, end)`` in ``text`` of the words whose search term (as ``terms`` makes it)
    is in ``wanted``: where a query's terms occur, in the text's own coordinates."""
    if not wanted:  # nothing to find (a search without highlight): the text is not read
        return []
    found = []
    for match in _BM25_TOKEN.finditer(text):
        word = match.group().lower()
        if word not in STOP_WORDS and stem(word) in wanted:
            found.append((match.start(), match.end()))
    return found


def stems(text: str) -> tuple[str, ...]:
    """Every token of ``text`` stemmed, stop words kept: for matching phrases in order."""
    words = [w.replace("’", "'").strip("'-") for w in _TOKEN.findall(text.lower())]
    return tuple(_stemmer().stemWord(w) for w in words if w)


def words(text: str) -> list[str]:
    """The words (with letters) of ``text``, as written."""
    return _WORD.findall(text)


def is_stop_word(word: str) -> bool:
    return word.casefold() in STOP_WORDS


def content_words(text: str) -> list[str]:
    """Distinct words of ``text`` that carry meaning: not stop words, and with a search term."""
    return [w for w in dict.fromkeys(words(text)) if not is_stop_word(w) and terms([w])[0]]
