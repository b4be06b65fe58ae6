"""The FastAPI app: wiring only (middleware, routers, error handlers, start and stop)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from .. import __version__
from ..records import open_records
from ..settings import ServiceSettings
from .errors import install_error_handlers
from .middleware import RequestContext, SecurityHeaders
from .ratelimit import RateLimiter
from .routes import admin, batch, docs, documents, feedback, ops, qa, review_page, widget
from .state import ServiceState

log = logging.getLogger("qa_service")

DESCRIPTION = (
    "Extractive question answering over drug leaflets. Every answer is a verbatim "
    "quotation with a citation (document, section, character offsets into the "
    "document's canonical text, served by /v1/documents/{doc_id}). Errors are "
    '`{"error": {"code": ..., "message": ...}}`. Every response names the index that '
    "answered (`X-Index-Version`, `X-Model`) and carries an `X-Request-ID`."
)


def create_app(settings: ServiceSettings | None = None, load: bool = True) -> FastAPI:
    """The app over ``settings``; ``load`` False leaves the index unloaded (readiness stays 503)."""
    settings = settings or ServiceSettings()
    state = ServiceState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        anyio.to_thread.current_default_thread_limiter().total_tokens = (
            settings.serving.request_threads or (os.cpu_count() or 1) + 1
        )
        # Opened (and migrated) at start, not when the app is made: making it touches no file.
        app.state.records = records = open_records(settings)
        _reload_on_sighup(state)
        if load:
            state.start_loading()
        yield
        state.close()
        records.close()

    app = FastAPI(
        title="Drug information QA", version=__version__, description=DESCRIPTION, lifespan=lifespan,
        # served by routes/docs.py: from local files, and behind a key when QA_PROTECT_OPS is set
        openapi_url=None, docs_url=None, redoc_url=None,
    )
    app.state.service = state
    app.state.rate_limiter, app.state.failure_limiter, app.state.admin_limiter = (
        RateLimiter(spec, settings.rate_limit_storage, namespace) if spec else None
        for spec, namespace in ((settings.rate_limit, "requests"), (settings.auth_failure_limit, "failures"),
                                (settings.admin_rate_limit, "admin"))
    )
    # Outermost last: the request's context sees every response, the errors' included.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_origin_regex=settings.cors_origin_regex or None,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Content-Type", "Authorization", "X-Request-ID"],
        expose_headers=["X-Request-ID", "X-Index-Version", "X-Model", "Retry-After"],
        max_age=600,
    )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestContext, state=state, max_body_bytes=settings.max_body_bytes,
                       discard_body_bytes=settings.discard_body_bytes,
                       body_limits={path: settings.max_batch_body_bytes for path in batch.PATHS})
    install_error_handlers(app)
    for router in (ops.router, qa.router, batch.router, documents.router, feedback.router, admin.router, admin.legacy,
                   widget.router, review_page.router, docs.router):
        app.include_router(router)
    docs.mount_assets(app)
    return app


def _reload_on_sighup(state: ServiceState) -> None:
    """SIGHUP reloads the index (as POST /v1/admin/reload does), in a worker thread."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, state.reload_and_log))
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (an app inside a test)
        log.debug("SIGHUP not handled here: the app does not run in the main thread")
