"""One pool connection ("lane"): what it is doing, the message it holds, its non-blocking socket I/O.

A lane is always in exactly one ``ConnState``; the pool moves it between them
(``DeliveryPool`` in ``pool.py``). Two things sit beside the state because they
outlive a message: ``unacked`` (its last acceptance, until the caller records
it) and ``close_after`` (the server asked us to close once this exchange ends).
"""

from __future__ import annotations

import ssl
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from publisher.deliver.envelope import Deferred, Envelope, Result
from publisher.deliver.smtp import describe_error
from publisher.deliver.smtp_session import Exchange, ReplyReader


class ConnState(Enum):
    """Where a lane is with its message."""

    IDLE = "idle"  # no message
    RUNNING = "running"  # our code is moving it (seen between rounds only after an interrupt)
    WAITING = "waiting"  # for the server: a reply, or room to write, until ``deadline``
    PARKED = "parked"  # at the gate before the final dot, until the caller acks ``unacked``
    BACKOFF = "backoff"  # until ``retry_at``, then its message is tried again


@dataclass
class Job:
    item: Any
    env: Envelope | None = None
    ready: Future[Envelope] | None = None  # built and being signed ahead (DKIM)
    attempts: int = 0
    first_try: float = 0.0


_SSL_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError)


@dataclass(eq=False)
class Lane:
    """One connection and the message it is working on."""

    transport: Any
    multiplexed: bool  # drives ``transport.exchange`` itself (else ``transport.send``, in turn)
    state: ConnState = ConnState.IDLE
    job: Job | None = None
    gen: Exchange | None = None
    sock: Any = None
    reader: ReplyReader = field(default_factory=ReplyReader)
    out: memoryview | None = None  # bytes still to write
    unacked: Result | None = None  # its last acceptance, not yet recorded by the caller
    close_after: bool = False
    deadline: float = 0.0  # WAITING: when the server has taken too long
    retry_at: float = 0.0  # BACKOFF: when to try again

    @property
    def busy(self) -> bool:
        return self.state is not ConnState.IDLE

    def take(self, job: Job) -> None:
        self.job, self.state = job, ConnState.RUNNING

    def wait(self) -> None:
        self.state = ConnState.WAITING
        self.deadline = time.monotonic() + self.transport.timeout

    def back_off(self, until: float) -> None:
        self.gen = None
        self.state, self.retry_at = ConnState.BACKOFF, until

    def clear(self) -> None:
        """The message is done with (a result was given for it)."""
        self.job = self.gen = None
        self.state, self.retry_at = ConnState.IDLE, 0.0

    def detach(self) -> None:
        """The socket is gone: a lane that was waiting for it is back in our hands."""
        self.close_after = False
        self.out = None
        self.sock = None
        if self.gen is not None:
            self.gen.close()
            self.gen = None
        if self.state in (ConnState.WAITING, ConnState.PARKED):
            self.state = ConnState.RUNNING

    # -- socket I/O (OSError and Deferred go to the caller) -------------------------------------
    def push(self, data: bytes) -> bool:
        """Write ``data``; False if some is left in ``out`` for when the socket has room."""
        try:
            sent = self.sock.send(data)
        except _SSL_WOULD_BLOCK:
            sent = 0
        if sent < len(data):
            self.out = memoryview(data)[sent:]
            return False
        return True

    def flush(self) -> bool:
        """Write more of ``out``; True once all of it is written."""
        assert self.out is not None
        try:
            sent = self.sock.send(self.out)
        except _SSL_WOULD_BLOCK:
            return False
        self.out = self.out[sent:] if sent < len(self.out) else None
        if self.out is None:
            return True
        self.deadline = time.monotonic() + self.transport.timeout
        return False

    def receive(self) -> None:
        """Read what the server sent into ``reader`` (raises ConnectionResetError on EOF)."""
        sock = self.sock
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionResetError("closed by the server")
                self.reader.feed(chunk)
                if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                    break
        except _SSL_WOULD_BLOCK:
            pass

    def lost(self, exc: OSError) -> Deferred:
        return Deferred(f"connection to {self.transport.where} lost: {describe_error(exc)}", connection=True)
