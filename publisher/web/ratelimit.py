"""Token buckets for the web limits: in memory (SQLite, one process) or in the database.

The sign-up limits (per client IP and per address) and the wrong-API-token
limit must count every request the site gets. With the embedded default
(SQLite) one process serves, so memory is the right place; with PostgreSQL
several workers or machines may serve, so ``make_buckets`` hands out
``store.buckets.StoreBuckets``, which keeps each bucket in a row shared by all.

The in-memory table is capped so a flood of distinct keys cannot grow it
without bound (the oldest buckets go first, and a forgotten bucket is simply
full again). Time comes from the app's clock, so tests can refill a bucket by
moving the clock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from publisher.store import Store
from publisher.store.buckets import StoreBuckets, wait_seconds


class Buckets(Protocol):
    """What the routes need of a set of token buckets."""

    def take(self, key: str, now: float) -> bool: ...

    def retry_after(self, key: str, now: float | None = None) -> int: ...


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
                bucket.at = max(bucket.at, now)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return True
            return False

    def retry_after(self, key: str, now: float | None = None) -> int:
        """Seconds until ``key`` has a token again (for Retry-After); refilled up to ``now`` if given."""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return 0
            tokens = bucket.tokens
            if now is not None:
                tokens = min(self.burst, tokens + max(0.0, now - bucket.at) * self.rate)
            return wait_seconds(tokens, self.rate)


def make_buckets(
    name: str, burst: int, per_hour: float, *, shared: bool, store: Callable[[], Store]
) -> Buckets:
    """Buckets for one limit: in the database when ``shared`` (PostgreSQL), else in memory."""
    if shared:
        return StoreBuckets(name, burst, per_hour, store)
    return TokenBuckets(burst, per_hour)
