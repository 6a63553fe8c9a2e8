"""``email.concurrency`` connections driven from one thread over non-blocking sockets.

The caller submits items (ledger rows, say) and reads back one ``Result`` per
item; ``get`` is what moves the connections along, so everything runs in the
caller's thread. The pool knows nothing of databases: ``build(item)`` turns an
item into an ``Envelope`` (personalisation happens there).

Why one thread: measured here with 4 connections to a local sink, smtplib in
four threads spent ~250 us of CPU per message, nearly all of it in thread
hand-offs and GIL contention around each blocking read; the same exchange
multiplexed with ``selectors`` costs ~40 us. The message exchange itself is
``smtp_session.exchange``, shared with the blocking ``SmtpTransport.send``;
each connection's state and socket I/O is a ``Lane`` (``lane.py``), and this
module moves lanes between their ``ConnState``s. Connecting (TLS, AUTH) stays
blocking and rare; a transport that cannot be multiplexed (``transport: file``) is simply called in turn.

Never more than one unrecorded acceptance per connection: after a 250 the
caller ``ack``s the result once it is written to the ledger, and the
connection's next message stops just before its final dot (the moment the
server would accept it) until that ack has come. Building the next message and
its MAIL/RCPT/DATA round trip overlap the ledger write; a crash at any moment
re-sends at most one message per connection.
"""

from __future__ import annotations

import contextlib
import inspect
import selectors
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast

from publisher.deliver.envelope import (
    Deferred,
    Envelope,
    FatalDeliveryError,
    Rejected,
    Result,
    Status,
)
from publisher.deliver.lane import ConnState, Job, Lane
from publisher.deliver.presign import SigningAhead
from publisher.deliver.ratelimit import RateLimiter
from publisher.deliver.retry import RetryPolicy
from publisher.deliver.signing import DkimSigner
from publisher.deliver.smtp_session import CLOSE, GATE, READ, ReplyReader
from publisher.errors import PublisherError

T = TypeVar("T")


class Transport(Protocol):
    def open(self) -> None: ...
    def send(self, env: Envelope, gate: Callable[[], None] | None = None) -> str: ...
    def close(self) -> None: ...


