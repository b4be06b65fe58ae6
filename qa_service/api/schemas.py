"""The HTTP contract: request and response models (also the OpenAPI schema)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator, BaseModel, BeforeValidator, Field, StrictFloat, StrictInt, StrictStr, field_validator, model_validator,
)
from pydantic_core import PydanticCustomError

MAX_QUESTION_CHARS = 2000
MAX_TOP_K = 20
"""Most answers a question returns."""
MAX_K = 100
"""Most passages a search returns at once (page on with ``offset``)."""
MAX_OFFSET = 10_000
"""Deepest a search pages."""
MAX_FILTER_VALUES = 100
"""Most values one filter field holds."""
MAX_DOC_IDS = 1000
"""Most doc_ids a question may be restricted to (repeats count; each document is searched once)."""
MAX_ANSWER_CHARS = 20_000
"""Longest answer text (and cited span) feedback may be about."""
MAX_DOC_ID_CHARS = 256


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


class Highlight(BaseModel):
    start: int = Field(description="Offset of a matched query term in the document's canonical text.")
    end: int


def _highlights(value: Any) -> Any:
    """The core's ``(start, end)`` pairs as objects."""
    if isinstance(value, list | tuple):
        return [{"start": v[0], "end": v[1]} if isinstance(v, list | tuple) else v for v in value]
    return value


class Meta(BaseModel):
    """What produced this response: the same for every response of one index, code and configuration."""

    index_version: str
    models: dict[str, str | None] = Field(description="The embedding model and the reader (null when off).")
    code_version: str = Field(description="The package's version and a digest of its sources.")
    config_hash: str = Field(description="A hash of every setting that changes results.")


FilterValues = Annotated[list[Annotated[Text, Field(min_length=1)]] | None, Field(max_length=MAX_FILTER_VALUES)]


class FilterSpec(BaseModel):
    """Per field, the values a passage may match (any of them); every field given must match.
    Applied before ranking: nothing outside the filter is scored."""

    model_config = {"extra": "forbid"}

    doc_id: FilterValues = None
    section: FilterValues = Field(None, description="Section titles (headings), ignoring case.")
    source: FilterValues = None
    subject: FilterValues = Field(None, description="What documents are about (a medicine's name), ignoring case.")
    format: FilterValues = Field(None, description="File formats: txt, md, html, pdf.")

    def values(self) -> dict[str, list[str] | None]:
        return self.model_dump()


class QueryFlags(BaseModel):
    """What ask, search and batch lines share past the question."""

    filter: FilterSpec | None = None
    subjects: Literal["auto", "off"] = Field(
        "auto", description="auto: a named medicine narrows retrieval to its documents; off: it does not."
    )
    explain: bool = Field(False, description="Say, for each result, why it ranked where it did.")
    highlight: bool = Field(False, description="Give the offsets of the matched query terms in each result.")
    index_version: str | None = Field(
        None, max_length=64, description="The index version the caller expects: another one answers 409."
    )


class Answer(BaseModel):
    text: str = Field(description="Verbatim: the document's text[start:end].")
    score: float = Field(description="Calibrated confidence in 0..1.")
    confidence: str = Field(description="The score in words: strong, moderate or weak match.")
    citation: Citation
    passage: Passage = Field(description="The retrieved passage around the answer, verbatim.")
    passage_id: str = Field(description="The answer's span, doc_id:start-end: GET /v1/passages/{passage_id}.")
    highlights: Annotated[list[Highlight], BeforeValidator(_highlights)] = Field(
        default_factory=list, description="Matched query terms (with highlight=true).")
    explain: dict[str, Any] | None = Field(None, description="With explain=true: the ranker's features and "
                                           "their contributions, the passage's retrieval scores.")


class Source(BaseModel):
    doc_id: str
    title: str


class AskRequest(QueryFlags):
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


class Choice(BaseModel):
    """A word of the question as near to several names as to one: ask again with one in its place."""

    word: str = Field(description="The word as the question wrote it.")
    names: list[str] = Field(description="The names it could be, as the documents write them.")


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
    notice_subjects: list[str] = Field(
        default_factory=list,
        description="With that notice: the medicines the answers are about (ask again with filter.subject one of them).",
    )
    choices: list[Choice] = Field(
        default_factory=list,
        description="When the question was declined as ambiguous: each word in doubt and the names it could be.",
    )
    answers: list[Answer]
    silent: list[Source] = Field(
        default_factory=list,
        description="Documents about the named medicine that hold no answer clearing the confidence bar: "
        "silent on this question.",
    )
    candidates: int = Field(0, description="Answer units scored.")
    explain: dict[str, Any] | None = Field(None, description="With explain=true: how the question was searched.")
    meta: Meta
    took_ms: float


