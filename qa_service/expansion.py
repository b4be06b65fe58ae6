"""Query expansion: lay → clinical terms from an editable file, and the corpus's
own brand ↔ generic names (see aliases.py).

Clinical terms join every side of the search. Other names of a medicine the
question names join the lexical (BM25) side only: in the embedding they would
only dilute the question, while BM25 needs them to match a passage that uses
the other name.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ingest.analysis import stems as _stems

DEFAULT_SYNONYMS = Path(__file__).parent / "data" / "synonyms.toml"
_WORD = re.compile(r"[\w'’-]+")


@dataclass(frozen=True)
class Expansion:
    question: str
    terms: list[str]
    """Clinical terms to add to the search, in file order, without repeats."""
    matched: list[str]
    """The lay keys found in the question."""
    names: tuple[str, ...] = ()
    """Other names of the medicines the question names."""

    @property
    def query(self) -> str:
        """The question followed by its clinical terms: what is searched for."""
        return " ".join([self.question, *self.terms])

    @property
    def lexical_query(self) -> str:
        """What the lexical side searches for: the query and the other names."""
        return " ".join([self.query, *self.names])

    @property
    def known_words(self) -> frozenset[str]:
        """Lower-cased words of the matched keys: words the documents effectively know."""
        return frozenset(w.casefold() for key in self.matched for w in _WORD.findall(key))


class QueryExpander:
    def __init__(self, entries: dict[str, list[str]], names: dict[str, list[str]] | None = None) -> None:
        self._entries = [(_stems(key), key, values) for key, values in entries.items() if _stems(key)]
        self._names = {key.casefold(): values for key, values in (names or {}).items()}
        # The entries by their key's first stem: a question is matched only against those it could hold.
        self._by_first: dict[str, list[int]] = {}
        for i, (key_stems, _, _) in enumerate(self._entries):
            self._by_first.setdefault(key_stems[0], []).append(i)

    @classmethod
    def from_file(cls, path: Path = DEFAULT_SYNONYMS, names: dict[str, list[str]] | None = None) -> QueryExpander:
        """Lay terms from the TOML file at ``path``; ``names`` maps a medicine's name to its other names."""
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"synonym file {path} can't be read: {exc}") from None
        terms = data.get("terms", {})
        if not isinstance(terms, dict) or not all(
            isinstance(v, list) and all(isinstance(t, str) for t in v) for v in terms.values()
        ):
            raise ValueError(f"synonym file {path}: [terms] must map strings to lists of strings")
        return cls(terms, names)

    def expand(self, question: str) -> Expansion:
        stems = _stems(question)
        terms: dict[str, None] = {}
        matched = []
        found: set[int] = set()
        for i, stem in enumerate(stems):
            for entry in self._by_first.get(stem, ()):
                key_stems = self._entries[entry][0]
                if stems[i:i + len(key_stems)] == key_stems:
                    found.add(entry)
        for entry in sorted(found):  # in the file's order
            _, key, values = self._entries[entry]
            matched.append(key)
            terms.update(dict.fromkeys(values))
        words = {w.casefold() for w in _WORD.findall(question)}
        names = dict.fromkeys(n for w in words & self._names.keys() for n in self._names[w] if n not in words)
        return Expansion(question, list(terms), matched, tuple(names))
