"""In-process token buckets for the subscribe form (per client IP and per address).

One process serves the web app, so memory is the right place; the table is
capped so a flood of distinct keys cannot grow it without bound (the oldest
buckets go first, and a forgotten bucket is simply full again). Time comes from
the app's clock, so tests can refill a bucket by moving the clock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """``take(key, now)`` is True while ``key`` has a token left; refills at ``per_hour``."""

    def __init__(self, burst: int, per_hour: float, max_keys: int = 50_000) -> None:
        self.burst = float(burst)
        self.rate = per_hour / 3600.0
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, now: float) -> bool:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = _Bucket(self.burst, now)
                self._buckets[key] = bucket
                if len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                elapsed = max(0.0, now - bucket.at)
                bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
                bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return True
            return False

    def retry_after(self, key: str) -> int:
        """Seconds until ``key`` has a token again (for the Retry-After header)."""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None or bucket.tokens >= 1.0 or self.rate <= 0:
                return 0 if bucket is None or bucket.tokens >= 1.0 else 3600
            return max(1, int((1.0 - bucket.tokens) / self.rate) + 1)
