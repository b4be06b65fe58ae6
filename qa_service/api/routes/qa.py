"""Questions: /v1/ask (verbatim, cited answers or a declined question) and /v1/search (passages)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool

from ...results import AskResult, SearchResult
from ..deps import AnswererDep, RecordsDep, require_api_key
from ..errors import RESPONSES
from ..metrics import CACHE, QUESTIONS
from ..schemas import MAX_DOC_IDS, MAX_QUESTION_CHARS, MAX_TOP_K, AskRequest, AskResponse, SearchResponse

_R = TypeVar("_R", AskResult, SearchResult)

router = APIRouter(tags=["qa"], dependencies=[Depends(require_api_key)], responses=RESPONSES)


def _json(result: AskResult | SearchResult) -> Response:
    """The core's result as its response schema, written as JSON."""
    schema = AskResponse if isinstance(result, AskResult) else SearchResponse
    body = schema.model_validate(result, from_attributes=True).model_dump_json(by_alias=True)
    return Response(content=body, media_type="application/json")


# A repeated question is answered from the cache on the event loop (a dictionary look-up); only a miss
# is handed to a worker thread, which also writes the JSON.
@router.post("/v1/ask", response_model=AskResponse)
async def ask(body: AskRequest, answerer: AnswererDep, records: RecordsDep, request: Request) -> Response:
    """Answer a question with verbatim, cited spans, or decline (`answered: false`, with the reason)."""
    result = answerer.recall_ask(body.question, body.top_k, body.doc_ids)
    CACHE.labels("hit" if result is not None else "miss").inc()
    if result is not None:
        response = _json(result)
    else:
        result, response = await run_in_threadpool(_written, answerer.ask, body.question, body.top_k, body.doc_ids)
    QUESTIONS.labels("answered" if result.answered else "declined").inc()
    records.log_query(kind="ask", question=body.question, answered=result.answered, reason=result.reason,
                      took_ms=result.took_ms, index_version=answerer.index_version,
                      request_id=request.state.request_id)
    return response


def _written(work: Callable[..., _R], *args: object) -> tuple[_R, Response]:
    """``work(*args)`` and its JSON response, both made in the worker thread (off the event loop)."""
    result = work(*args)
    return result, _json(result)


@router.get("/v1/search", response_model=SearchResponse)
async def search(
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUESTION_CHARS, description="The query")],
    answerer: AnswererDep,
    records: RecordsDep,
    request: Request,
    k: Annotated[int, Query(ge=1, le=MAX_TOP_K, description="How many passages")] = 10,
    doc_id: Annotated[
        list[str] | None, Query(max_length=MAX_DOC_IDS, description=f"Only search these documents (at most {MAX_DOC_IDS})")
    ] = None,
) -> Response:
    """Ranked passages for a query (hybrid dense + BM25 retrieval), verbatim and cited."""
    if not q.strip():
        raise RequestValidationError([{"loc": ("query", "q"), "type": "string_too_short", "msg": "empty"}])
    result = answerer.recall_search(q, k, doc_id)
    CACHE.labels("hit" if result is not None else "miss").inc()
    if result is not None:
        response = _json(result)
    else:
        result, response = await run_in_threadpool(_written, answerer.search, q, k, doc_id)
    records.log_query(kind="search", question=q, answered=bool(result.results), reason=None,
                      took_ms=result.took_ms, index_version=answerer.index_version,
                      request_id=request.state.request_id)
    return response
