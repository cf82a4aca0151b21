"""Per-connection rate limit of the SCIM endpoint (DESIGN §7).

An IdP stuck in a loop, or a script with a leaked token, must not take the service from every
other tenant: past ``SCIM_RATE_LIMIT`` requests of one connection, the answer is 429 with
``Retry-After`` in whole seconds (the only form Okta reads). The counts live in Redis when
``SCIM_REDIS_URL`` is set, so every worker and host shares them; otherwise in each worker
process's memory (the limit then applies per worker). Off when ``SCIM_RATE_LIMIT`` is unset.

The limit protects the service; it must never be what takes it down: when its storage (Redis)
cannot be reached, requests go through uncounted and the log says so (once a minute).
"""

from __future__ import annotations

import logging
import math
import threading
import time

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from scim_server.scim.errors import TooManyRequests

log = logging.getLogger("scim_server.rate_limit")
_WARN_EVERY_SECONDS = 60.0


class ConnectionRateLimit:
    """``limit`` per connection, e.g. ``600/minute``, in the ``limits`` library's notation."""

    def __init__(self, limit: str, storage_url: str | None) -> None:
        self.item: RateLimitItem = parse(limit)
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_url or "memory://"))
        self._namespace = "scim-server:connection"
        self._warned_at = float("-inf")
        self._warn_lock = threading.Lock()

    def check(self, connection_id: str) -> None:
        """Count one request of the connection; 429 once it is over its limit."""
        try:
            if self._limiter.hit(self.item, self._namespace, connection_id):
                return
            reset_at, _ = self._limiter.get_window_stats(self.item, self._namespace, connection_id)
        except Exception as error:  # any storage failure: fail open, loudly
            self._storage_failed(error)
            return
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise TooManyRequests(
            f"rate limit of this connection reached ({self.item.amount} requests per "
            f"{self.item.get_expiry()} seconds, SCIM_RATE_LIMIT); retry after {retry_after} "
            "seconds",
            headers={"Retry-After": str(retry_after)},
        )

    def _storage_failed(self, error: Exception) -> None:
        with self._warn_lock:
            now = time.monotonic()
            if now - self._warned_at < _WARN_EVERY_SECONDS:
                return
            self._warned_at = now
        log.warning(
            "rate limit not enforced: its storage failed (%s: %s)", type(error).__name__, error
        )
