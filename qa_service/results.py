"""What the answering core returns: answers with their offsets, passages, and why a question was declined.

Plain frozen dataclasses, free of any web framework: the CLI, the evaluation
and the tests read them as they are, and the HTTP layer turns them into its
response schemas at the edge (``qa_service.api.schemas``), field for field.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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


@dataclass(frozen=True, slots=True)
class Source:
    """A document named without a quotation (one that is silent on a question)."""

    doc_id: str
    title: str


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
    silent: list[Source] = field(default_factory=list)
    """Documents about the medicine the question names that hold no answer to it clearing the
    confidence bar: they are silent on the question (not shown, not guessed from)."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved passage of a search, verbatim, with its fused score."""

    text: str
    score: float
    citation: Citation


@dataclass(frozen=True, slots=True)
class SearchResult:
    """The passages retrieved for a query, best first."""

    query: str
    results: list[Hit]
    took_ms: float
    subjects: list[str] = field(default_factory=list)
