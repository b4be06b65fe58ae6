"""Plain ASGI middleware: security headers, and each request's id, index headers, log line and metrics.

Plain ASGI (not ``@app.middleware("http")``): they edit the response's headers
as they pass, where a function middleware costs every request a task and a
stream to copy the body through.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

import anyio
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response, problem
from .metrics import LATENCY, REQUESTS
from .state import ServiceState

access_log = logging.getLogger("qa_service.access")

# Our own pages and the widget's files: no inline script or style, nothing from elsewhere, and no
# string ever parsed as HTML (Trusted Types with no policy: innerHTML and its kind throw).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'self'; "
    "require-trusted-types-for 'script'; trusted-types 'none'"
)
# The review page (/admin): the same, and stricter where it can be. It is never framed (its buttons
# must not be clicked through another page), its form is never submitted (the token would travel in the
# request: the script sends it in a header), and it is loaded from nowhere else.
REVIEW_PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "require-trusted-types-for 'script'; trusted-types 'none'"
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
DISCARD_SECONDS = 10.0
"""Longest a refused body is read and thrown away for, however much of it is left (nginx: lingering_time)."""


class SecurityHeaders:
    """``X-Content-Type-Options: nosniff`` on every response; the content security and referrer
    policies on the demo page and the widget's files, and the review page's own on its files."""

    PAGES = ("/", "/widget.js", "/widget.css")
    REVIEW_PAGES = ("/admin", "/admin.js", "/admin.css")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        policy = (CONTENT_SECURITY_POLICY if path in self.PAGES
                  else REVIEW_PAGE_POLICY if path in self.REVIEW_PAGES else None)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if policy is not None:
                    headers["Content-Security-Policy"] = policy
                    headers["Referrer-Policy"] = "no-referrer"
                if policy is REVIEW_PAGE_POLICY:
                    headers["X-Frame-Options"] = "DENY"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestContext:
    """Per request: an id (the caller's ``X-Request-ID`` when it is a sane token, else a new one), returned
    in ``X-Request-ID``; the version of the index that answered and its model (``X-Index-Version``,
    ``X-Model``); one access-log line; the request counters and latency histogram by route.

    A body over ``max_body_bytes`` (on the paths of ``body_limits``, their own limit) is refused with 413,
    unread when its length says so. The 413 then
    closes the connection, but only once the rest of the body (up to ``discard_body_bytes``) has been
    read and thrown away, as nginx's lingering close does: a connection closed with data unread is reset,
    and a client still sending (Python's urllib sends the whole body before it reads) would get the reset
    instead of the 413."""

    def __init__(self, app: ASGIApp, state: ServiceState, max_body_bytes: int | None = None,
                 discard_body_bytes: int = 0, body_limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.state = state
        self.max_body_bytes = max_body_bytes
        self.body_limits = dict(body_limits or {})
        self.discard_body_bytes = discard_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
        expects_continue = any(k == b"expect" and v.lower() == b"100-continue" for k, v in scope["headers"])
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        context = scope.setdefault("state", {})
        context["request_id"] = request_id
        status = 500
        body_began = body_ended = False  # the app asked for the request's body / got all of it
        lingering = False  # a 413 sent while the body is still coming: read the rest before the connection closes

        async def send_with_context(message: Message) -> None:
            nonlocal status, lingering
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                # A client waiting for "100 Continue" before it sends the body sends none: nothing to read.
                lingering = status == 413 and not body_ended and (body_began or not expects_continue)
                if status == 413 and not body_ended:
                    headers["Connection"] = "close"
                headers["X-Request-ID"] = request_id
                version, model = context.get("index_version"), context.get("model")
                if version is None and self.state.answerer is not None:
                    version = self.state.answerer.index_version
                    model = self.state.answerer.models
                if version is not None:
                    headers["X-Index-Version"] = version
                    headers["X-Model"] = model or ""
            elif lingering and not message.get("more_body", False):
                await send({**message, "more_body": True})
                await self._discard(receive)
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        limit = self.body_limits.get(scope["path"], self.max_body_bytes)
        too_large = f"the request body is larger than {limit} bytes"
        seen = 0

        async def receive_within_limit() -> Message:
            # A body sent without a length (or longer than it said) is cut off once past the limit:
            # the route reading it gets the 413 in the envelope.
            nonlocal seen, body_began, body_ended
            body_began = True
            message = await receive()
            body_ended = message["type"] != "http.request" or not message.get("more_body", False)
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if limit is not None and seen > limit:
                    raise problem(413, "body_too_large", too_large)
            return message

        try:
            if limit is not None and declared.isdigit() and int(declared) > limit:  # refused unread
                await error_response(413, "body_too_large", too_large)(scope, receive, send_with_context)
            else:
                await self.app(scope, receive_within_limit, send_with_context)
        finally:
            elapsed = time.perf_counter() - began
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            REQUESTS.labels(template, scope["method"], str(status)).inc()
            LATENCY.labels(template).observe(elapsed)
            client = scope.get("client")
            access_log.info(
                "%s %s %d %.1f ms", scope["method"], scope["path"], status, elapsed * 1000,
                extra={
                    "request_id": request_id, "method": scope["method"], "path": scope["path"],
                    "route": template, "status": status, "duration_ms": round(elapsed * 1000, 2),
                    "client": client[0] if client else None, "index_version": context.get("index_version"),
                },
            )

    async def _discard(self, receive: Receive) -> None:
        """Read what is left of a refused body and throw it away, up to ``discard_body_bytes`` and
        :data:`DISCARD_SECONDS`."""
        left = self.discard_body_bytes
        with anyio.move_on_after(DISCARD_SECONDS):
            while left > 0:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return
                left -= len(message.get("body", b""))
