"""Query expansion from an editable file of lay → clinical terms."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import Stemmer

DEFAULT_SYNONYMS = Path(__file__).parent / "data" / "synonyms.toml"
_WORD = re.compile(r"[\w'’-]+")


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def _stems(text: str) -> tuple[str, ...]:
    words = [w.replace("’", "'").strip("'-") for w in _WORD.findall(text.lower())]
    return tuple(_stemmer().stemWord(w) for w in words if w)


@dataclass(frozen=True)
class Expansion:
    question: str
    terms: list[str]
    """Clinical terms to add to the search, in file order, without repeats."""
    matched: list[str]
    """The lay keys found in the question."""

    @property
    def query(self) -> str:
        """The question followed by its clinical terms: what is searched for."""
        return " ".join([self.question, *self.terms])

    @property
    def known_words(self) -> frozenset[str]:
        """Lower-cased words of the matched keys: words the documents effectively know."""
        return frozenset(w.casefold() for key in self.matched for w in _WORD.findall(key))


class QueryExpander:
    def __init__(self, entries: dict[str, list[str]]) -> None:
        self._entries = [(_stems(key), key, values) for key, values in entries.items() if _stems(key)]

    @classmethod
    def from_file(cls, path: Path = DEFAULT_SYNONYMS) -> QueryExpander:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"synonym file {path} can't be read: {exc}") from None
        terms = data.get("terms", {})
        if not isinstance(terms, dict) or not all(
            isinstance(v, list) and all(isinstance(t, str) for t in v) for v in terms.values()
        ):
            raise ValueError(f"synonym file {path}: [terms] must map strings to lists of strings")
        return cls(terms)

    def expand(self, question: str) -> Expansion:
        stems = _stems(question)
        terms: dict[str, None] = {}
        matched = []
        for key_stems, key, values in self._entries:
            n = len(key_stems)
            if any(stems[i:i + n] == key_stems for i in range(len(stems) - n + 1)):
                matched.append(key)
                terms.update(dict.fromkeys(values))
        return Expansion(question, list(terms), matched)