class SearchRequest(QueryFlags):
    q: Text = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="The query.")
    k: int = Field(10, ge=1, le=MAX_K, description="How many passages.")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Passages skipped before them (paging).")
    collapse: Literal["passage", "document", "none"] | None = Field(
        None, description="passage: touching chunks of a section are one result (the default); document: "
        "one result a document; none: one a chunk.")
    doc_ids: list[Text] | None = Field(
        None, max_length=MAX_DOC_IDS, description=f"Only search these documents (at most {MAX_DOC_IDS}; "
        "an unknown one is an error).")

    @field_validator("q")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("q must not be blank")
        return value


QueryId = Annotated[StrictStr, Field(max_length=256)] | StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)]


class SearchBatchLine(SearchRequest):
    """One query of ``POST /v1/search/batch``: the body of ``POST /v1/search`` (``question`` may stand for
    ``q``) and an id to echo."""

    qid: QueryId | None = Field(None, description="Echoed with the query's result (default: its line number, "
                                "or its position in a JSON list, from 1).")


class AskBatchLine(AskRequest):
    """One query of ``POST /v1/ask/batch``: the body of ``POST /v1/ask`` (``q`` may stand for ``question``)
    and an id to echo."""

    qid: QueryId | None = Field(None, description="Echoed with the query's result (default: its line number, "
                                "or its position in a JSON list, from 1).")


class SearchResult(BaseModel):
    text: str
    score: float
    citation: Citation
    passage_id: str = Field(description="doc_id:start-end, the same across rebuilds of the document.")
    highlights: Annotated[list[Highlight], BeforeValidator(_highlights)] = Field(
        default_factory=list, description="Matched query terms (with highlight=true).")
    explain: dict[str, Any] | None = Field(None, description="With explain=true: the dense and lexical scores, "
                                           "the fusion weight, the expansion and subject bonuses.")


class SearchResponse(BaseModel):
    query: str
    subjects: list[str] = Field(
        default_factory=list,
        description="Medicines or topics the question names that documents are about; the results come from those documents.",
    )
    results: list[SearchResult]
    offset: int = 0
    candidates: int = Field(0, description="Chunks scored for the query.")
    explain: dict[str, Any] | None = Field(None, description="With explain=true: how the query was searched.")
    meta: Meta
    took_ms: float


class PassageResponse(BaseModel):
    passage_id: str
    text: str = Field(description="Verbatim: the document's text[start:end].")
    citation: Citation
    meta: Meta


class DocumentSummary(BaseModel):
    doc_id: str
    title: str
    source: str
    format: str
    length: int
    sections: list[str]
    subjects: list[str] = Field(default_factory=list, description="What the document is about: its medicines' or topic's names.")


class CoverageResponse(BaseModel):
    """What the index covers, for a newcomer: its medicines, its documents, what it can be asked."""

    subjects: list[str] = Field(description="Every medicine or topic the documents are about, alphabetically.")
    documents: int = Field(description="How many documents are indexed.")
    examples: list[str] = Field(
        description="Example questions, built from the sections the documents have (overdose, missed dose, "
        "storage, side effects, ...), each naming a medicine whose document has that section.")


class DocumentDetail(DocumentSummary):
    text: str


class CitedSpan(BaseModel):
    """The citation of the answer voted on. Only ``doc_id``, ``start`` and ``end`` are read; the other
    fields of an answer's citation (title, source, section) may be sent as they came and are ignored:
    the stored citation is rebuilt from the index."""

    doc_id: Text = Field(max_length=MAX_DOC_ID_CHARS)
    start: int = Field(ge=0, description="Offset of the first character in the document's canonical text.")
    end: int = Field(gt=0, description="Offset one past the last character (at most the text's length).")

    @model_validator(mode="after")
    def _a_span(self) -> CitedSpan:
        if self.end <= self.start:
            raise PydanticCustomError("citation_range", "end must be past start")
        if self.end - self.start > MAX_ANSWER_CHARS:
            raise PydanticCustomError("citation_range", f"a span longer than {MAX_ANSWER_CHARS} characters")
        return self


FeedbackReason = Literal["wrong_medicine", "wrong_section", "outdated", "other"]
"""Why an answer was voted down (the records' FEEDBACK_REASONS)."""


class FeedbackRequest(BaseModel):
    question: Text = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    citation: CitedSpan = Field(description="The citation of the answer voted on, as /v1/ask returned it.")
    answer: Text | None = Field(
        None, max_length=MAX_ANSWER_CHARS,
        description="The answer's text (optional; the stored answer is the document's text[start:end]).",
    )
    vote: Literal["up", "down"]
    comment: Text | None = Field(None, max_length=MAX_QUESTION_CHARS)
    reason: FeedbackReason | None = Field(
        None, description='Why the answer is wrong, with vote "down" only (422 `reason_needs_down_vote` otherwise): '
        "wrong_medicine, wrong_section, outdated or other.",
    )

    @model_validator(mode="after")
    def _reason_with_a_down_vote(self) -> FeedbackRequest:
        if self.reason is not None and self.vote != "down":
            raise PydanticCustomError("reason_needs_down_vote", 'a reason goes with vote "down" only')
        return self


class FeedbackResponse(BaseModel):
    id: int


