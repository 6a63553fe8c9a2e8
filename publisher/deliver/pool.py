"""A pool of ``email.concurrency`` connections, each in its own thread, fed from one queue.

The caller submits items (ledger rows, say) and reads back one ``Result`` per
item. The pool knows nothing of databases: ``build(item)`` turns an item into
an ``Envelope`` (personalisation happens there, in the worker thread).

Never more than one unrecorded acceptance per connection: after a 250 the
caller ``ack``s the result once it is written to the ledger, and the
connection's next message stops just before its final dot (the moment the
server would accept it) until that ack has come. Building the next message and
its MAIL/RCPT/DATA round trips overlap the ledger write, so the guarantee costs
little; a crash at any moment re-sends at most one message per connection.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Generic, Protocol, TypeVar

from publisher.deliver.envelope import (
    Deferred,
    Envelope,
    FatalDeliveryError,
    Rejected,
    Result,
    Status,
)
from publisher.deliver.ratelimit import RateLimiter
from publisher.deliver.retry import RetryPolicy
from publisher.deliver.signing import DkimSigner
from publisher.errors import PublisherError

T = TypeVar("T")
_STOP = object()


class Transport(Protocol):
    def open(self) -> None: ...
    def send(self, env: Envelope, gate: Callable[[], None] | None = None) -> str: ...
    def close(self) -> None: ...


@dataclass
class PoolStats:
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def retried(self) -> None:
        with self.lock:
            self.retries += 1


class DeliveryPool(Generic[T]):
    def __init__(
        self,
        transport_factory: Callable[[], Transport],
        build: Callable[[T], Envelope],
        *,
        concurrency: int = 4,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        signer: DkimSigner | None = None,
        wait_for_ack: bool = True,
    ) -> None:
        self.concurrency = concurrency
        self._factory = transport_factory
        self._build = build
        self._limiter = limiter or RateLimiter()
        self._retry = retry or RetryPolicy()
        self._signer = signer
        self._wait_for_ack = wait_for_ack
        self._jobs: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._acks = [threading.Event() for _ in range(concurrency)]
        self._threads: list[threading.Thread] = []
        self.fatal: PublisherError | None = None
        self.stats = PoolStats()

    # -- caller side -------------------------------------------------------------
    def start(self) -> DeliveryPool[T]:
        for n in range(self.concurrency):
            t = threading.Thread(target=self._work, args=(self._acks[n],), name=f"deliver-{n}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def submit(self, item: T) -> None:
        self._jobs.put(item)

    def get(self, timeout: float | None = None) -> Result | None:
        """The next result, or None after ``timeout`` seconds without one."""
        try:
            return self._results.get(timeout=timeout) if timeout else self._results.get_nowait()
        except queue.Empty:
            return None

    @staticmethod
    def ack(result: Result) -> None:
        """The result is recorded: its connection may go on to the next message."""
        if result.ack is not None:
            result.ack.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def abort(self, error: PublisherError | None = None) -> None:
        """Stop taking on messages; items not yet attempted come back ABANDONED."""
        if error is not None and self.fatal is None:
            self.fatal = error
        self._stop.set()
        for event in self._acks:
            event.set()

    def close(self, timeout: float = 60.0) -> None:
        """Let the workers finish what they hold, then end them (results stay readable)."""
        for _ in self._threads:
            self._jobs.put(_STOP)
        for t in self._threads:
            t.join(timeout)
        self._threads = []

    # -- worker side ---------------------------------------------------------------
    def _work(self, ack: threading.Event) -> None:
        transport = self._factory()
        unacked = False  # our last acceptance is not recorded yet

        def gate() -> None:
            nonlocal unacked
            if unacked:
                ack.wait()
                unacked = False
            if self._stop.is_set():
                raise Deferred("stopped before the server accepted it")

        try:
            while True:
                item = self._jobs.get()
                if item is _STOP:
                    return
                if self._stop.is_set():
                    self._results.put(Result(item, Status.ABANDONED, reason="not attempted"))
                    continue
                result = self._one(transport, item, gate if self._wait_for_ack else None)
                if result.status is Status.SENT and self._wait_for_ack:
                    ack.clear()
                    result.ack = ack
                    unacked = True
                self._results.put(result)
        finally:
            transport.close()

    def _one(self, transport: Transport, item: T, gate: Callable[[], None] | None) -> Result:
        try:
            env = self._build(item)
            if self._signer is not None:
                env = replace(env, data=self._signer.sign(env.data))
        except PublisherError as exc:
            self.abort(exc)
            return Result(item, Status.ABANDONED, reason=exc.message)
        except Exception as exc:  # a bug in building one message must not send the rest half-made
            self.abort(FatalDeliveryError(f"could not build a message: {type(exc).__name__}: {exc}"))
            return Result(item, Status.ABANDONED, reason=str(exc))

        def attempt() -> str:
            if not self._limiter.acquire(self._stop):
                raise Deferred("stopped")
            return transport.send(env, gate)

        try:
            self._retry.run(attempt, stop=self._stop, on_retry=self.stats.retried)
        except Rejected as exc:
            return Result(item, Status.FAILED, env.message_id, exc.reason, exc.hard_bounce)
        except Deferred as exc:
            if self._stop.is_set():
                return Result(item, Status.ABANDONED, env.message_id, exc.reason)
            if exc.connection:
                self.abort(FatalDeliveryError(f"giving up after retries: {exc.reason}"))
            return Result(item, Status.DEFERRED, env.message_id, exc.reason)
        except FatalDeliveryError as exc:
            self.abort(exc)
            return Result(item, Status.ABANDONED, env.message_id, exc.message)
        except Exception as exc:  # a transport bug: stop rather than guess what was sent
            self.abort(FatalDeliveryError(f"delivery failed unexpectedly: {type(exc).__name__}: {exc}"))
            return Result(item, Status.ABANDONED, env.message_id, str(exc))
        return Result(item, Status.SENT, env.message_id)
