"""The medicines or topics a question names, and the documents about them.

Each document's subjects are read at ingest (``ingest.subjects``). A question
names a subject when it holds all of the subject's search terms ("xenical";
"high blood pressure"), or, for a one-word name, a word the corpus never uses
that is a near spelling of it ("zenical" for Xenical, "entreso" for Entresto;
rapidfuzz's ratio). Of overlapping matches the longer wins: "diabetes
insipidus" over "diabetes". Only a name that picks out its documents (most
documents that use it are about it) narrows anything: in a corpus of virology
articles, "adenovirus" in one title does not make that article the only one
that answers about adenoviruses.

Questions about how medicines act together ("can I take Xenical with
warfarin?") also reach the documents that merely mention the named medicines.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import fuzz, process

from ingest.analysis import content_words, terms, words
from ingest.documents import Document
from ingest.lexical import LexicalIndex
from ingest.subjects import DECLARED_SOURCES, is_rare_word, subject_terms

MIN_FUZZY_LENGTH = 5
FUZZY_SCORE = 80.0
"""rapidfuzz ratio (0-100) from which an unknown word is taken for a one-word name: one letter
wrong or missing in a name of six or more letters ("zenical" / "xenical" scores 85.7)."""
DISTINCTIVE_SHARE = 0.5
"""A subject narrows retrieval when at least this share of the documents using its name are about it."""
FUZZY_MARGIN = 5.0
"""The nearest name must beat the next by this much, or the word is taken for no name."""
_INTERACTION = re.compile(
    r"\b(interact\w*|together|combin\w*|at the same time|along with|alongside|mix\w*|same day as)\b", re.IGNORECASE
)


@dataclass(frozen=True)
class SubjectMatch:
    """What a question is about, as far as the documents' subjects tell."""

    names: list[str] = field(default_factory=list)
    """The subjects named, as the documents write them ("Xenical")."""
    doc_ids: list[str] = field(default_factory=list)
    """Documents about them (and, for an interaction question, documents that mention them)."""
    corrected: dict[str, str] = field(default_factory=dict)
    """Question words taken for a misspelt name → that name."""
    terms: frozenset[str] = frozenset()
    """The search terms of the names."""
    ambiguous: dict[str, list[str]] = field(default_factory=dict)
    """Question words as near to two names as to one → those names."""
    declared: bool = False
    """Every document about the named subjects declares them (sidecar, template headings, active
    substance statements): a filter can trust them. Otherwise some were guessed (from a title)."""

    def words_in(self, question: str) -> list[str]:
        """The words of ``question`` that name the subjects."""
        return [w for w in dict.fromkeys(words(question)) if (t := terms([w])[0]) and set(t) <= self.terms]

    def __bool__(self) -> bool:
        return bool(self.names)


