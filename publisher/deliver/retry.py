"""How long to keep trying a message that the server deferred.

Exponential backoff with jitter, bounded both in attempts and in total time,
so a server that is down stops the send within minutes instead of holding
every row for hours; rows left pending go out on the next ``send``. The pool
applies it (every message goes through one, single ones too) without
sleeping, so the other connections keep going meanwhile; that is why the
waits are computed here rather than by a retry library that sleeps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # in all, the first try included
    initial: float = 1.0  # seconds before the first retry; doubles each time
    maximum: float = 30.0  # longest single wait
    give_up_after: float = 120.0  # seconds of retrying one message at most
    jitter: float = 0.5

    def backoff(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed try (the pool's retries)."""
        return min(self.maximum, self.initial * 2 ** (failures - 1)) + random.uniform(0, self.jitter)
