"""Keeping to the provider's sending limits (``email.rate.per_second`` / ``per_hour``).

A token bucket of capacity one per limit, shared by every connection: messages
are spaced evenly at the stricter of the two rates, so no second and no hour
ever holds more than its limit (a larger bucket would let a burst through at
the start of each window, which is exactly what providers throttle).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """``acquire()`` blocks until the next message may go; 0 means no limit."""

    def __init__(
        self,
        per_second: float = 0,
        per_hour: float = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        intervals = [1.0 / per_second if per_second else 0.0, 3600.0 / per_hour if per_hour else 0.0]
        self.interval = max(intervals)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Wait for a token; False if ``stop`` was set while waiting (nothing taken then)."""
        if self.interval == 0.0:
            return True
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        delay = slot - now
        if delay > 0:
            if stop is not None:
                if stop.wait(delay):
                    return False
            else:
                self._sleep(delay)
        return True