class SubjectFinder:
    """Finds the subjects a question names among those of a bundle's documents."""

    def __init__(self, documents: Mapping[str, Document], vocabulary: frozenset[str], lexical: LexicalIndex | None = None,
                 chunk_docs: list[str] | None = None, strict_misspellings: bool = True) -> None:
        self.vocabulary = vocabulary
        self.strict_misspellings = strict_misspellings
        """A word holding a name, held by it or of a length three letters apart is no misspelling of it."""
        self.lexical = lexical
        self.chunk_docs = np.array(chunk_docs or [], dtype=object)
        self._docs: dict[tuple[str, ...], list[str]] = {}
        self._name: dict[tuple[str, ...], str] = {}
        self._forms: dict[tuple[str, ...], list[str]] = {}
        """Every way the documents write each subject."""
        self._by_term: dict[str, set[tuple[str, ...]]] = {}
        self._of_doc: dict[str, set[tuple[str, ...]]] = {}
        self._of_doc_order: dict[str, list[tuple[str, ...]]] = {}
        self._guessed: set[tuple[str, ...]] = set()
        """Subjects some document holds by a guess (its title), not by declaration."""
        single: dict[str, tuple[str, ...]] = {}
        for doc_id, document in documents.items():
            sources = getattr(document, "subject_sources", ()) or ()
            for i, subject in enumerate(document.subjects):
                key = subject_terms(subject)
                if not key:
                    continue
                if i >= len(sources) or sources[i] not in DECLARED_SOURCES:
                    self._guessed.add(key)
                self._docs.setdefault(key, []).append(doc_id)
                self._name.setdefault(key, subject)
                self._forms.setdefault(key, []).append(subject)
                self._of_doc.setdefault(doc_id, set()).add(key)
                self._of_doc_order.setdefault(doc_id, []).append(key)
                for term in key:
                    self._by_term.setdefault(term, set()).add(key)
                words = subject.split()
                if len(key) == 1 and len(words) == 1 and len(subject) >= MIN_FUZZY_LENGTH:
                    single.setdefault(subject.casefold(), key)
        self._single = single
        self._mentions: dict[tuple[str, ...], int] = {}
        self._single_names = list(single)

    def names(self) -> list[str]:
        """Every subject of the documents once, as written (a capitalised form where one is:
        "Baclosan" over "baclosan"), in alphabetical order."""
        shown = [next((f for f in forms if f[:1].isupper()), forms[0]) for forms in self._forms.values()]
        return sorted(shown, key=str.casefold)

    def display_name(self, doc_id: str) -> str | None:
        """The first subject of a document (its own order: the main one first), as :meth:`names` shows it."""
        for key in self._of_doc_order.get(doc_id, ()):
            forms = self._forms[key]
            return next((f for f in forms if f[:1].isupper()), forms[0])
        return None

    def subjects_of(self, doc_id: str) -> list[str]:
        """A document's subjects, as written."""
        return [self._name[key] for key in sorted(self._of_doc.get(doc_id, ()))]

    def same_subject(self, a: str, b: str) -> bool | None:
        """Whether two documents share a subject (None when either has none)."""
        sa, sb = self._of_doc.get(a), self._of_doc.get(b)
        if not sa or not sb:
            return None
        return bool(sa & sb)

    def _misspelt(self, question: str) -> tuple[dict[str, tuple[str, ...]], dict[str, list[str]]]:
        """Question words the corpus lacks that are near spellings of a one-word name, and those
        as near to two names as to one (never guessed): word -> the names it could be."""
        found: dict[str, tuple[str, ...]] = {}
        ambiguous: dict[str, list[str]] = {}
        if not self._single_names:
            return found, ambiguous
        for word in content_words(question):
            if len(word) < MIN_FUZZY_LENGTH or any(t in self.vocabulary for t in terms([word])[0]):
                continue
            if not is_rare_word(word):
                continue
            folded = word.casefold()
            best = process.extract(folded, self._single_names, scorer=fuzz.ratio, score_cutoff=FUZZY_SCORE, limit=2)
            # A name inside the word or the word inside a name, or lengths apart by more than two
            # letters, is another medicine ("levocetirizine" / "cetirizine"), not a misspelling.
            if self.strict_misspellings:
                best = [b for b in best if not _another_name(folded, b[0])]
            if not best:
                continue
            if len(best) == 1 or best[0][1] - best[1][1] >= FUZZY_MARGIN:
                found[word] = self._single[best[0][0]]
            else:  # "zoriaizia": Zorarizia or Zorivizia?
                ambiguous[word] = [self._name[self._single[name]] for name, *_ in best]
        return found, ambiguous

    def _documents_using(self, names: tuple[str, ...], every: bool) -> set[str]:
        """Documents whose text uses every one (``every``) or any one of the search terms ``names``."""
        if self.lexical is None or not len(self.chunk_docs):
            return set()
        if not every:
            used = self.lexical.scores(sorted(names)) > 0
        else:
            used = np.ones(len(self.chunk_docs), dtype=bool)
            for term in names:
                used &= self.lexical.scores([term]) > 0
        return set(self.chunk_docs[np.flatnonzero(used)].tolist())

    def _mentioned_by(self, key: tuple[str, ...]) -> int:
        """How many documents use every term of ``key`` anywhere in their text."""
        if key not in self._mentions:
            self._mentions[key] = max(len(self._documents_using(key, every=True)), len(self._docs[key]))
        return self._mentions[key]

    def distinctive(self, key: tuple[str, ...]) -> bool:
        """A subject that picks out its documents: most documents that use the name are about it
        ("Xenical" in a leaflet corpus; not "adenovirus" in a corpus of virology articles, where
        one title names it and thirty articles discuss it)."""
        return len(self._docs[key]) >= DISTINCTIVE_SHARE * self._mentioned_by(key)

    def find(self, question: str) -> SubjectMatch:
        question_terms = set(terms([question])[0])
        matched = {
            key
            for term in question_terms
            for key in self._by_term.get(term, ())
            if all(t in question_terms for t in key)
        }
        misspelt, ambiguous = self._misspelt(question)
        matched |= set(misspelt.values())
        # The longest match wins: "diabetes insipidus" over "diabetes".
        matched = {key for key in matched if not any(set(key) < set(other) for other in matched)}
        # Only names that pick out their documents narrow anything.
        matched = {key for key in matched if self.distinctive(key)}
        if not matched:
            return SubjectMatch(ambiguous=ambiguous)
        keys = sorted(matched, key=lambda k: self._name[k].casefold())
        doc_ids = list(dict.fromkeys(d for key in keys for d in self._docs[key]))
        if _INTERACTION.search(question):
            mentioning = self._documents_using(tuple({t for key in keys for t in key}), every=False)
            doc_ids += sorted(mentioning - set(doc_ids))
        return SubjectMatch(
            names=[self._name[key] for key in keys],
            doc_ids=doc_ids,
            corrected={word: self._name[key] for word, key in misspelt.items()},
            terms=frozenset(t for key in keys for t in key),
            ambiguous=ambiguous,
            declared=not any(key in self._guessed for key in keys),
        )


def _another_name(word: str, name: str) -> bool:
    """``word`` is no misspelling of ``name`` but another name: one holds the other, or their
    lengths differ by more than two letters."""
    return word in name or name in word or abs(len(word) - len(name)) > 2
