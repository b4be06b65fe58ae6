"""What routes depend on, as ``Annotated`` aliases: the loaded answerer, the records, the caller's rights.

The dependencies are ``async`` functions: they only read state, and a plain
``def`` dependency would cost every request a hop to a worker thread.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..answering import Answerer
from ..records import Records
from .errors import problem
from .ratelimit import RateLimiter, client_key
from .state import ServiceState

api_key_scheme = HTTPBearer(
    auto_error=False, scheme_name="APIKey",
    description="An API key (setting QA_API_KEYS); needed only where the server has keys set.",
)
admin_scheme = HTTPBearer(auto_error=False, scheme_name="AdminToken", description="The admin token (QA_ADMIN_TOKEN).")
_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


async def get_state(request: Request) -> ServiceState:
    return request.app.state.service


StateDep = Annotated[ServiceState, Depends(get_state)]


async def get_answerer(request: Request, state: StateDep) -> Answerer:
    """The answerer now served (503 while none is loaded); the request keeps it to the end, reloads or not."""
    answerer = state.require()
    request.state.index_version = answerer.index_version
    request.state.model = answerer.models
    return answerer


AnswererDep = Annotated[Answerer, Depends(get_answerer)]


async def get_records(request: Request) -> Records:
    return request.app.state.records


RecordsDep = Annotated[Records, Depends(get_records)]


async def require_api_key(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(api_key_scheme)],
) -> str | None:
    """The caller's API key, checked when the server has keys (401 without a valid one), and its rate
    limit counted when one is set (429 with Retry-After once spent)."""
    key = credentials.credentials if credentials is not None else None
    keys = state.api_keys
    if keys:
        if key is None:
            raise problem(401, "missing_api_key", "this server needs an API key: Authorization: Bearer KEY",
                          _UNAUTHORIZED)
        # Every key compared in full, in constant time: how far a guess matches must not show.
        if not any([secrets.compare_digest(key.encode(), known.encode()) for known in keys]):
            raise problem(401, "invalid_api_key", "the API key is not valid", _UNAUTHORIZED)
    else:
        key = None
    limiter: RateLimiter | None = request.app.state.rate_limiter
    if limiter is not None:
        retry = limiter.hit(client_key(key, request.client.host if request.client else None))
        if retry is not None:
            raise problem(429, "rate_limited", f"too many requests (at most {limiter.spec}); retry in {retry} s",
                          {"Retry-After": str(retry)})
    return key


async def require_admin(
    state: StateDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(admin_scheme)]
) -> None:
    """Admin operations need the admin token: 403 when the server has none (disabled, not open),
    401 when it is missing or wrong."""
    token = state.settings.admin_token
    if not token:
        raise problem(403, "admin_disabled", "admin endpoints are disabled on this server: set QA_ADMIN_TOKEN")
    if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
        raise problem(401, "unauthorized", "a valid admin token is needed (Authorization: Bearer ...)", _UNAUTHORIZED)


AdminDep = Depends(require_admin)