@dataclass
class PoolStats:
    retries: int = 0

    def retried(self) -> None:
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
    ) -> None:
        self.concurrency = concurrency
        self._factory = transport_factory
        self._build = build
        self._limiter = limiter or RateLimiter()
        self._retry = retry or RetryPolicy()
        self._signer = signer
        self._ahead = SigningAhead(build, signer) if signer is not None else None
        self._jobs: deque[Job] = deque()
        self._results: deque[Result] = deque()
        self._stop = threading.Event()
        self._lanes: list[Lane] = []
        self._selector = selectors.DefaultSelector()
        self.fatal: PublisherError | None = None
        self.stats = PoolStats()

    # -- caller side -------------------------------------------------------------
    def start(self) -> DeliveryPool[T]:
        for _ in range(self.concurrency):
            transport = self._factory()
            self._lanes.append(Lane(transport, hasattr(transport, "exchange")))
        return self

    def submit(self, item: T) -> None:
        self._jobs.append(Job(item, ready=self._ahead.start(item) if self._ahead is not None else None))

    def get(self, timeout: float | None = None) -> Result | None:
        """The next result, or None after ``timeout`` seconds without one (None: just look)."""
        if self._results:
            return self._results.popleft()
        end = time.monotonic() + (timeout or 0.0)
        while True:
            self._round(max(0.0, end - time.monotonic()))
            if self._results:
                return self._results.popleft()
            if time.monotonic() >= end:
                return None

    @staticmethod
    def ack(result: Result) -> None:
        """The result is recorded: its connection may go on to the next message."""
        lane = result.ack
        if lane is not None and lane.unacked is result:
            lane.unacked = None

    def blocked(self) -> bool:
        """Nothing moves until the caller acks: every working connection waits at its gate."""
        waiting = False
        for lane in self._lanes:
            if lane.state is ConnState.PARKED or (
                lane.unacked is not None and not lane.multiplexed and self._jobs
            ):
                waiting = True
            elif lane.state in (ConnState.WAITING, ConnState.BACKOFF):
                return False
        return waiting

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def abort(self, error: PublisherError | None = None) -> None:
        """Stop taking on messages; items not yet attempted come back ABANDONED."""
        if error is not None and self.fatal is None:
            self.fatal = error
        self._stop.set()

    def close(self, timeout: float = 60.0) -> None:
        """Finish what the connections hold, then end them (results stay readable)."""
        end = time.monotonic() + timeout
        while (self._jobs or any(lane.busy for lane in self._lanes)) and time.monotonic() < end:
            for lane in self._lanes:  # nobody will ack any more: a held message must not be accepted
                if lane.state is ConnState.PARKED:
                    self._abandon(lane, "stopped before the server accepted it")
            self._round(0.05)
        for lane in self._lanes:
            if lane.busy:
                self._abandon(lane, "not finished when the pool closed")
            self._disconnect(lane, polite=True)
        self._selector.close()
        if self._ahead is not None:
            self._ahead.close()

    # -- the loop ----------------------------------------------------------------------
    def _round(self, timeout: float) -> None:
        """Start what can start, wait up to ``timeout`` for the servers, handle what they said."""
        now = time.monotonic()
        if self._stop.is_set():
            self._wind_down()
        for lane in self._lanes:
            self._move(lane, now)
        if self._results:
            timeout = 0.0
        wake = [lane.deadline for lane in self._lanes if lane.state is ConnState.WAITING]
        wake += [lane.retry_at for lane in self._lanes if lane.state is ConnState.BACKOFF]
        if wake:
            timeout = max(0.0, min(timeout, min(wake) - now))
        self._poll(timeout)
        now = time.monotonic()
        for lane in self._lanes:
            if lane.state is ConnState.WAITING and lane.deadline <= now:
                self._failed(lane, lane.lost(TimeoutError()))

    def _move(self, lane: Lane, now: float) -> None:
        """What a lane can do without the server: leave its gate, retry, take the next job."""
        if lane.state is ConnState.RUNNING:
            # only an exception from outside (Ctrl-C) between two steps leaves a lane so:
            # what it was doing is unknown, so it is not recorded as sent (it stays pending)
            self._abandon(lane, "interrupted")
        if lane.state is ConnState.PARKED and lane.unacked is None:
            self._advance(lane, None)
        if lane.state is ConnState.BACKOFF and lane.retry_at <= now:
            lane.state, lane.retry_at = ConnState.RUNNING, 0.0
            self._attempt(lane)
        while not lane.busy and self._jobs and not self._stop.is_set():
            if lane.unacked is not None and not lane.multiplexed:
                break  # it cannot stop before the final dot: it waits for the ack instead
            job = self._jobs.popleft()
            job.first_try = now
            lane.take(job)
            self._attempt(lane)

    def _poll(self, timeout: float) -> None:
        """Wait up to ``timeout`` for the sockets; write and read what they are ready for."""
        if self._selector.get_map():
            events = self._selector.select(timeout)
        else:
            events = []
            if timeout > 0:
                self._stop.wait(timeout)
        for key, mask in events:
            lane = key.data
            if lane.out is not None and mask & selectors.EVENT_WRITE:
                self._write_more(lane)
            if lane.sock is not None and mask & selectors.EVENT_READ:
                self._read(lane)

    def _wind_down(self) -> None:
        while self._jobs:
            self._results.append(Result(self._jobs.popleft().item, Status.ABANDONED, reason="not attempted"))
        for lane in self._lanes:
            if lane.state is ConnState.PARKED:
                self._abandon(lane, "stopped before the server accepted it")
            elif lane.state is ConnState.BACKOFF:
                self._abandon(lane, "stopped while waiting to retry")

    def _attempt(self, lane: Lane) -> None:
        """One try at the lane's job: build it (once), take a rate token, start the exchange."""
        job = lane.job
        assert job is not None
        if job.env is None:
            try:
                env = job.ready.result() if job.ready is not None else self._build(job.item)
            except PublisherError as exc:
                self.abort(exc)
                return self._finish(lane, Result(job.item, Status.ABANDONED, reason=exc.message))
            except Exception as exc:  # a bug in building one message must not send the rest half-made
                self.abort(FatalDeliveryError(f"could not build a message: {type(exc).__name__}: {exc}"))
                return self._finish(lane, Result(job.item, Status.ABANDONED, reason=str(exc)))
            job.env = env
        env = job.env
        if not self._limiter.acquire(self._stop):
            return self._abandon(lane, "stopped")
        if not lane.multiplexed:
            try:
                reply = lane.transport.send(env, None)
            except Exception as exc:
                return self._failed(lane, exc)
            return self._accepted(lane, reply)
        try:
            if lane.sock is None:
                lane.sock = lane.transport.connect()
                lane.reader = ReplyReader()
                self._selector.register(lane.sock, selectors.EVENT_READ, lane)
            lane.gen = lane.transport.exchange(env)
        except Exception as exc:
            return self._failed(lane, exc)
        self._advance(lane, None)

    def _advance(self, lane: Lane, value: Any) -> None:
        """Run the lane's exchange until it waits for the server or the gate, or ends."""
        gen = lane.gen
        assert gen is not None
        lane.state = ConnState.RUNNING
        if inspect.getgeneratorstate(gen) == inspect.GEN_CLOSED:  # ended from outside (Ctrl-C) as it ran
            return self._abandon(lane, "interrupted")
        while True:
            try:
                step = gen.send(value)
            except StopIteration as done:
                return self._accepted(lane, done.value)
            except Exception as exc:
                return self._failed(lane, exc)
            value = None
            if step is READ:
                if lane.reader.replies:
                    value = lane.reader.replies.pop(0)
                    continue
                return lane.wait()
            if step is GATE:
                if self._stop.is_set():
                    return self._abandon(lane, "stopped before the server accepted it")
                if lane.unacked is not None:
                    lane.state = ConnState.PARKED
                    return None
                continue
            if step is CLOSE:
                lane.close_after = True
                continue
            try:
                written = lane.push(b"".join(step) if isinstance(step, list) else cast(bytes, step))
            except OSError as exc:
                return self._failed(lane, lane.lost(exc))
            if not written:
                self._selector.modify(lane.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, lane)
                return lane.wait()

    def _write_more(self, lane: Lane) -> None:
        try:
            done = lane.flush()
        except OSError as exc:
            return self._failed(lane, lane.lost(exc))
        if done:
            self._selector.modify(lane.sock, selectors.EVENT_READ, lane)
            self._advance(lane, None)

    def _read(self, lane: Lane) -> None:
        try:
            lane.receive()
        except (Deferred, OSError) as exc:
            if lane.gen is None:  # an idle connection went away: the next message reconnects
                return self._disconnect(lane)
            return self._failed(lane, exc if isinstance(exc, Deferred) else lane.lost(exc))
        if lane.gen is None:  # nothing asked: a server speaking out of turn is not one to trust
            if lane.reader.replies:
                self._disconnect(lane)
            return
        if lane.state is ConnState.WAITING and lane.out is None and lane.reader.replies:
            self._advance(lane, lane.reader.replies.pop(0))

    # -- how an attempt ends -------------------------------------------------------------------
    def _accepted(self, lane: Lane, reply: str) -> None:
        job = lane.job
        assert job is not None and job.env is not None
        result = Result(job.item, Status.SENT, job.env.message_id)
        result.ack = lane
        lane.unacked = result
        self._finish(lane, result)

    def _failed(self, lane: Lane, exc: BaseException) -> None:
        job = lane.job
        assert job is not None
        env = job.env
        mid = env.message_id if env is not None else ""
        if (isinstance(exc, Deferred) and exc.connection) or not isinstance(exc, Rejected | Deferred):
            self._disconnect(lane)
        if isinstance(exc, Rejected):
            return self._finish(lane, Result(job.item, Status.FAILED, mid, exc.reason, exc.hard_bounce))
        if isinstance(exc, FatalDeliveryError):
            self.abort(exc)
            return self._finish(lane, Result(job.item, Status.ABANDONED, mid, exc.message))
        if not isinstance(exc, Deferred):  # a transport bug: stop rather than guess what was sent
            self.abort(FatalDeliveryError(f"delivery failed unexpectedly: {type(exc).__name__}: {exc}"))
            return self._finish(lane, Result(job.item, Status.ABANDONED, mid, str(exc)))
        if self._stop.is_set():
            return self._finish(lane, Result(job.item, Status.ABANDONED, mid, exc.reason))
        job.attempts += 1
        now = time.monotonic()
        delay = self._retry.backoff(job.attempts)
        if job.attempts < self._retry.attempts and now + delay - job.first_try <= self._retry.give_up_after:
            self.stats.retried()
            lane.back_off(now + delay)
            return None
        if exc.connection:
            self.abort(FatalDeliveryError(f"giving up after retries: {exc.reason}"))
        self._finish(lane, Result(job.item, Status.DEFERRED, mid, exc.reason))

    def _abandon(self, lane: Lane, reason: str) -> None:
        job = lane.job
        assert job is not None
        if lane.gen is not None:
            self._disconnect(lane)  # mid-exchange (mid-DATA at the gate): the session cannot be reused
        mid = job.env.message_id if job.env is not None else ""
        self._finish(lane, Result(job.item, Status.ABANDONED, mid, reason))

    def _finish(self, lane: Lane, result: Result) -> None:
        self._results.append(result)
        lane.clear()
        if lane.close_after:
            self._disconnect(lane)

    def _disconnect(self, lane: Lane, *, polite: bool = False) -> None:
        if lane.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(lane.sock)
        lane.detach()
        if polite or not lane.multiplexed:
            lane.transport.close()
        else:
            lane.transport.drop()
