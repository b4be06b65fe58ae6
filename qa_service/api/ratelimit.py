"""Requests a client may make, counted with the `limits` library (the engine under slowapi).

A client is its API key when it sends one (so colleagues behind one proxy
don't share a budget), else its address (behind a reverse proxy, set
``QA_FORWARDED_ALLOW_IPS`` / ``qa serve --forwarded-allow-ips`` so the address is
the caller's, not the proxy's). A public key (one that sits in a web page, the
widget's) is counted per key and address: one visitor's burst spends only that
visitor's budget. Failed logins and admin calls are counted per address, each
with a limiter of its own.
"""

from __future__ import annotations

import hashlib
import math
import time

from limits import parse_many, storage, strategies


class RateLimiter:
    """A moving window per client over the limits of ``spec`` ('60/minute', '10/second;500/hour')."""

    def __init__(self, spec: str, storage_uri: str = "memory://", namespace: str = "") -> None:
        self.spec = spec
        self.limits = parse_many(spec)
        self.namespace = namespace
        self._limiter = strategies.MovingWindowRateLimiter(storage.storage_from_string(storage_uri))

    def hit(self, client: str) -> int | None:
        """Count one request of ``client``: None if it is allowed, else the seconds until it would be."""
        for limit in self.limits:
            if not self._limiter.hit(limit, self.namespace, client):
                return self._retry_after(limit, client)
        return None

    def spent(self, client: str) -> int | None:
        """Without counting: None if ``client`` may still make a request, else the seconds until it may."""
        for limit in self.limits:
            if not self._limiter.test(limit, self.namespace, client):
                return self._retry_after(limit, client)
        return None

    def _retry_after(self, limit, client: str) -> int:  # noqa: ANN001 - a limits.RateLimitItem
        reset = self._limiter.get_window_stats(limit, self.namespace, client).reset_time
        return max(1, math.ceil(reset - time.time()))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def client_key(api_key: str | None, address: str | None, public: bool = False) -> str:
    """Whose budget a request spends: its API key's (hashed, never kept as such), a public key's per
    address, or its address's."""
    if api_key and public:
        return f"public:{_digest(api_key)}:{address or 'unknown'}"
    if api_key:
        return "key:" + _digest(api_key)
    return "addr:" + (address or "unknown")
