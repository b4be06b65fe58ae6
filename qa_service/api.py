"""The HTTP service: FastAPI app factory, error envelope, readiness."""

from __future__ import annotations

import logging
import os
import secrets
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


from . import __version__
from .answering import Answerer, UnknownDocumentError
from .feedback import FeedbackStore
from .service import ServiceError, build_answerer
from .schemas import (
    MAX_QUESTION_CHARS,
    MAX_TOP_K,
    AskRequest,
    AskResponse,
    DocumentDetail,
    DocumentSummary,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    SearchResponse,
)
from .settings import ServiceSettings

log = logging.getLogger("qa_service")

STATIC = Path(__file__).parent / "static"
# Our own pages and the widget's files: no inline script or style, nothing from elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)
_bearer = HTTPBearer(auto_error=False, description="The admin token (setting QA_ADMIN_TOKEN)")
ERRORS = {
    400: {"model": ErrorResponse, "description": "Malformed request"},
    401: {"model": ErrorResponse, "description": "Missing or wrong admin token"},
    403: {"model": ErrorResponse, "description": "Feedback export disabled (no admin token set)"},
    404: {"model": ErrorResponse, "description": "Not found"},
    422: {"model": ErrorResponse, "description": "Invalid request"},
    503: {"model": ErrorResponse, "description": "Index not loaded yet"},
}


