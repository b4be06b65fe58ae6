"""Requests a client may make, counted with the `limits` library (the engine under slowapi).

A client is its API key when it sends one (so colleagues behind one proxy
don't share a budget), else its address (behind a reverse proxy, run uvicorn
with ``--forwarded-allow-ips`` so the address is the caller's, not the proxy's).
"""

from __future__ import annotations

import hashlib
import math
import time

from limits import parse_many, storage, strategies


class RateLimiter:
    """A moving window per client over the limits of ``spec`` ('60/minute', '10/second;500/hour')."""

    def __init__(self, spec: str, storage_uri: str = "memory://") -> None:
        self.spec = spec
        self.limits = parse_many(spec)
        self._limiter = strategies.MovingWindowRateLimiter(storage.storage_from_string(storage_uri))

    def hit(self, client: str) -> int | None:
        """Count one request of ``client``: None if it is allowed, else the seconds until it would be."""
        for limit in self.limits:
            if not self._limiter.hit(limit, client):
                reset = self._limiter.get_window_stats(limit, client).reset_time
                return max(1, math.ceil(reset - time.time()))
        return None


def client_key(api_key: str | None, address: str | None) -> str:
    """Whose budget a request spends: its API key's (hashed, never kept as such) or its address's."""
    if api_key:
        return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:16]
    return "addr:" + (address or "unknown")