class ErrorCode(StrEnum):
    """Every ``error.code`` the API answers with: the one list (README's "HTTP API" lists the same, a test
    holds them together). An error built with a code not listed here fails loudly in the tests."""

    # 400 / 413: the body
    MALFORMED_JSON = "malformed_json"
    BODY_TOO_LARGE = "body_too_large"
    TOO_MANY_QUERIES = "too_many_queries"  # 413: a batch of more queries than QA_MAX_BATCH_QUERIES
    # 422: a request that parsed but is not valid
    MISSING_QUESTION = "missing_question"
    EMPTY_QUESTION = "empty_question"
    QUESTION_TOO_LONG = "question_too_long"
    INVALID_TOP_K = "invalid_top_k"
    INVALID_K = "invalid_k"
    INVALID_QUERY = "invalid_query"
    INVALID_OFFSET = "invalid_offset"
    INVALID_FILTER = "invalid_filter"
    INVALID_FORMAT = "invalid_format"  # an admin report's download format: json or csv
    INVALID_PASSAGE_ID = "invalid_passage_id"
    UNKNOWN_DOC_ID = "unknown_doc_id"  # 404 on /v1/documents/{doc_id}
    TOO_MANY_DOC_IDS = "too_many_doc_ids"
    INVALID_BODY = "invalid_body"
    INVALID_VOTE = "invalid_vote"
    INVALID_CITATION = "invalid_citation"
    CITATION_OUT_OF_RANGE = "citation_out_of_range"
    DOC_ID_TOO_LONG = "doc_id_too_long"
    COMMENT_TOO_LONG = "comment_too_long"
    INVALID_COMMENT = "invalid_comment"
    ANSWER_TOO_LONG = "answer_too_long"
    INVALID_ANSWER = "invalid_answer"
    INVALID_REASON = "invalid_reason"  # feedback's reason: not one of the four
    REASON_NEEDS_DOWN_VOTE = "reason_needs_down_vote"  # feedback's reason with an up vote
    INVALID_UNICODE = "invalid_unicode"
    INVALID_REQUEST = "invalid_request"
    EMPTY_BATCH = "empty_batch"
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
    INDEX_VERSION_MISMATCH = "index_version_mismatch"
    UNKNOWN_PASSAGE = "unknown_passage"
    NOT_READY = "not_ready"
    RECORDS_UNAVAILABLE = "records_unavailable"
    HTTP_ERROR = "http_error"
    INTERNAL_ERROR = "internal_error"


class ErrorDetail(BaseModel):
    code: ErrorCode = Field(description="What went wrong, for programs: one of a fixed list.")
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class SearchBatchItem(BaseModel):
    """One line of ``POST /v1/search/batch``'s answer: the query's id and either its result (the body
    ``POST /v1/search`` answers it with) or its error."""

    qid: QueryId
    result: SearchResponse | None = None
    error: ErrorDetail | None = None


class AskBatchItem(BaseModel):
    """One line of ``POST /v1/ask/batch``'s answer: the query's id and either its result (the body
    ``POST /v1/ask`` answers it with) or its error."""

    qid: QueryId
    result: AskResponse | None = None
    error: ErrorDetail | None = None


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


class Wording(BaseModel):
    question: str = Field(description="One wording (its latest form, ignoring case and spacing).")
    count: int = Field(description="Times it was put so.")


class UnansweredGroup(BaseModel):
    """Declined or voted-down questions with the same search terms (the analyser's stemmed content words)."""

    question: str = Field(description="The wording used most often (of equals, the latest).")
    terms: list[str] = Field(description="The search terms the group's wordings share, sorted; empty for a "
                             "question with none (then it is grouped with its own wording only).")
    count: int = Field(description="declined + thumbs_down.")
    declined: int = Field(description="Times the service declined it.")
    thumbs_down: int = Field(description="Thumbs-down votes on its answers.")
    last_asked: str = Field(description="When it was last asked or voted on (ISO 8601, UTC).")
    reasons: list[str] = Field(description="The reasons it was declined for (once each, ignoring case).")
    wordings: list[Wording] = Field(description="Every wording of the group, most frequent first.")


class AskedGroup(BaseModel):
    """Asked questions (``/v1/ask``) with the same search terms."""

    question: str = Field(description="The wording used most often (of equals, the latest).")
    terms: list[str] = Field(description="The search terms the group's wordings share, sorted.")
    count: int = Field(description="Times asked.")
    answered: int = Field(description="Times answered (the rest were declined).")
    last_asked: str = Field(description="When it was last asked (ISO 8601, UTC).")
    wordings: list[Wording] = Field(description="Every wording of the group, most frequent first.")


class ThumbsDown(BaseModel):
    """A thumbs-down vote as stored: the answer and citation are the index's when the vote was given."""

    id: int
    created_at: str = Field(description="When it was given (ISO 8601, UTC).")
    question: str
    reason: FeedbackReason | None = Field(description="Why the voter found the answer wrong, when they said.")
    comment: str | None
    answer: str | None = Field(description="The answer's text: the document's text[start:end].")
    citation: Citation
