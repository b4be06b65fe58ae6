"""What the answering core returns: answers with their offsets, passages, and why a question was declined.

Plain frozen dataclasses, free of any web framework: the CLI, the evaluation
and the tests read them as they are, and the HTTP layer turns them into its
response schemas at the edge (``qa_service.api.schemas``), field for field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_PASSAGE_ID = re.compile(r"^(?P<doc_id>.+):(?P<start>\d{1,12})-(?P<end>\d{1,12})$")


def passage_id(doc_id: str, start: int, end: int) -> str:
    """A span's id, ``doc_id:start-end``: the same for the same text of a document in every rebuild."""
    return f"{doc_id}:{start}-{end}"


def parse_passage_id(value: str) -> tuple[str, int, int]:
    """``(doc_id, start, end)`` of a passage id; ValueError when it is not one."""
    found = _PASSAGE_ID.match(value)
    if found is None:
        raise ValueError(f"{value!r} is no passage id (doc_id:start-end)")
    return found["doc_id"], int(found["start"]), int(found["end"])


Highlights = tuple[tuple[int, int], ...]
"""Offsets ``(start, end)`` of matched query terms, in the document's text (the citations' coordinates)."""


@dataclass(frozen=True, slots=True)
class Meta:
    """What produced a response: rerun with the same and the results are the same."""

    index_version: str
    models: dict[str, str | None]
    """The embedding model and the reader (None when off)."""
    code_version: str
    config_hash: str
    """A hash of every setting that changes results (retrieval and answer settings, the ranker's
    data, the synonyms, the reader's fingerprint)."""


@dataclass(frozen=True, slots=True)
class Citation:
    """Where a quotation comes from: ``document.text[start:end]`` is the quotation, verbatim."""

    doc_id: str
    title: str
    source: str
    section: str | None
    """Title of the section the text lies in (None before the first heading)."""
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Passage:
    """The retrieved passage around an answer, verbatim, with its offsets."""

    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Answer:
    """One extracted answer: a verbatim span, its calibrated confidence and its citation."""

    text: str
    score: float
    """Calibrated confidence in 0..1."""
    confidence: str
    """The score in words: strong, moderate or weak match."""
    citation: Citation
    passage: Passage
    passage_id: str = ""
    """The answer's span as a passage id (``GET /v1/passages/{id}`` returns it)."""
    highlights: Highlights = ()
    explain: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Source:
    """A document named without a quotation (one that is silent on a question)."""

    doc_id: str
    title: str


@dataclass(frozen=True, slots=True)
class Choice:
    """A word of a question that could be several names: the question asked again with one of them
    in its place is no longer in doubt."""

    word: str
    """The word as the question wrote it ("zoriaizia")."""
    names: list[str]
    """The names it could be, as the documents write them."""


@dataclass(frozen=True, slots=True)
class AskResult:
    """The answers to a question, or why there are none (``answered`` False and a ``reason``)."""

    question: str
    answered: bool
    answers: list[Answer]
    took_ms: float
    reason: str | None = None
    subjects: list[str] = field(default_factory=list)
    """Medicines or topics the question names; the answers come from the documents about them."""
    notice: str | None = None
    """A caution for the reader, e.g. that no medicine was named and the answers are about several."""
    notice_subjects: list[str] = field(default_factory=list)
    """With that notice: the medicines the answers are about (ask again narrowed to one of them)."""
    choices: list[Choice] = field(default_factory=list)
    """When declined as ambiguous: each word in doubt and the names it could be."""
    silent: list[Source] = field(default_factory=list)
    """Documents about the medicine the question names that hold no answer to it clearing the
    confidence bar: they are silent on the question (not shown, not guessed from)."""
    candidates: int = 0
    """Answer units scored."""
    meta: Meta | None = None
    explain: dict[str, Any] | None = None
    """How the question was searched: its expanded terms, the subjects and documents it was narrowed to."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved passage of a search, verbatim, with its fused score."""

    text: str
    score: float
    citation: Citation
    passage_id: str = ""
    highlights: Highlights = ()
    explain: dict[str, Any] | None = None
    """The dense and lexical scores, the fusion weights, the expansion and subject bonuses."""


@dataclass(frozen=True, slots=True)
class SearchResult:
    """The passages retrieved for a query, best first."""

    query: str
    results: list[Hit]
    took_ms: float
    subjects: list[str] = field(default_factory=list)
    offset: int = 0
    """Results skipped before these (paging)."""
    candidates: int = 0
    """Chunks scored for the query."""
    meta: Meta | None = None
    explain: dict[str, Any] | None = None
    """How the query was searched: its expanded terms, the subjects and documents it was narrowed to."""
