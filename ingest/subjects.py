"""What each document is about: the medicine or topic names a question picks it by.

Across hundreds of leaflets written to one template ("If you forget to take X",
"How to store X") the words that tell them apart are the medicines' names. A
document's subjects are read at ingest, from

- its metadata: a sidecar may list them (``"subjects": ["Xenical", "orlistat"]``);
- the names its own template headings and statements give: "What X is and what
  it is used for", "How to take X", "If you forget to take X", "What X
  contains", "The active substance is Y", "X contains the active substance Y";
- its title: the words of it that name a medicine (a word the text uses again
  that is rare in general English, by wordfreq's Zipf frequency: "Baclofen"
  1.9, "Xenical" 1.5, against "system" 5.6, "reviews" 4.6) or, when the title is
  a short noun phrase and no question ("Keratoconus (GARD)", "Xenical 120 mg
  hard capsules"), the phrase itself;
- and every brand / generic name the corpus states for any of these (aliases).

A subject is kept as written ("Xenical", "High Blood Pressure"); the service
matches questions against its search terms (:func:`subject_terms`). Where each
came from is kept beside it (:data:`SOURCES`): the corpus *declares* the
metadata's and the template's names, the title's are a guess, and the service
trusts only declared subjects to filter the documents it reads. Title debris
is never a subject: a pronunciation ("pronounced as (bak' loe fen)",
"(BAK-loe-fen)"), a dose form or route ("tablets", "oral", "extended-release").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from wordfreq import zipf_frequency

from .aliases import find_aliases
from .analysis import STOP_WORDS, terms, words
from .documents import Document

SUBJECTS_VERSION = "2"
"""Recorded in the manifest: a change re-reads every document's subjects (the vectors are reused)."""
SOURCES = ("metadata", "template", "title")
"""Where a subject came from: a sidecar's ``subjects``; the template headings and active-substance
statements of the text; the title. A brand / generic name stated for one takes its source."""
DECLARED_SOURCES = frozenset({"metadata", "template"})
"""Sources by which the corpus declares what a document is about (the others are guesses)."""
RARE_ZIPF = 3.0
"""A title word rarer than this in general English (Zipf scale: 3 is once per million words) may be a name."""
MAX_TOPIC_WORDS = 5

_NAME = r"(?P<name>[A-Za-z][A-Za-z0-9-]{2,})"
_TEMPLATE = [
    re.compile(p, re.IGNORECASE)
    for p in (
        rf"\bwhat {_NAME} is and what it is used for",
        rf"\b(?:how|before you|when) (?:to )?(?:take|use|store|give) {_NAME}\b",
        rf"\bwhat {_NAME} contains\b",
        rf"\bif you (?:take|use) more {_NAME} than you should",
        rf"\bif you (?:forget|forgot) to (?:take|use|give) {_NAME}\b",
        rf"\bif you stop (?:taking|using) {_NAME}\b",
        rf"\b{_NAME} (?:contains|is) the active (?:substance|ingredient)",
    )
]
_ENDS_NAME = r"(?=\s*(?:[.,;:()\n]|and\b|\d|$))"
"""A stated name ends the statement: "The active substance is orlistat." (not "... is absorbed into")."""
_ACTIVE = re.compile(
    rf"\bthe active (?:substances?|ingredients?) (?:is|are|:)\s+(?P<name>[A-Za-z][A-Za-z0-9-]{{2,}}){_ENDS_NAME}",
    re.IGNORECASE,
)
_CONTAINS_ACTIVE = re.compile(
    rf"\bcontains? the active (?:substances?|ingredients?)\s+(?P<name>[A-Za-z][A-Za-z0-9-]{{2,}}){_ENDS_NAME}",
    re.IGNORECASE,
)
_NOT_NAMES = STOP_WORDS | {
    "tablet", "tablets", "capsule", "capsules", "drug", "drugs", "medicine", "medicines", "medication", "this",
    "your", "the", "more", "less", "them", "these", "those", "each", "other", "which", "what", "that", "active",
    "substance", "substances", "ingredient", "ingredients", "solution", "injection", "film-coated", "hard", "soft",
    "oral", "product", "preparation", "treatment", "following",
}
_FORM_WORDS = {
    "mg", "g", "ml", "mcg", "microgram", "micrograms", "tablet", "tablets", "capsule", "capsules", "hard", "soft",
    "film-coated", "film", "coated", "gastro-resistant", "prolonged-release", "modified-release", "release",
    "oral", "solution", "suspension", "syrup", "drops", "injection", "powder", "cream", "gel", "chewable",
    "dispersible", "effervescent", "for", "and", "in", "pre-filled", "pen", "inhaler", "patch", "patches",
    "extended-release", "delayed-release", "immediate-release", "sustained-release", "controlled-release",
    "extended", "delayed", "immediate", "sustained", "controlled", "orally", "disintegrating", "usp", "topical",
    "ophthalmic", "otic", "nasal", "spray", "lotion", "ointment", "liquid", "concentrate", "elixir", "emulsion",
    "foam", "granules", "sachet", "sachets", "lozenge", "lozenges", "suppository", "suppositories", "rectal",
    "vaginal", "sublingual", "buccal", "transdermal", "intravenous", "intramuscular", "subcutaneous", "vial",
    "vials", "ampoule", "ampoules", "auto-injector", "kit", "implant", "inhalation", "aerosol", "tablet(s)",
}
_PARENTHESIS_TAIL = re.compile(r"\s*\([^()]*\)\s*$")
_PRONOUNCED = re.compile(r"\bpronounc", re.IGNORECASE)
_PARENTHESIS = re.compile(r"\(([^()]*)\)")
_SYLLABLES = re.compile(r"^\s*[A-Za-z]{1,5}(?:\s*['’-]\s*|\s+)[A-Za-z]{1,5}(?:(?:\s*['’-]\s*|\s+)[A-Za-z]{1,5})*\s*['’]?\s*$")
"""A pronunciation in brackets: "(bak' loe fen)", "(BAK-loe-fen)"."""
TemplateHit = tuple[str, int]


