"""Bound the events a flood of failed authentications can write (DESIGN §6, issue #3).

Per client address, at most ``limit`` ``auth.failed`` events per ``window`` seconds are
recorded; the rest are counted, and the next recorded event says how many were suppressed, so
the log stays truthful without letting an attacker fill the disk. The state is per process;
with several workers the bound is per worker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class FailureThrottle:
    def __init__(
        self,
        limit: int = 20,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        # key -> (window start, events recorded in it, events suppressed since last recorded)
        self._state: dict[str, tuple[float, int, int]] = {}

    def admit(self, key: str) -> tuple[bool, int]:
        """Whether to record this failure, and how many were suppressed before it."""
        now = self._clock()
        with self._lock:
            start, recorded, suppressed = self._state.get(key, (now, 0, 0))
            if now - start >= self._window:
                start, recorded = now, 0
            if recorded >= self._limit:
                self._state[key] = (start, recorded, suppressed + 1)
                return False, 0
            if len(self._state) >= self._max_keys and key not in self._state:
                self._state.clear()  # bounded memory beats perfect accounting under attack
            self._state[key] = (start, recorded + 1, 0)
            return True, suppressed
