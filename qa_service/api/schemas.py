"""The HTTP contract: request and response models (also the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ..records import has_lone_surrogate

MAX_QUESTION_CHARS = 2000
MAX_TOP_K = 20
MAX_ANSWER_CHARS = 20_000
"""Longest answer text (and cited span) feedback may be about."""
MAX_DOC_ID_CHARS = 256


def _characters(value: str) -> str:
    if has_lone_surrogate(value):
        raise PydanticCustomError("lone_surrogate", "a lone surrogate (such as \\ud800) is not a character")
    return value


def _text(min_length: int | None = None, max_length: int | None = None) -> object:
    """A string of characters only, of these lengths: JSON's \\ud800 alone (half a UTF-16 pair) is refused
    (it can't be stored or sent back). The lengths are checked first, so a long string is "too long"."""
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length), AfterValidator(_characters)]


class Citation(BaseModel):
    doc_id: str
    title: str
    source: str
    section: str | None = Field(description="Title of the section the text lies in.")
    start: int = Field(description="Offset of the first character in the document's canonical text.")
    end: int = Field(description="Offset one past the last character.")


class Passage(BaseModel):
    text: str
    start: int
    end: int


class Answer(BaseModel):
    text: str = Field(description="Verbatim: the document's text[start:end].")
    score: float = Field(description="Calibrated confidence in 0..1.")
    confidence: str = Field(description="The score in words: strong, moderate or weak match.")
    citation: Citation
    passage: Passage = Field(description="The retrieved passage around the answer, verbatim.")


class Source(BaseModel):
    doc_id: str
    title: str


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    top_k: int = Field(3, ge=1, le=MAX_TOP_K)
    doc_ids: list[str] | None = Field(None, description="Only search these documents.")

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question must not be blank")
        return value


class AskResponse(BaseModel):
    question: str
    answered: bool
    reason: str | None = Field(None, description="Why the question was declined, when it was.")
    subjects: list[str] = Field(
        default_factory=list,
        description="Medicines or topics the question names that documents are about; the results come from those documents.",
    )
    notice: str | None = Field(
        None, description="A caution for the reader, e.g. that no medicine was named and the answers are about several."
    )
    answers: list[Answer]
    silent: list[Source] = Field(
        default_factory=list,
        description="Documents about the named medicine that hold no answer clearing the confidence bar: "
        "silent on this question.",
    )
    took_ms: float


class SearchResult(BaseModel):
    text: str
    score: float
    citation: Citation


class SearchResponse(BaseModel):
    query: str
    subjects: list[str] = Field(
        default_factory=list,
        description="Medicines or topics the question names that documents are about; the results come from those documents.",
    )
    results: list[SearchResult]
    took_ms: float


class DocumentSummary(BaseModel):
    doc_id: str
    title: str
    source: str
    format: str
    length: int
    sections: list[str]
    subjects: list[str] = Field(default_factory=list, description="What the document is about: its medicines' or topic's names.")


class DocumentDetail(DocumentSummary):
    text: str


class CitedSpan(BaseModel):
    """The citation of the answer voted on. Only ``doc_id``, ``start`` and ``end`` are read; the other
    fields of an answer's citation (title, source, section) may be sent as they came and are ignored:
    the stored citation is rebuilt from the index."""

    doc_id: _text(max_length=MAX_DOC_ID_CHARS)  # type: ignore[valid-type]
    start: int = Field(ge=0, description="Offset of the first character in the document's canonical text.")
    end: int = Field(gt=0, description="Offset one past the last character (at most the text's length).")

    @model_validator(mode="after")
    def _a_span(self) -> CitedSpan:
        if self.end <= self.start:
            raise PydanticCustomError("citation_range", "end must be past start")
        if self.end - self.start > MAX_ANSWER_CHARS:
            raise PydanticCustomError("citation_range", f"a span longer than {MAX_ANSWER_CHARS} characters")
        return self


class FeedbackRequest(BaseModel):
    question: _text(1, MAX_QUESTION_CHARS)  # type: ignore[valid-type]
    citation: CitedSpan = Field(description="The citation of the answer voted on, as /v1/ask returned it.")
    answer: _text(max_length=MAX_ANSWER_CHARS) | None = Field(  # type: ignore[valid-type]
        None, description="The answer's text (optional; the stored answer is the document's text[start:end]).",
    )
    vote: Literal["up", "down"]
    comment: _text(max_length=MAX_QUESTION_CHARS) | None = None  # type: ignore[valid-type]


class FeedbackResponse(BaseModel):
    id: int


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ReloadResponse(BaseModel):
    changed: bool = Field(description="False when the bundle on disk is the one already served.")
    index_version: str = Field(description="The version now served.")
    previous_version: str | None
    documents: int
    chunks: int
    took_s: float = Field(description="Seconds to read and check the new bundle and load its model.")


class UnansweredQuestion(BaseModel):
    question: str = Field(description="Its latest wording (questions are grouped ignoring case and spacing).")
    declined: int = Field(description="Times the service declined it.")
    thumbs_down: int = Field(description="Thumbs-down votes on its answers.")
    last_asked: str = Field(description="When it was last asked or voted on (ISO 8601, UTC).")
    reasons: list[str] = Field(description="The reasons it was declined for.")


class PurgeResponse(BaseModel):
    deleted: int = Field(description="Rows deleted (logged questions, or votes).")
