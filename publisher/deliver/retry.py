"""How long to keep trying a message that the server deferred.

Exponential backoff with jitter, bounded both in attempts and in total time
(``run`` with tenacity for a single blocking message; ``backoff`` for the
pool, which cannot sleep: it keeps the other connections going meanwhile),
so a server that is down stops the send within minutes instead of holding
every row for hours; rows left pending go out on the next ``send``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    stop_when_event_set,
    wait_exponential_jitter,
)

from publisher.deliver.envelope import Deferred

T = TypeVar("T")


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

    def run(self, attempt: Callable[[], T], *, stop: threading.Event, on_retry: Callable[[], None]) -> T:
        """Call ``attempt`` until it stops raising Deferred, within this policy.

        The first call happens outside tenacity (the hot path stays cheap); the
        retries then run under it, and the last Deferred is re-raised when the
        policy is exhausted. ``on_retry`` runs before each retry (e.g. reconnect).
        """
        try:
            return attempt()
        except Deferred:
            if self.attempts <= 1 or stop.is_set():
                raise
        on_retry()
        if stop.wait(self.initial):
            raise Deferred("stopped while waiting to retry")
        retrying = Retrying(
            retry=retry_if_exception_type(Deferred),
            stop=stop_after_attempt(self.attempts - 1)
            | stop_after_delay(self.give_up_after)
            | stop_when_event_set(stop),
            wait=wait_exponential_jitter(multiplier=self.initial * 2, max=self.maximum, jitter=self.jitter),
            sleep=stop.wait,
            before_sleep=lambda _state: on_retry(),
            reraise=True,
        )
        return retrying(attempt)
