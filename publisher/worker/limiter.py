"""The sending rate, kept by all workers together (``email.rate`` is per account, not per process).

A drop-in for ``deliver.RateLimiter`` that takes its slots from the budget row
in PostgreSQL (``store.ratelimit.reserve``) a block at a time: one round trip
buys about half a second of sending, and the block's slots are then handed to
this process's connections one by one, evenly spaced. Slots that went unused
for a while (a pause between batches) are dropped rather than spent in a burst,
so the account never sees more than its limit; at worst a worker that stops
leaves a fraction of a second of budget unused.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from publisher.config import Settings
from publisher.deliver import RateLimiter
from publisher.store import Store
from publisher.store.ratelimit import reserve

BLOCK_SECONDS = 0.5  # how much sending one reservation buys
MAX_BLOCK = 100  # slots per reservation, at most


class SharedRateLimiter(RateLimiter):
    """``acquire()`` blocks until this process's next slot of the shared budget ``name``."""

    def __init__(
        self,
        store: Store,
        name: str,
        per_second: float = 0,
        per_hour: float = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        super().__init__(per_second, per_hour, clock=clock, sleep=sleep)
        self.name = name
        self._store = store
        self.block = max(1, min(MAX_BLOCK, math.floor(BLOCK_SECONDS / self.interval))) if self.interval else 0
        self._size = self.block  # this process's current block: shrinks when its slots go unused
        self._dropped = 0
        self._slots: deque[float] = deque()
        self._take = threading.Lock()

    def acquire(self, stop: threading.Event | None = None) -> bool:
        if self.interval == 0.0:
            return True
        with self._take:
            now = self._clock()
            while self._slots and self._slots[0] < now - self.interval:
                self._slots.popleft()  # went unused: spending it late would make a burst
                self._dropped += 1
            if not self._slots:
                # Slower connections than the rate waste slots other workers could use:
                # buy fewer next time; when every slot was used, buy more again.
                if self._dropped:
                    self._size = max(1, self._size - self._dropped)
                else:
                    self._size = min(self.block, self._size * 2)
                self._dropped = 0
                delay = reserve(self._store, self.name, self._size, self.interval)
                start = self._clock() + delay
                self._slots.extend(start + k * self.interval for k in range(self._size))
            slot = self._slots.popleft()
        wait = slot - self._clock()
        if wait > 0:
            if stop is not None:
                if stop.wait(wait):
                    return False
            else:
                self._sleep(wait)
        return True


def budget_name(settings: Settings) -> str:
    """One budget per sending account: the SMTP server and user name."""
    smtp = settings.email.smtp
    return f"smtp:{smtp.username or ''}@{smtp.host}:{smtp.port}"


def shared_limiter(settings: Settings, store: Store) -> RateLimiter:
    """The configured rate shared through ``store``; a plain (no-op) limiter when unlimited."""
    rate = settings.email.rate
    if not rate.per_second and not rate.per_hour:
        return RateLimiter()
    return SharedRateLimiter(store, budget_name(settings), rate.per_second, rate.per_hour)