def subject_terms(subject: str) -> tuple[str, ...]:
    """The search terms that name ``subject`` (strengths and dose forms left out): what a question must hold."""
    kept = [w for w in re.findall(r"[\w'’-]+", subject) if w.casefold() not in _FORM_WORDS and not w[:1].isdigit()]
    return tuple(dict.fromkeys(terms([" ".join(kept)])[0])) if kept else ()


def stated_names(text: str) -> list[str]:
    """Medicine names a leaflet's template headings and active-substance statements give."""
    counts: Counter[str] = Counter()
    surface: dict[str, str] = {}
    certain: set[str] = set()
    for pattern in _TEMPLATE:
        for match in pattern.finditer(text):
            name = match.group("name")
            counts[name.casefold()] += 1
            surface.setdefault(name.casefold(), name)
    for pattern in (_ACTIVE, _CONTAINS_ACTIVE):
        for match in pattern.finditer(text):
            name = match.group("name")
            certain.add(name.casefold())
            surface.setdefault(name.casefold(), name)
    names = [key for key, n in counts.items() if n >= 2] + sorted(certain)
    return [surface[key] for key in dict.fromkeys(names) if key not in _NOT_NAMES]


def _is_pronunciation(inside: str) -> bool:
    """Bracketed syllables ("bak' loe fen", "BAK-loe-fen"), not an acronym or a word ("GARD", "orlistat")."""
    return bool(_SYLLABLES.match(inside)) and bool(re.search(r"['’-]|\s", inside.strip()))


def clean_title(title: str) -> str:
    """The title without its pronunciations: "Baclofen (BAK-loe-fen)" -> "Baclofen"; a pronunciation
    line ("pronounced as (bak' loe fen)") leaves nothing, and what follows "pronounced" goes."""
    said = _PRONOUNCED.search(title)
    if said:
        title = title[:said.start()].rstrip(" ,;:-([")
    return " ".join(_PARENTHESIS.sub(lambda m: " " if _is_pronunciation(m.group(1)) else m.group(0), title).split())


def title_topic(title: str) -> str | None:
    """The title itself when it is a short noun phrase naming one thing ("Keratoconus (GARD)")."""
    core = _PARENTHESIS_TAIL.sub("", clean_title(title)).strip()
    if not core or any(mark in core for mark in "?:|;") or " - " in core:
        return None
    if len(words(core)) > MAX_TOPIC_WORDS or not subject_terms(core):
        return None
    # Only dose forms, routes and words that name nothing ("Oral tablets", "This medicine"): debris.
    if all(w.casefold() in _FORM_WORDS or w.casefold() in _NOT_NAMES or w[:1].isdigit() for w in words(core)):
        return None
    return core


def is_rare_word(word: str, below: float = RARE_ZIPF) -> bool:
    """Rare in general English (Zipf frequency under ``below``): a name more likely than an ordinary word."""
    return zipf_frequency(word, "en") < below


def title_names(title: str, text: str) -> list[str]:
    """Words of the title that are rare in English and that the text uses again: a medicine's names."""
    lowered = text.casefold()
    found = []
    for word in dict.fromkeys(words(_PARENTHESIS_TAIL.sub("", clean_title(title)))):
        key = word.casefold()
        if len(key) < 4 or key in _NOT_NAMES or key in _FORM_WORDS or not is_rare_word(key):
            continue
        if lowered.count(key) >= 2:
            found.append(word)
    return found


def assign_subjects(documents: Sequence[Document]) -> list[Document]:
    """``documents`` with their :attr:`Document.subjects` completed (see the module's text);
    the subjects a document already has (its metadata's) come first."""
    aliases = find_aliases(d.text for d in documents)
    updated = []
    for document in documents:
        names: list[tuple[str, str]] = [(name, "metadata") for name in document.subjects]
        if not names:  # metadata that names the subjects is trusted as it is
            names += [(name, "template") for name in stated_names(document.text)]
            names += [(name, "title") for name in title_names(document.title, document.text)]
            topic = title_topic(document.title)
            if topic:
                names.append((topic, "title"))
        for name, source in list(names):
            names += [(alias, source) for alias in aliases.get(name.casefold(), [])]
        seen: set[tuple[str, ...]] = set()
        subjects, sources = [], []
        for name, source in names:
            key = subject_terms(name)
            if key and key not in seen:
                seen.add(key)
                subjects.append(name)
                sources.append(source)
        updated.append(replace(document, subjects=tuple(subjects), subject_sources=tuple(sources)))
    return updated


def other_names(documents: Sequence[Document]) -> dict[str, list[str]]:
    """Each one-word name of a medicine → its other names (lower case): the brand / generic
    statements of the corpus (aliases) joined with the names each document's subjects give
    for the one medicine it is about."""
    names: dict[str, list[str]] = {k: list(v) for k, v in find_aliases(d.text for d in documents).items()}
    for document in documents:
        single = [s.casefold() for s in document.subjects if len(s.split()) == 1]
        if len(single) < 2:
            continue
        for name in single:
            known = names.setdefault(name, [])
            known += [other for other in single if other != name and other not in known]
    return names