class ServiceState:
    """Loads the bundle and model in the background; the app is ready when it's done."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.answerer: Answerer | None = None
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def start_loading(self) -> None:
        self._thread = threading.Thread(target=self._load, name="index-loader", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        try:
            self.answerer = build_answerer(self.settings)
            bundle = self.answerer.bundle
            log.info(
                "index loaded: %d documents, %d chunks", len(bundle.documents), len(bundle.chunks)
            )
        except ServiceError as exc:
            self.error = str(exc)
            log.error("index not loaded: %s", exc)

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def require(self) -> Answerer:
        if self.answerer is None:
            message = self.error or "the index is still loading; try again shortly"
            raise HTTPException(503, detail={"code": "not_ready", "message": message})
        return self.answerer


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}}, headers=headers)


def _describe(errors: list[dict]) -> tuple[int, str, str]:
    """Status, code and message for a request that failed validation."""
    for err in errors:
        if err.get("type") == "json_invalid":
            return 400, "malformed_json", f"the request body is not valid JSON: {err.get('msg', '')}".rstrip(": ")
    err = errors[0]
    loc = [str(part) for part in err.get("loc", ()) if part not in ("body", "query", "path")]
    field = ".".join(loc) or "body"
    kind = err.get("type", "")
    if field == "question":
        if kind == "missing":
            return 422, "missing_question", "the request needs a 'question'"
        if kind == "string_too_long":
            return 422, "question_too_long", f"the question is longer than {MAX_QUESTION_CHARS} characters"
        if kind in ("string_too_short", "value_error"):
            return 422, "empty_question", "the question is empty"
    if field == "vote":
        return 422, "invalid_vote", "'vote' must be \"up\" or \"down\""
    if field.startswith("citation"):
        return 422, "invalid_citation", f"'citation' must be an answer's citation object ({field}: {err.get('msg', '')})"
    if field == "comment":
        return 422, "comment_too_long", f"the comment is longer than {MAX_QUESTION_CHARS} characters"
    if field in ("top_k", "k"):
        return 422, f"invalid_{field}", f"'{field}' must be an integer from 1 to {MAX_TOP_K}"
    if field == "q":
        return 422, "invalid_query", "the query parameter 'q' must be a non-empty string"
    if kind == "model_attributes_type" or field == "body":
        return 422, "invalid_body", "the request body must be a JSON object"
    return 422, "invalid_request", f"{field}: {err.get('msg', 'invalid value')}"


class SecurityHeaders:
    """Adds ``X-Content-Type-Options: nosniff`` to every response, and the page's content security and
    referrer policies to the demo page and the widget's files. A plain ASGI middleware: it edits the
    response's headers as they pass, where an ``@app.middleware("http")`` function costs every request
    a task and a stream to copy the body through."""

    PAGES = ("/", "/widget.js", "/widget.css")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        page = scope["path"] in self.PAGES

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if page:
                    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
                    headers["Referrer-Policy"] = "no-referrer"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: ServiceSettings | None = None, load: bool = True) -> FastAPI:
    settings = settings or ServiceSettings()
    state = ServiceState(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        anyio.to_thread.current_default_thread_limiter().total_tokens = (
            settings.serving.request_threads or (os.cpu_count() or 1) + 1
        )
        if load:
            state.start_loading()
        yield

    app = FastAPI(
        title="Drug information QA",
        version=__version__,
        description=(
            "Extractive question answering over drug leaflets. Every answer is a verbatim "
            "quotation with a citation (document, section, character offsets into the "
            "document's canonical text, served by /v1/documents/{doc_id}). Errors are "
            '`{"error": {"code": ..., "message": ...}}`.'
        ),
        lifespan=lifespan,
    )
    app.state.service = state
    feedback = FeedbackStore(settings.feedback_path())
    app.state.feedback = feedback
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_origin_regex=settings.cors_origin_regex or None,
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type", "Authorization"],
        max_age=600,
    )

    app.add_middleware(SecurityHeaders)

    def _static(name: str, media_type: str) -> FileResponse:
        return FileResponse(STATIC / name, media_type=media_type, headers={"Cache-Control": "no-cache"})

    @app.get("/", include_in_schema=False)
    def demo_page() -> FileResponse:
        """A page with the chat widget open."""
        return _static("index.html", "text/html; charset=utf-8")

    @app.get("/widget.js", include_in_schema=False)
    def widget_js() -> FileResponse:
        return _static("widget.js", "text/javascript; charset=utf-8")

    @app.get("/widget.css", include_in_schema=False)
    def widget_css() -> FileResponse:
        return _static("widget.css", "text/css; charset=utf-8")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(*_describe(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, dict):
            return _error(exc.status_code, exc.detail["code"], exc.detail["message"], getattr(exc, "headers", None))
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(UnknownDocumentError)
    async def _unknown_doc(_: Request, exc: UnknownDocumentError) -> JSONResponse:
        return _error(422, "unknown_doc_id", str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover
        log.exception("unhandled error")
        return _error(500, "internal_error", "an unexpected error occurred; it has been logged")

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: ERRORS[503]})
    def readyz() -> dict:
        """The index is loaded and questions can be answered (503 until then)."""
        answerer = state.require()
        manifest = answerer.bundle.manifest
        return {
            "status": "ready",
            "documents": len(answerer.bundle.documents),
            "chunks": manifest.chunk_count,
            "embed_model": manifest.embed_model,
            "index_built": manifest.created_at,
        }

    # The answerer's responses are built from validated models: they are written as JSON here, in the
    # worker thread that made them (what FastAPI would write, without validating them again in another).
    # A repeated question is answered from the cache on the event loop (a dictionary look-up); only a
    # miss is handed to a worker thread, so a repeat does not pay for the hand-over.
    @app.post("/v1/ask", response_model=AskResponse, tags=["qa"], responses=ERRORS)
    async def ask(request: AskRequest) -> Response:
        """Answer a question with verbatim, cited spans, or decline (`answered: false`)."""
        answerer = state.require()
        hit = answerer.recall_ask(request.question, request.top_k, request.doc_ids)
        if hit is not None:
            return _json(hit)
        return await run_in_threadpool(lambda: _json(answerer.ask(request.question, request.top_k, request.doc_ids)))

    @app.get("/v1/search", response_model=SearchResponse, tags=["qa"], responses=ERRORS)
    async def search(
        q: Annotated[str, Query(min_length=1, max_length=MAX_QUESTION_CHARS, description="The query")],
        k: Annotated[int, Query(ge=1, le=MAX_TOP_K, description="How many passages")] = 10,
        doc_id: Annotated[list[str] | None, Query(description="Only search these documents")] = None,
    ) -> Response:
        """Ranked passages for a query (hybrid dense + BM25 retrieval)."""
        if not q.strip():
            raise RequestValidationError([{"loc": ("query", "q"), "type": "string_too_short", "msg": "empty"}])
        answerer = state.require()
        hit = answerer.recall_search(q, k, doc_id)
        if hit is not None:
            return _json(hit)
        return await run_in_threadpool(lambda: _json(answerer.search(q, k, doc_id)))

    @app.post("/v1/feedback", status_code=201, response_model=FeedbackResponse, tags=["feedback"], responses=ERRORS)
    def add_feedback(request: FeedbackRequest) -> FeedbackResponse:
        """Store a thumbs up / down (and an optional comment) on one answer."""
        answerer = state.answerer
        if answerer is not None and request.citation.doc_id not in answerer.bundle.documents:
            raise HTTPException(
                422, detail={"code": "unknown_doc_id", "message": f"unknown doc_id: {request.citation.doc_id}"}
            )
        return FeedbackResponse(id=feedback.add(request))

    @app.get(
        "/v1/feedback",
        tags=["feedback"],
        responses={**ERRORS, 200: {"content": {"application/x-ndjson": {}}, "description": "One JSON object a line"}},
    )
    def export_feedback(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> StreamingResponse:
        """All feedback as JSON lines, oldest first (needs `Authorization: Bearer <admin token>`)."""
        if not settings.admin_token:
            raise HTTPException(
                403, detail={"code": "export_disabled", "message": "feedback export is disabled: set QA_ADMIN_TOKEN"}
            )
        if credentials is None or not secrets.compare_digest(
            credentials.credentials.encode(), settings.admin_token.encode()
        ):
            raise HTTPException(
                401,
                detail={"code": "unauthorized", "message": "a valid admin token is needed (Authorization: Bearer ...)"},
                headers={"WWW-Authenticate": "Bearer"},
            )
        return StreamingResponse(feedback.export(), media_type="application/x-ndjson")

    @app.get("/v1/documents", response_model=list[DocumentSummary], tags=["documents"], responses=ERRORS)
    def documents() -> list[DocumentSummary]:
        """Every indexed document: id, title, source, length, section titles and subjects."""
        return [_summary(d) for d in state.require().bundle.documents.values()]

    @app.get("/v1/documents/{doc_id}", response_model=DocumentDetail, tags=["documents"], responses=ERRORS)
    def document(doc_id: str) -> DocumentDetail:
        """One document with its canonical text; every citation offset indexes into `text`."""
        found = state.require().bundle.documents.get(doc_id)
        if found is None:
            raise HTTPException(404, detail={"code": "unknown_doc_id", "message": f"unknown doc_id: {doc_id}"})
        return DocumentDetail(**_summary(found).model_dump(), text=found.text)

    return app


def _json(model: BaseModel) -> Response:
    """``model`` as FastAPI's own serialisation of a response model writes it (same bytes, same headers)."""
    return Response(content=model.model_dump_json(by_alias=True), media_type="application/json")


def _summary(document) -> DocumentSummary:  # noqa: ANN001 - ingest.documents.Document
    return DocumentSummary(
        doc_id=document.doc_id,
        title=document.title,
        source=document.source,
        format=document.format,
        length=len(document.text),
        sections=[s.title for s in document.sections if s.title],
        subjects=list(document.subjects),
    )
