"""What routes depend on, as ``Annotated`` aliases: the loaded answerer, the records, the caller's rights.

The dependencies are ``async`` functions: they only read state, and a plain
``def`` dependency would cost every request a hop to a worker thread.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request
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


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _limit(limiter: RateLimiter | None, client: str, code: str, what: str, count: bool) -> None:
    """429 ``code`` (with Retry-After) once ``client`` has spent ``limiter``'s budget; ``count``: this
    call is one more against it (else it is only looked at)."""
    if limiter is None:
        return
    retry = limiter.hit(client) if count else limiter.spent(client)
    if retry is not None:
        raise problem(429, code, f"{what} (at most {limiter.spec}); retry in {retry} s", {"Retry-After": str(retry)})


def _refuse_if_spent(limiter: RateLimiter | None, client: str, code: str, what: str) -> None:
    _limit(limiter, client, code, what, count=False)


def _count(limiter: RateLimiter | None, client: str, code: str, what: str) -> None:
    _limit(limiter, client, code, what, count=True)


def _failed(request: Request, status: int, code: str, message: str) -> HTTPException:
    """A refused key or token: counted against the caller's address (brute force is throttled)."""
    limiter: RateLimiter | None = request.app.state.failure_limiter
    if limiter is not None:
        limiter.hit(client_key(None, _address(request)))
    return problem(status, code, message, _UNAUTHORIZED)


def _known(secret: str, known: frozenset[str]) -> bool:
    # Every key compared in full, in constant time: how far a guess matches must not show.
    return any([secrets.compare_digest(secret.encode(), k.encode()) for k in known])


async def _checked_key(request: Request, state: ServiceState,
                       credentials: HTTPAuthorizationCredentials | None) -> tuple[str | None, str]:
    """The caller's API key, checked when the server has keys (401 without a valid one; 429 first for an
    address that failed too often), and whose rate-limit budget its requests spend."""
    key = credentials.credentials if credentials is not None else None
    keys = state.api_keys
    if keys:
        _refuse_if_spent(request.app.state.failure_limiter, client_key(None, _address(request)),
                         "too_many_failures", "too many failed attempts from this address")
        if key is None:
            raise _failed(request, 401, "missing_api_key", "this server needs an API key: Authorization: Bearer KEY")
        if not _known(key, keys):
            raise _failed(request, 401, "invalid_api_key", "the API key is not valid")
    else:
        key = None
    public = key is not None and key in state.settings.public_api_keys
    return key, client_key(key, _address(request), public)


async def require_api_key(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(api_key_scheme)],
) -> str | None:
    """The caller's API key, checked when the server has keys (401 without a valid one), and its rate
    limit counted when one is set (429 with Retry-After once spent). An address that failed too often
    gets 429 before its key is even looked at."""
    key, client = await _checked_key(request, state, credentials)
    _count(request.app.state.rate_limiter, client, "rate_limited", "too many requests")
    return key


class QueryBudget:
    """A batch's caller, whose every query counts against the rate limit (not the request itself)."""

    def __init__(self, limiter: RateLimiter | None, client: str) -> None:
        self.limiter = limiter
        self.client = client

    def spend(self) -> str | None:
        """Count one query: None if it may run, else the ``rate_limited`` message saying when to retry."""
        if self.limiter is None:
            return None
        retry = self.limiter.hit(self.client)
        return None if retry is None else f"too many requests (at most {self.limiter.spec}); retry in {retry} s"


async def require_api_key_per_query(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(api_key_scheme)],
) -> QueryBudget:
    """As :func:`require_api_key` for a batch: the key checked alike, but the rate limit is counted per
    query by the route (:meth:`QueryBudget.spend`); a caller whose budget is already spent gets 429."""
    _, client = await _checked_key(request, state, credentials)
    limiter: RateLimiter | None = request.app.state.rate_limiter
    _refuse_if_spent(limiter, client, "rate_limited", "too many requests")
    return QueryBudget(limiter, client)


QueryBudgetDep = Annotated[QueryBudget, Depends(require_api_key_per_query)]


async def require_admin(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(admin_scheme)],
) -> None:
    """Admin operations need the admin token: 403 when the server has none (disabled, not open),
    401 when it is missing or wrong. Failures and admin calls are counted per address (429 beyond)."""
    token = state.settings.admin_token
    if not token:
        raise problem(403, "admin_disabled", "admin endpoints are disabled on this server: set QA_ADMIN_TOKEN")
    address = client_key(None, _address(request))
    _refuse_if_spent(request.app.state.failure_limiter, address, "too_many_failures",
                     "too many failed attempts from this address")
    _count(request.app.state.admin_limiter, address, "rate_limited", "too many admin requests")
    if credentials is None or not _known(credentials.credentials, frozenset([token])):
        raise _failed(request, 401, "unauthorized", "a valid admin token is needed (Authorization: Bearer ...)")


AdminDep = Depends(require_admin)


async def require_ops_access(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(api_key_scheme)],
) -> None:
    """With ``protect_ops`` set: metrics, readiness and the API's description need an API key or the
    admin token (401 otherwise); unset, they are open."""
    if not state.settings.protect_ops:
        return
    _refuse_if_spent(request.app.state.failure_limiter, client_key(None, _address(request)),
                     "too_many_failures", "too many failed attempts from this address")
    token = state.settings.admin_token
    allowed = state.api_keys | ({token} if token else set())
    if credentials is None:
        raise _failed(request, 401, "missing_api_key", "this server needs an API key: Authorization: Bearer KEY")
    if not _known(credentials.credentials, frozenset(allowed)):
        raise _failed(request, 401, "invalid_api_key", "the API key is not valid")


OpsDep = Depends(require_ops_access)
