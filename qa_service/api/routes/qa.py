"""Questions: /v1/ask (verbatim, cited answers or a declined question), /v1/search (passages) and
/v1/passages/{passage_id} (one passage by its id)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ...answering import Answerer, CitationRangeError
from ...results import AskResult, SearchResult, parse_passage_id
from ...scope import QueryOptions
from ..deps import AnswererDep, RecordsDep, require_api_key
from ..errors import RESPONSES, problem
from ..metrics import CACHE, QUESTIONS
from ..queries import check_index_version, options_of
from ..schemas import (
    MAX_DOC_IDS, MAX_FILTER_VALUES, MAX_K, MAX_OFFSET, MAX_QUESTION_CHARS, AskRequest, AskResponse, ErrorResponse,
    PassageResponse, SearchRequest, SearchResponse,
)

_R = TypeVar("_R", AskResult, SearchResult)

router = APIRouter(tags=["qa"], dependencies=[Depends(require_api_key)], responses=RESPONSES)
PINNED = {409: {"model": ErrorResponse, "description": "The request's index_version is not the one served"}}


def to_json(result: AskResult | SearchResult) -> bytes:
    """The core's result as its response schema, written as JSON."""
    schema = AskResponse if isinstance(result, AskResult) else SearchResponse
    return schema.model_validate(result, from_attributes=True).model_dump_json(by_alias=True).encode()


def _json(result: AskResult | SearchResult) -> Response:
    return Response(content=to_json(result), media_type="application/json")


def _written(work: Callable[..., _R], *args: object) -> tuple[_R, Response]:
    """``work(*args)`` and its JSON response, both made in the worker thread (off the event loop)."""
    result = work(*args)
    return result, _json(result)


# A repeated question is answered from the cache on the event loop (a dictionary look-up); only a miss
# is handed to a worker thread, which also writes the JSON.
@router.post("/v1/ask", response_model=AskResponse, operation_id="ask", responses=PINNED)
async def ask(body: AskRequest, answerer: AnswererDep, records: RecordsDep, request: Request) -> Response:
    """Answer a question with verbatim, cited spans, or decline (`answered: false`, with the reason)."""
    check_index_version(body, answerer)
    options = options_of(body)
    result = answerer.recall_ask(body.question, body.top_k, body.doc_ids, options)
    CACHE.labels("hit" if result is not None else "miss").inc()
    if result is not None:
        response = _json(result)
    else:
        result, response = await run_in_threadpool(_written, answerer.ask, body.question, body.top_k, body.doc_ids,
                                                    options)
    QUESTIONS.labels("answered" if result.answered else "declined").inc()
    records.log_query(kind="ask", question=body.question, answered=result.answered, reason=result.reason,
                      took_ms=result.took_ms, index_version=answerer.index_version,
                      request_id=request.state.request_id)
    return response


async def _search(body: SearchRequest, answerer: Answerer, records, request: Request) -> Response:  # noqa: ANN001
    check_index_version(body, answerer)
    options: QueryOptions = options_of(body, body.collapse, body.offset)
    result = answerer.recall_search(body.q, body.k, body.doc_ids, options)
    CACHE.labels("hit" if result is not None else "miss").inc()
    if result is not None:
        response = _json(result)
    else:
        result, response = await run_in_threadpool(_written, answerer.search, body.q, body.k, body.doc_ids, options)
    records.log_query(kind="search", question=body.q, answered=bool(result.results), reason=None,
                      took_ms=result.took_ms, index_version=answerer.index_version,
                      request_id=request.state.request_id)
    return response


Values = Annotated[list[str] | None, Query(max_length=MAX_FILTER_VALUES)]


@router.get("/v1/search", response_model=SearchResponse, operation_id="search", responses=PINNED)
async def search(
    q: Annotated[str, Query(max_length=MAX_QUESTION_CHARS, description="The query")],
    answerer: AnswererDep,
    records: RecordsDep,
    request: Request,
    k: Annotated[int, Query(description=f"How many passages (1 to {MAX_K})")] = 10,
    offset: Annotated[int, Query(description=f"Passages skipped before them (0 to {MAX_OFFSET})")] = 0,
    doc_id: Annotated[
        list[str] | None, Query(description=f"Only search these documents (at most {MAX_DOC_IDS})")
    ] = None,
    section: Values = None,
    source: Values = None,
    subject: Values = None,
    format: Values = None,  # noqa: A002 - the filter field's name
    collapse: Literal["passage", "document", "none"] | None = None,
    subjects: Literal["auto", "off"] = "auto",
    explain: bool = False,
    highlight: bool = False,
    index_version: str | None = None,
) -> Response:
    """Ranked passages for a query (hybrid dense + BM25 retrieval), verbatim and cited. The filter fields
    repeat (`section=Overdose&section=Storage`): any value of a field, every field given."""
    filters = {"section": section, "source": source, "subject": subject, "format": format}
    try:
        body = SearchRequest(
            q=q, k=k, offset=offset, doc_ids=doc_id, collapse=collapse, subjects=subjects, explain=explain,
            highlight=highlight, index_version=index_version,
            filter={name: values for name, values in filters.items() if values} or None,
        )
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("query", *_query_loc(e["loc"]))} for e in exc.errors()]) from None
    return await _search(body, answerer, records, request)


def _query_loc(loc: tuple) -> tuple:
    """A SearchRequest field's location as the query parameter that set it."""
    if loc and loc[0] == "filter":
        return loc[1:]
    if loc and loc[0] == "doc_ids":
        return ("doc_id", *loc[1:])
    return loc


@router.post("/v1/search", response_model=SearchResponse, operation_id="search_post", responses=PINNED)
async def search_post(body: SearchRequest, answerer: AnswererDep, records: RecordsDep, request: Request) -> Response:
    """As `GET /v1/search`, with the query and its options in a JSON body (`filter` an object)."""
    return await _search(body, answerer, records, request)


@router.get("/v1/passages/{passage_id:path}", response_model=PassageResponse, operation_id="get_passage")
async def passage(passage_id: str, answerer: AnswererDep) -> PassageResponse:
    """One passage by its id (`doc_id:start-end`, as search results and answers give it), verbatim and cited."""
    try:
        doc_id, start, end = parse_passage_id(passage_id)
    except ValueError as exc:
        raise problem(422, "invalid_passage_id", str(exc)) from None
    if doc_id not in answerer.bundle.documents:
        raise problem(404, "unknown_doc_id", f"unknown doc_id: {doc_id}")
    try:
        citation, text = answerer.quote(doc_id, start, end)
    except CitationRangeError as exc:
        raise problem(404, "unknown_passage", str(exc)) from None
    return PassageResponse.model_validate(
        {"passage_id": passage_id, "text": text, "citation": citation, "meta": answerer.meta}, from_attributes=True
    )
