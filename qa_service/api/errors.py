"""One error envelope for every failure: ``{"error": {"code": ..., "message": ...}}`` with the status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..answering import CitationRangeError, UnknownDocumentError
from ..records import RecordsUnavailable
from .schemas import (
    MAX_ANSWER_CHARS, MAX_DOC_ID_CHARS, MAX_DOC_IDS, MAX_K, MAX_OFFSET, MAX_QUESTION_CHARS, MAX_TOP_K, ErrorCode, ErrorResponse,
)

log = logging.getLogger("qa_service")

RESPONSES = {
    400: {"model": ErrorResponse, "description": "Malformed request"},
    401: {"model": ErrorResponse, "description": "Missing or wrong API key or admin token"},
    403: {"model": ErrorResponse, "description": "Disabled on this server (no admin token set)"},
    404: {"model": ErrorResponse, "description": "Not found"},
    413: {"model": ErrorResponse, "description": "Request body too large"},
    422: {"model": ErrorResponse, "description": "Invalid request"},
    429: {"model": ErrorResponse, "description": "Too many requests (see Retry-After)"},
    503: {"model": ErrorResponse, "description": "Index not loaded yet, or the records file can't be written now"},
}
"""Error responses documented on every route of the API."""


_CODES = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}

RECORDS_RETRY_AFTER_S = 5
"""Retry-After of a 503 records_unavailable: a lock on the records file is usually brief."""


def problem(status: int, code: ErrorCode | str, message: str, headers: dict[str, str] | None = None) -> HTTPException:
    """An exception the envelope handler answers as ``status`` with ``code`` (one of ErrorCode) and ``message``."""
    return HTTPException(status, detail={"code": ErrorCode(code), "message": message}, headers=headers)


def error_response(status: int, code: ErrorCode | str, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    content = {"error": {"code": ErrorCode(code).value, "message": message}}
    return JSONResponse(status_code=status, content=content, headers=headers)


def describe(errors: list[dict]) -> tuple[int, str, str]:
    """Status, code and message for a request that failed validation."""
    for err in errors:
        if err.get("type") == "json_invalid":
            return 400, "malformed_json", f"the request body is not valid JSON: {err.get('msg', '')}".rstrip(": ")
    err = errors[0]
    loc = [str(part) for part in err.get("loc", ()) if part not in ("body", "query", "path")]
    field = ".".join(loc) or "body"
    kind = err.get("type", "")
    if kind in ("string_unicode", "invalid_unicode"):
        return 422, "invalid_unicode", (f"'{field}' is not Unicode text: it holds a lone surrogate (an unpaired "
                                        "\\ud800-\\udfff escape), which is no character")
    if field in ("doc_ids", "doc_id") and kind == "too_long":
        return 422, "too_many_doc_ids", f"'{field}' may name at most {MAX_DOC_IDS} documents"
    if field == "question":
        if kind == "missing":
            return 422, "missing_question", "the request needs a 'question'"
        if kind == "string_too_long":
            return 422, "question_too_long", f"the question is longer than {MAX_QUESTION_CHARS} characters"
        if kind in ("string_too_short", "value_error"):
            return 422, "empty_question", "the question is empty"
    if field == "vote":
        return 422, "invalid_vote", "'vote' must be \"up\" or \"down\""
    if kind == "reason_needs_down_vote":
        return 422, "reason_needs_down_vote", "a 'reason' is given with vote \"down\" only (send null with an up vote)"
    if field == "reason":
        return 422, "invalid_reason", ("'reason' must be \"wrong_medicine\", \"wrong_section\", \"outdated\", "
                                       "\"other\" or null")
    if field.startswith("citation"):
        if field == "citation.doc_id" and kind == "string_too_long":
            return 422, "doc_id_too_long", f"the citation's doc_id is longer than {MAX_DOC_ID_CHARS} characters"
        if field in ("citation", "citation.start", "citation.end") and kind in (
            "greater_than_equal", "greater_than", "citation_range"
        ):
            return 422, "citation_out_of_range", (
                f"the citation's offsets are no span of a document ({field}: {err.get('msg', '')}); "
                "0 <= start < end <= the text's length is needed"
            )
        return 422, "invalid_citation", f"'citation' must be an answer's citation object ({field}: {err.get('msg', '')})"
    if field in ("comment", "answer"):
        limit = MAX_QUESTION_CHARS if field == "comment" else MAX_ANSWER_CHARS
        if kind in ("string_too_long", "too_long"):  # the latter: the limit of an optional Text
            return 422, f"{field}_too_long", f"the {field} is longer than {limit} characters"
        return 422, f"invalid_{field}", f"'{field}' must be a string (or null) of at most {limit} characters"
    if field in ("top_k", "k"):
        return 422, f"invalid_{field}", f"'{field}' must be an integer from 1 to {MAX_TOP_K if field == 'top_k' else MAX_K}"
    if field == "offset":
        return 422, "invalid_offset", f"'offset' must be an integer from 0 to {MAX_OFFSET}"
    if field == "format" and kind == "literal_error":  # a report's download format (a filter's is a list)
        return 422, "invalid_format", "'format' must be \"json\" or \"csv\""
    if field.startswith("filter") or field.split(".")[0] in ("section", "source", "subject", "format"):
        return 422, "invalid_filter", (f"'{field}': {err.get('msg', 'invalid value')} (a filter maps doc_id, "
                                       "section, source, subject or format to a list of values)")
    if field == "q":
        return 422, "invalid_query", "the query parameter 'q' must be a non-empty string"
    if kind == "model_attributes_type" or field == "body":
        return 422, "invalid_body", "the request body must be a JSON object"
    return 422, "invalid_request", f"{field}: {err.get('msg', 'invalid value')}"


def install_error_handlers(app: FastAPI) -> None:
    """Every error the app raises answers in the envelope."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(*describe(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if isinstance(exc.detail, dict):
            return error_response(exc.status_code, exc.detail["code"], exc.detail["message"], headers)
        code = _CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), headers)

    @app.exception_handler(UnknownDocumentError)
    async def _unknown_doc(_: Request, exc: UnknownDocumentError) -> JSONResponse:
        return error_response(422, "unknown_doc_id", str(exc))

    @app.exception_handler(CitationRangeError)
    async def _out_of_range(_: Request, exc: CitationRangeError) -> JSONResponse:
        return error_response(422, "citation_out_of_range", str(exc))

    @app.exception_handler(RecordsUnavailable)
    async def _records_unavailable(_: Request, exc: RecordsUnavailable) -> JSONResponse:
        log.warning("records unavailable: %s", exc)
        return error_response(
            503, "records_unavailable", "the records file can't be written or read now; try again shortly",
            {"Retry-After": str(RECORDS_RETRY_AFTER_S)},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover
        log.exception("unhandled error")
        return error_response(500, "internal_error", "an unexpected error occurred; it has been logged")
