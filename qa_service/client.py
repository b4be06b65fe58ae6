"""A typed Python client of the HTTP API, over httpx.

One method an operation of the API's OpenAPI schema, named after its ``operationId``, taking the
schema's parameters under their own names and returning the API's own response models
(``qa_service.api.schemas``: the client reads the same models the server writes). An error response
raises :class:`QAError` with the status and the envelope's ``code`` and ``message``; a failure to
reach the server raises httpx's own ``httpx.TransportError``.

    with QAClient("http://127.0.0.1:8000", api_key=None) as qa:
        answers = qa.ask("How is an overdose of baclofen treated?", top_k=5, highlight=True)
        for answer in answers.answers:
            print(answer.text, answer.citation.doc_id, answer.passage_id)
        hits = qa.search_post("overdose", k=20, filter={"subject": ["baclofen"]})

An option left out (``None``) is not sent: the server's default applies. Nothing is checked here
that the server checks: a bad value comes back as a ``QAError`` with the server's code.

Left out: the admin operations (``/v1/admin/*``, the admin token's) and the operators' ones
(``/healthz``, ``/readyz``, ``/metrics``); tests/qa_service/test_client.py holds this list to the
schema.

The batch methods send their queries as one NDJSON body and yield the server's lines as they arrive,
in input order, while the response streams (consume or close the iterator to free the connection):

    with QAClient("http://127.0.0.1:8000") as qa:
        for item in qa.search_batch([{"qid": "q1", "q": "overdose", "k": 10}, {"qid": "q2", "q": "half-life"}]):
            print(item.qid, item.error or [r.passage_id for r in item.result.results])
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from .api.schemas import (
    AskBatchItem, AskBatchLine, AskResponse, Citation, CitedSpan, CoverageResponse, DocumentDetail, DocumentSummary,
    FeedbackReason, FeedbackResponse, FilterSpec, PassageResponse, SearchBatchItem, SearchBatchLine, SearchResponse,
)

__all__ = ["DEFAULT_TIMEOUT_S", "OPERATIONS", "QAClient", "QAError"]

DEFAULT_TIMEOUT_S = 30.0
"""Seconds to wait for a response (a first question on a cold, busy server takes a few)."""

OPERATIONS: dict[str, tuple[str, str]] = {
    "ask": ("POST", "/v1/ask"),
    "search": ("GET", "/v1/search"),
    "search_post": ("POST", "/v1/search"),
    "get_passage": ("GET", "/v1/passages/{passage_id}"),
    "search_batch": ("POST", "/v1/search/batch"),
    "ask_batch": ("POST", "/v1/ask/batch"),
    "list_documents": ("GET", "/v1/documents"),
    "get_document": ("GET", "/v1/documents/{doc_id}"),
    "get_coverage": ("GET", "/v1/coverage"),
    "send_feedback": ("POST", "/v1/feedback"),
}
"""operationId: (HTTP method, path) of every operation the client calls; its methods bear these names."""

_T = TypeVar("_T")
_ADAPTERS: dict[Any, TypeAdapter] = {}

Collapse = Literal["passage", "document", "none"]
Subjects = Literal["auto", "off"]
Filter = FilterSpec | Mapping[str, Sequence[str] | None]
NDJSON = "application/x-ndjson"


class QAError(Exception):
    """An error the API answered: ``status`` (HTTP), ``code`` (one of the API's error codes, e.g.
    ``unknown_doc_id``; ``http_error`` when the response was no error envelope, as a proxy's may be),
    ``message``, and ``retry_after`` (seconds, from ``Retry-After`` on a 429 or 503) when given."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after

    @classmethod
    def from_response(cls, response: httpx.Response) -> QAError:
        try:
            error = response.json()["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "http_error", response.text[:500] or response.reason_phrase
        try:
            retry_after: float | None = float(response.headers["Retry-After"])
        except (KeyError, ValueError):
            retry_after = None
        return cls(response.status_code, code, message, retry_after)


def _given(**values: Any) -> dict[str, Any]:
    """The values set (not None), models as JSON-ready dicts without their unset (None) fields."""
    return {name: value.model_dump(mode="json", exclude_none=True) if isinstance(value, BaseModel) else value
            for name, value in values.items() if value is not None}


def _adapter(kind: type[_T]) -> TypeAdapter[_T]:
    if kind not in _ADAPTERS:
        _ADAPTERS[kind] = TypeAdapter(kind)
    return _ADAPTERS[kind]


class QAClient:
    """The API at ``base_url`` (``http://HOST:8000``), with ``api_key`` sent as ``Authorization: Bearer``
    where the server has keys set. Close it (or use it in a ``with`` block) to free its connections."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float | None = DEFAULT_TIMEOUT_S, *,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout,
                                  transport=transport)

    def __enter__(self) -> QAClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, operation: str, returns: type[_T], *, path: Mapping[str, str] | None = None,
              params: Mapping[str, Any] | None = None, json: Mapping[str, Any] | None = None) -> _T:
        method, template = OPERATIONS[operation]
        url = template.format(**{name: quote(str(value), safe="") for name, value in (path or {}).items()})
        response = self._http.request(method, url, params=params or None, json=json)
        if not response.is_success:
            raise QAError.from_response(response)
        return _adapter(returns).validate_json(response.content)

    # --- questions -------------------------------------------------------------------------------

    def ask(self, question: str, *, top_k: int | None = None, doc_ids: Sequence[str] | None = None,
            filter: Filter | None = None, subjects: Subjects | None = None,  # noqa: A002 - the API's name
            explain: bool | None = None, highlight: bool | None = None,
            index_version: str | None = None) -> AskResponse:
        """``POST /v1/ask``: verbatim, cited answers, or the question declined (``answered`` false)."""
        body = _given(question=question, top_k=top_k, doc_ids=doc_ids, filter=filter, subjects=subjects,
                      explain=explain, highlight=highlight, index_version=index_version)
        return self._call("ask", AskResponse, json=body)

    def search(self, q: str, *, k: int | None = None, offset: int | None = None,
               doc_id: Sequence[str] | None = None, section: Sequence[str] | None = None,
               source: Sequence[str] | None = None, subject: Sequence[str] | None = None,
               format: Sequence[str] | None = None,  # noqa: A002 - the API's name
               collapse: Collapse | None = None, subjects: Subjects | None = None, explain: bool | None = None,
               highlight: bool | None = None, index_version: str | None = None) -> SearchResponse:
        """``GET /v1/search``: ranked passages, the filters as repeated query parameters (any value of a
        field, every field given). :meth:`search_post` takes the same in a JSON body."""
        params = _given(q=q, k=k, offset=offset, doc_id=doc_id, section=section, source=source, subject=subject,
                        format=format, collapse=collapse, subjects=subjects, explain=explain, highlight=highlight,
                        index_version=index_version)
        return self._call("search", SearchResponse, params=params)

    def search_post(self, q: str, *, k: int | None = None, offset: int | None = None,
                    collapse: Collapse | None = None, doc_ids: Sequence[str] | None = None,
                    filter: Filter | None = None,  # noqa: A002 - the API's name
                    subjects: Subjects | None = None, explain: bool | None = None, highlight: bool | None = None,
                    index_version: str | None = None) -> SearchResponse:
        """``POST /v1/search``: as :meth:`search`, with ``filter`` one object (a :class:`FilterSpec` or a
        dict of field to values) and no limit of a URL's length on ``doc_ids``."""
        body = _given(q=q, k=k, offset=offset, collapse=collapse, doc_ids=doc_ids, filter=filter, subjects=subjects,
                      explain=explain, highlight=highlight, index_version=index_version)
        return self._call("search_post", SearchResponse, json=body)

    def get_passage(self, passage_id: str) -> PassageResponse:
        """``GET /v1/passages/{passage_id}``: the passage ``doc_id:start-end`` (as results and answers
        name it), verbatim and cited."""
        return self._call("get_passage", PassageResponse, path={"passage_id": passage_id})

    def search_batch(self, queries: Iterable[SearchBatchLine | Mapping[str, Any]]) -> Iterator[SearchBatchItem]:
        """``POST /v1/search/batch``: each query a :class:`SearchBatchLine` or a dict with the fields of
        :meth:`search_post` (and ``qid``); yields one :class:`SearchBatchItem` a query, in input order,
        with the result :meth:`search_post` would return or the error it would raise."""
        return self._stream("search_batch", SearchBatchItem, queries)

    def ask_batch(self, questions: Iterable[AskBatchLine | Mapping[str, Any]]) -> Iterator[AskBatchItem]:
        """``POST /v1/ask/batch``: as :meth:`search_batch`, each line the fields of :meth:`ask` (and ``qid``)."""
        return self._stream("ask_batch", AskBatchItem, questions)

    def _stream(self, operation: str, item: type[_T], lines: Iterable[BaseModel | Mapping[str, Any]]) -> Iterator[_T]:
        body = b"".join(
            (line.model_dump_json(exclude_none=True) if isinstance(line, BaseModel) else json.dumps(_given(**line)))
            .encode() + b"\n" for line in lines)
        method, url = OPERATIONS[operation]
        request = self._http.build_request(method, url, content=body,
                                           headers={"Content-Type": NDJSON, "Accept": NDJSON})
        response = self._http.send(request, stream=True)  # errors before the first line raise here

        def items() -> Iterator[_T]:
            try:
                for text in response.iter_lines():
                    if text:
                        yield _adapter(item).validate_json(text)
            finally:
                response.close()

        if not response.is_success:
            response.read()
            response.close()
            raise QAError.from_response(response)
        return items()

    # --- documents -------------------------------------------------------------------------------

    def list_documents(self) -> list[DocumentSummary]:
        """``GET /v1/documents``: every indexed document, without its text."""
        return self._call("list_documents", list[DocumentSummary])

    def get_document(self, doc_id: str) -> DocumentDetail:
        """``GET /v1/documents/{doc_id}``: one document with its canonical text (what offsets index)."""
        return self._call("get_document", DocumentDetail, path={"doc_id": doc_id})

    def get_coverage(self) -> CoverageResponse:
        """``GET /v1/coverage``: the medicines the documents are about, how many documents, example questions."""
        return self._call("get_coverage", CoverageResponse)

    # --- feedback --------------------------------------------------------------------------------

    def send_feedback(self, question: str, citation: Citation | CitedSpan | Mapping[str, Any],
                      vote: Literal["up", "down"], *, answer: str | None = None,
                      comment: str | None = None, reason: FeedbackReason | None = None) -> FeedbackResponse:
        """``POST /v1/feedback``: a vote on an answer, given by its ``citation`` (as the answer has it;
        only ``doc_id``, ``start`` and ``end`` are read); ``reason`` with a down vote only."""
        span = citation.model_dump(mode="json") if isinstance(citation, BaseModel) else dict(citation)
        span = {name: span[name] for name in ("doc_id", "start", "end") if name in span}  # what is read
        body = _given(question=question, citation=span, answer=answer, vote=vote, comment=comment, reason=reason)
        return self._call("send_feedback", FeedbackResponse, json=body)
