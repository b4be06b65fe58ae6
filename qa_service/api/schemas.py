"""The HTTP contract: request and response models (also the OpenAPI schema)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, field_validator
from pydantic_core import PydanticCustomError

MAX_QUESTION_CHARS = 2000
MAX_TOP_K = 20
MAX_DOC_IDS = 1000
"""Most doc_ids a question may be restricted to (repeats count; each document is searched once)."""


def _unicode(value: str) -> str:
    """``value`` if it is Unicode text: a JSON escape of a lone surrogate ("\\ud800") decodes to no
    character, and no answer, log line or response can hold it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("invalid_unicode", "a lone surrogate is not a character") from None
    return value


Text = Annotated[str, AfterValidator(_unicode)]
"""A string of a request, refused (``invalid_unicode``) when it holds a lone surrogate."""


class Citation(BaseModel):
    doc_id: Text
    title: Text
    source: Text
    section: Text | None = Field(description="Title of the section the text lies in.")
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
    question: Text = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    top_k: int = Field(3, ge=1, le=MAX_TOP_K)
    doc_ids: list[Text] | None = Field(
        None, max_length=MAX_DOC_IDS, description=f"Only search these documents (at most {MAX_DOC_IDS})."
    )

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


class FeedbackRequest(BaseModel):
    question: Text = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    citation: Citation = Field(description="The citation of the answer voted on, as /v1/ask returned it.")
    answer: Text | None = Field(None, max_length=20_000, description="The answer's text.")
    vote: Literal["up", "down"]
    comment: Text | None = Field(None, max_length=MAX_QUESTION_CHARS)


class FeedbackResponse(BaseModel):
    id: int


class ErrorCode(StrEnum):
    """Every ``error.code`` the API answers with: the one list (README's "HTTP API" lists the same, a test
    holds them together). An error built with a code not listed here fails loudly in the tests."""

    # 400 / 413: the body
    MALFORMED_JSON = "malformed_json"
    BODY_TOO_LARGE = "body_too_large"
    # 422: a request that parsed but is not valid
    MISSING_QUESTION = "missing_question"
    EMPTY_QUESTION = "empty_question"
    QUESTION_TOO_LONG = "question_too_long"
    INVALID_TOP_K = "invalid_top_k"
    INVALID_K = "invalid_k"
    INVALID_QUERY = "invalid_query"
    UNKNOWN_DOC_ID = "unknown_doc_id"  # 404 on /v1/documents/{doc_id}
    TOO_MANY_DOC_IDS = "too_many_doc_ids"
    INVALID_BODY = "invalid_body"
    INVALID_VOTE = "invalid_vote"
    INVALID_CITATION = "invalid_citation"
    COMMENT_TOO_LONG = "comment_too_long"
    INVALID_UNICODE = "invalid_unicode"
    INVALID_REQUEST = "invalid_request"
    # 401 / 403 / 429: who may call, and how often
    MISSING_API_KEY = "missing_api_key"
    INVALID_API_KEY = "invalid_api_key"
    UNAUTHORIZED = "unauthorized"
    ADMIN_DISABLED = "admin_disabled"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_FAILURES = "too_many_failures"
    # 404 / 405 / 409 / 503 / 500
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    RELOAD_REFUSED = "reload_refused"
    NOT_READY = "not_ready"
    HTTP_ERROR = "http_error"
    INTERNAL_ERROR = "internal_error"


class ErrorDetail(BaseModel):
    code: ErrorCode = Field(description="What went wrong, for programs: one of a fixed list.")
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
    deleted: int = Field(description="Logged questions deleted.")
