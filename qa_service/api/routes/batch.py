"""Batches: ``POST /v1/search/batch`` and ``POST /v1/ask/batch``.

The body is NDJSON (one query a line, as ``POST /v1/search`` or ``POST /v1/ask`` takes it, with a ``qid``)
or a JSON list of them. The answer streams one NDJSON line per query, in input order:
``{"qid": ..., "result": <the single call's body>}`` or ``{"qid": ..., "error": {"code", "message"}}``.
A bad query gets its own error line and never fails the batch; each query counts against the rate limit.

The queries run a few at a time (each miss of the answer cache in a worker thread, as a single call's),
so that their question encodes meet in the encoder's batches (qa_service/batching.py) and their Python
work overlaps the model's; the lines are written in input order as they are done.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from ...answering import Answerer, UnknownDocumentError
from ...batching import encoded_alone
from ...records import Records
from ...results import AskResult, SearchResult
from ..deps import AnswererDep, QueryBudget, QueryBudgetDep, RecordsDep
from ..errors import RESPONSES, describe, problem
from ..metrics import CACHE, QUESTIONS
from ..queries import options_of
from ..schemas import AskBatchItem, AskBatchLine, SearchBatchItem, SearchBatchLine
from .qa import to_json

log = logging.getLogger("qa_service")

MEDIA_TYPE = "application/x-ndjson"
PATHS = ("/v1/search/batch", "/v1/ask/batch")
"""The batch endpoints: their bodies have a limit of their own (QA_MAX_BATCH_BODY_BYTES)."""
LOOKAHEAD = 64
"""Most queries started ahead of the line being written (their results wait in memory to be written in order)."""

router = APIRouter(tags=["qa"], responses=RESPONSES)


def batch_concurrency(request_threads: int = 0) -> int:
    """Queries of one batch computed at once: as many as the process answers requests at once."""
    return request_threads or (os.cpu_count() or 1) + 1


@dataclass(frozen=True, slots=True)
class Line:
    """One query of a batch: its id, and the request it holds or why it is refused."""

    qid: Any
    request: SearchBatchLine | AskBatchLine | None = None
    error: tuple[str, str] | None = None


class _Malformed:
    def __init__(self, message: str) -> None:
        self.message = message


def _items(body: bytes, content_type: str, most: int) -> list[tuple[int, Any]]:
    """(line number or position, from 1; the query's JSON value, or a _Malformed) of each query in the body:
    NDJSON lines (blank ones skipped) or a JSON list. The whole batch is refused (400, 413, 422) only when
    it can't be split into queries, holds none, or holds more than ``most``."""
    media = content_type.split(";")[0].strip().lower()
    text_start = body.lstrip()[:1]
    if media == "application/json" or (text_start == b"[" and media not in (MEDIA_TYPE, "application/jsonl")):
        try:
            values = json.loads(body)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than Python's stack
            raise problem(400, "malformed_json", f"the request body is not valid JSON: {exc}") from None
        if not isinstance(values, list):
            raise problem(422, "invalid_body", "a batch is a JSON list of queries, or NDJSON: one query a line "
                          "(Content-Type: application/x-ndjson)")
        items = list(enumerate(values, 1))
    else:
        items = []
        for number, raw in enumerate(body.split(b"\n"), 1):
            if not raw.strip():
                continue
            if len(items) == most:  # counted on: refused below, without reading the rest
                items.append((number, None))
                break
            try:
                items.append((number, json.loads(raw)))
            except (ValueError, RecursionError) as exc:
                items.append((number, _Malformed(f"line {number} is not valid JSON: {exc}")))
    if not items:
        raise problem(422, "empty_batch", "the batch holds no query: send one JSON object a line "
                      "(application/x-ndjson) or a JSON list of them")
    if len(items) > most:
        raise problem(413, "too_many_queries", f"a batch may hold at most {most} queries (QA_MAX_BATCH_QUERIES); "
                      "split it")
    return items


def _usable_qid(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        return len(value) <= 256
    return isinstance(value, int) or (isinstance(value, float) and value == value and abs(value) != float("inf"))


def _line(position: int, value: Any, model: type[BaseModel], alias: str, field: str) -> Line:
    """The query ``value`` validated as ``model`` (``alias`` taken for ``field``), or its error."""
    if isinstance(value, _Malformed):
        return Line(position, error=("malformed_json", value.message))
    if not isinstance(value, dict):
        return Line(position, error=("invalid_body", "a query must be a JSON object"))
    qid = value.get("qid") if _usable_qid(value.get("qid")) else position
    if alias in value:
        if field in value:
            return Line(qid, error=("invalid_request", f"give '{field}' or '{alias}', not both"))
        value = {**value, field: value[alias]}
        del value[alias]
    try:
        request = model.model_validate(value)
    except ValidationError as exc:
        _, code, message = describe(list(exc.errors()))
        return Line(qid, error=(code, message))
    return Line(qid if request.qid is None else request.qid, request=request)  # type: ignore[attr-defined]


async def _lines(request: Request, model: type[BaseModel], alias: str, field: str, budget: QueryBudget,
                 answerer: Answerer) -> list[Line]:
    """The batch's queries in order, each counted against the caller's rate limit; a query beyond it,
    or pinned to another index version, is refused on its own line."""
    body = await request.body()
    items = _items(body, request.headers.get("content-type", ""), request.app.state.service.settings.max_batch_queries)
    lines = []
    for position, value in items:
        refused = budget.spend()
        if refused is not None:
            lines.append(Line(value.get("qid") if isinstance(value, dict) and _usable_qid(value.get("qid"))
                              else position, error=("rate_limited", refused)))
            continue
        line = _line(position, value, model, alias, field)
        wanted = getattr(line.request, "index_version", None)
        if wanted is not None and wanted != answerer.index_version:
            line = Line(line.qid, error=("index_version_mismatch",
                                         f"this server serves index {answerer.index_version}, not {wanted}"))
        lines.append(line)
    return lines


def _error_line(qid: Any, code: str, message: str) -> bytes:
    return json.dumps({"qid": qid, "error": {"code": code, "message": message}}, separators=(",", ":")).encode() + b"\n"


_LINE_BREAKS = ((b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"), (b"\xc2\x85", b"\\u0085"))


def _one_line(body: bytes) -> bytes:
    """JSON that reads as one line to every line splitter: JSON escapes CR and LF but writes U+2028, U+2029
    and NEL as they are, where ``str.splitlines`` (and editors) break lines. In UTF-8 their bytes can only be
    those characters, inside strings, where their escapes mean the same."""
    for raw, escaped in _LINE_BREAKS:
        if raw in body:
            body = body.replace(raw, escaped)
    return body


def _result_line(qid: Any, body: bytes) -> bytes:
    return b'{"qid":' + json.dumps(qid).encode() + b',"result":' + _one_line(body) + b"}\n"


def _made(memo: dict, work: Callable[..., AskResult | SearchResult],
          *args: object) -> tuple[AskResult | SearchResult, bytes]:
    """``work(*args)`` and its JSON, both made in the worker thread; its texts encoded alone, as a single
    call's are when nothing else is asked (batched with the other lines', its scores could differ in the
    last digit, and from one run of the batch to the next), each text once a batch (``memo``)."""
    with encoded_alone(memo):
        result = work(*args)
    return result, to_json(result)


class _Batch:
    """Runs a batch's queries, a few at a time, and writes their lines in input order."""

    def __init__(self, kind: str, answerer: Answerer, records: Records, request_id: str, concurrency: int) -> None:
        self.kind = kind
        self.answerer = answerer
        self.records = records
        self.request_id = request_id
        self.slots = asyncio.Semaphore(concurrency)
        self.vectors: dict = {}
        """The batch's query vectors by text: each text is encoded once a batch."""

    async def run(self, line: Line) -> bytes:
        answerer, request = self.answerer, line.request
        if self.kind == "search":
            args = (request.q, request.k, request.doc_ids, options_of(request, request.collapse, request.offset))
            recall, compute, question = answerer.recall_search, answerer.search, request.q
        else:
            args = (request.question, request.top_k, request.doc_ids, options_of(request))
            recall, compute, question = answerer.recall_ask, answerer.ask, request.question
        try:
            result = recall(*args)
            CACHE.labels("hit" if result is not None else "miss").inc()
            if result is not None:
                body = to_json(result)
            else:
                async with self.slots:
                    result, body = await run_in_threadpool(_made, self.vectors, compute, *args)
        except UnknownDocumentError as exc:
            return _error_line(line.qid, "unknown_doc_id", str(exc))
        except Exception:  # noqa: BLE001 - one query's bug never fails the others
            log.exception("unhandled error in a batch query")
            return _error_line(line.qid, "internal_error", "an unexpected error occurred; it has been logged")
        if isinstance(result, AskResult):
            QUESTIONS.labels("answered" if result.answered else "declined").inc()
            answered, reason = result.answered, result.reason
        else:
            answered, reason = bool(result.results), None
        self.records.log_query(kind=self.kind, question=question, answered=answered, reason=reason,
                               took_ms=result.took_ms, index_version=answerer.index_version,
                               request_id=self.request_id)
        return _result_line(line.qid, body)

    def start(self, line: Line) -> asyncio.Future[bytes]:
        if line.error is not None:
            done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            done.set_result(_error_line(line.qid, *line.error))
            return done
        return asyncio.ensure_future(self.run(line))

    async def stream(self, lines: Sequence[Line]) -> AsyncIterator[bytes]:
        window: deque[asyncio.Future[bytes]] = deque()
        try:
            for line in lines:
                window.append(self.start(line))
                if len(window) >= LOOKAHEAD or window[0].done():
                    yield await self._written(window)
            while window:
                yield await self._written(window)
        finally:
            for pending in window:
                pending.cancel()

    @staticmethod
    async def _written(window: deque[asyncio.Future[bytes]]) -> bytes:
        """The first line's bytes once it is done, and those of every line done after it."""
        out = [await window.popleft()]
        while window and window[0].done():
            out.append(window.popleft().result())
        return b"".join(out)


def _inline(model: type[BaseModel]) -> dict:
    """``model``'s JSON schema with its definitions written in place (no reference out of it)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


def _openapi(line: type[BaseModel], item: type[BaseModel], single: str) -> dict:
    batch = {"type": "array", "items": _inline(line), "minItems": 1}
    return {
        "openapi_extra": {"requestBody": {"required": True, "content": {
            MEDIA_TYPE: {"schema": batch}, "application/json": {"schema": batch}}}},
        "responses": {200: {"description": f"One line a query, in input order: its `qid` and the `result` "
                            f"{single} answers it with, or an `error`",
                            "content": {MEDIA_TYPE: {"schema": {"type": "array", "items": _inline(item)}}}}},
    }


async def _answer(kind: str, request: Request, budget: QueryBudget, answerer: Answerer,
                  records: Records) -> StreamingResponse:
    model, alias, field = (SearchBatchLine, "question", "q") if kind == "search" else (AskBatchLine, "q", "question")
    lines = await _lines(request, model, alias, field, budget, answerer)
    settings = request.app.state.service.settings
    batch = _Batch(kind, answerer, records, request.state.request_id,
                   batch_concurrency(settings.serving.request_threads))
    return StreamingResponse(batch.stream(lines), media_type=MEDIA_TYPE)


@router.post("/v1/search/batch", operation_id="search_batch", response_class=StreamingResponse,
             **_openapi(SearchBatchLine, SearchBatchItem, "`POST /v1/search`"))
async def search_batch(request: Request, budget: QueryBudgetDep, answerer: AnswererDep,
                       records: RecordsDep) -> StreamingResponse:
    """Many searches in one request: NDJSON (`application/x-ndjson`, one `POST /v1/search` body a line,
    `question` may stand for `q`, with a `qid` to echo) or a JSON list of them, at most `QA_MAX_BATCH_QUERIES`.
    The answer streams one NDJSON line per query, in input order: `{"qid", "result"}` with exactly the body
    `POST /v1/search` answers, or `{"qid", "error": {"code", "message"}}` for a query that one would refuse.
    Each query counts against the rate limit (beyond it: `rate_limited` on its line)."""
    return await _answer("search", request, budget, answerer, records)


@router.post("/v1/ask/batch", operation_id="ask_batch", response_class=StreamingResponse,
             **_openapi(AskBatchLine, AskBatchItem, "`POST /v1/ask`"))
async def ask_batch(request: Request, budget: QueryBudgetDep, answerer: AnswererDep,
                    records: RecordsDep) -> StreamingResponse:
    """Many questions in one request, as `POST /v1/search/batch` (`q` may stand for `question`): one line
    per question, in input order, `{"qid", "result"}` with exactly the body `POST /v1/ask` answers, or
    `{"qid", "error"}`."""
    return await _answer("ask", request, budget, answerer, records)
