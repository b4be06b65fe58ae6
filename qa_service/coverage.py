"""What an index covers, said to a newcomer: its medicines (subjects), how many documents, and a few
example questions built from the sections its documents actually have.

An example is a question template of a common leaflet section ("overdose", "missed dose",
"storage", "side effects", ...) with the name of a medicine whose document has such a section
filled in. A topic no document has a section on gives no example: another corpus, other examples.
Section titles are matched by their search terms (``ingest.analysis.terms``, the one analyser),
so "Terms and conditions of storage" and "How to store Zebrafen" are both storage.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from ingest.analysis import terms
from ingest.documents import Document

from .subjects import SubjectFinder

MAX_EXAMPLES = 4
"""Most example questions offered."""
MAX_NAMES_SAID = 8
"""Most medicine names a sentence lists (then "and N others")."""


@dataclass(frozen=True, slots=True)
class Coverage:
    """What the index covers: its subjects, its number of documents, example questions."""

    subjects: list[str]
    """Every medicine or topic the documents are about, as written, in alphabetical order."""
    documents: int
    examples: list[str]
    """Questions about sections the documents have, each naming a medicine whose document has one."""


@dataclass(frozen=True)
class Topic:
    """A common leaflet section: a section title is about it when it holds a term of each group of
    ``needs`` and none of ``unless``."""

    name: str
    needs: tuple[frozenset[str], ...]
    template: str
    unless: frozenset[str] = frozenset()


def _stems(words: str) -> frozenset[str]:
    return frozenset(t for ts in terms(words.split()) for t in ts)


TOPICS: tuple[Topic, ...] = (
    Topic("overdose", (_stems("overdose overdosage"),), "What should be done after an overdose of {name}?"),
    Topic("missed dose", (_stems("missed miss forget forgotten"), _stems("dose doses take")),
          "What should I do if I miss a dose of {name}?"),
    Topic("storage", (_stems("storage store stored keep"),), "How should {name} be stored?"),
    Topic("side effects", (_stems("side adverse undesirable unwanted"), _stems("effects reactions")),
          "What are the side effects of {name}?"),
    Topic("pregnancy", (_stems("pregnancy pregnant"),), "Can {name} be taken during pregnancy?"),
    Topic("dosage", (_stems("dosage dosing posology"),), "What is the usual dose of {name}?",
          unless=_stems("overdose overdosage missed")),
    Topic("contraindications", (_stems("contraindications contraindicated"),), "Who should not take {name}?"),
    Topic("interactions", (_stems("interactions interact"),), "Which medicines interact with {name}?"),
)
"""In the order examples are offered (the first ``MAX_EXAMPLES`` found)."""


def _about(topic: Topic, title_terms: set[str]) -> bool:
    return all(group & title_terms for group in topic.needs) and not topic.unless & title_terms


def coverage_of(documents: Mapping[str, Document], subjects: SubjectFinder,
                max_examples: int = MAX_EXAMPLES) -> Coverage:
    """The coverage of an index's ``documents`` (in their order) whose subjects ``subjects`` knows."""
    titled = {
        doc_id: [set(ts) for ts in terms([s.title for s in document.sections if s.title])]
        for doc_id, document in documents.items()
    }
    named = {doc_id: subjects.display_name(doc_id) for doc_id in documents}
    used: Counter[str] = Counter()
    examples: list[str] = []
    for topic in TOPICS:
        if len(examples) >= max_examples:
            break
        having = [named[d] for d, titles in titled.items() if named[d] and any(_about(topic, t) for t in titles)]
        if not having:
            continue
        # The medicine least used by the examples so far (the documents' order breaks ties): varied examples.
        name = min(dict.fromkeys(having), key=lambda n: used[n])
        used[name] += 1
        examples.append(topic.template.format(name=name))
    return Coverage(subjects=subjects.names(), documents=len(documents), examples=examples)


def said(names: list[str], most: int = MAX_NAMES_SAID) -> str:
    """Names as a sentence lists them: "A", "A and B", "A, B and C", "A, B, ... and 5 others"."""
    if len(names) > most:
        rest = len(names) - most
        return ", ".join(names[:most]) + f" and {rest} other{'s' if rest > 1 else ''}"
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]
