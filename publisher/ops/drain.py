"""Draining a planned send: the engine every send shares (issues, digests, worker batches).

``drain`` takes a send id and a ``prepared_for(row)`` callable, streams the
send's pending rows in chunks (memory stays flat in the number of subscribers),
and writes each result to the ledger as soon as the server has answered,
batching the writes of all connections into one transaction. A lease on the
sends row, renewed by a heartbeat, keeps a second process from draining the
same send; a lease left by a crashed process on this machine is taken over at
once.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Protocol

from publisher.config import Settings
from publisher.deliver import (
    DeliveryPool,
    Envelope,
    FatalDeliveryError,
    Result,
    RetryPolicy,
    Status,
    Transport,
    signer_for,
    transport_factory,
)
from publisher.deliver import limiter_for as _limiter_for
from publisher.errors import PublisherError
from publisher.models import Recipient
from publisher.store import Outcomes, PendingDelivery, SendBusyError, SendCounts, SendInfo, Store
from publisher.store.ledger import LedgerWriter
from publisher.tokens import bounce_address

LEASE_TTL = timedelta(seconds=60)
HEARTBEAT = 10.0  # seconds between lease renewals (well inside the TTL)
CHUNK = 500  # ledger rows fetched at a time
FLUSH_ROWS = 100  # write results at least this often...
FLUSH_SECONDS = 0.05  # ...or after this long, whichever comes first
# An acceptance waits at most this long for others to share its commit (less
# when every connection already waits at its gate). Its connection meanwhile
# builds the next message and gets to DATA, and stops only before the body and
# final dot, so a short wait costs no throughput while one commit per message
# (measured: ~100-150 us each on SQLite) would.
HOLD_SECONDS = 0.002


class Personalisable(Protocol):
    """What ``drain`` needs from a rendered message (``render.email.PreparedMessage``)."""

    def personalise(self, recipient: Recipient) -> bytes: ...


Clock = Callable[[], datetime]
Progress = Callable[[int, int], None]  # (rows finished so far, rows to do) -> None


@dataclass
class DrainReport:
    """What one drain did (this run only) and where the send stands now."""

    key: str
    sent: int = 0
    failed: int = 0
    deferred: int = 0  # temporary failures that outlasted the retries: still pending
    skipped: int = 0  # the subscriber left before their turn
    abandoned: int = 0  # not attempted because the run stopped early: still pending
    retries: int = 0
    seconds: float = 0.0
    fatal: PublisherError | None = None
    counts: SendCounts = field(default_factory=SendCounts)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (address, reason), first 100

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def default_owner() -> str:
    """This process, as a lease owner: host, pid and a random tag (pids get reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_is_dead(owner: str | None) -> bool:
    """True only when ``owner`` is a process on this machine that no longer runs."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed child not yet reaped by its parent still answers kill(0)
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def take_lease(
    store: Store, send: SendInfo, owner: str, now: datetime, ttl: timedelta = LEASE_TTL
) -> SendInfo:
    """Acquire the send's lease, taking it over from a dead process on this machine."""
    try:
        return store.ledger.acquire(send.id, owner, now=now, ttl=ttl)
    except SendBusyError as busy:
        if owner_is_dead(busy.owner):
            return store.ledger.acquire(send.id, owner, now=now, ttl=ttl, steal_from=busy.owner)
        raise


def envelope_domain(settings: Settings) -> str:
    """The domain of the VERP envelope sender: ``inbound.bounce_domain``, else the From domain."""
    address = parseaddr(settings.email.from_)[1]
    if "@" not in address or any(c in address for c in "\r\n<> "):
        raise PublisherError(
            f"email.from has no usable address: {settings.email.from_!r}",
            hint='write it as "Name <news@example.org>"',
        )
    domain = (settings.inbound.bounce_domain or address.rpartition("@")[2]).strip().lower()
    if not domain or any(c in domain for c in "\r\n<>@ "):
        raise PublisherError(f"inbound.bounce_domain is not a domain: {domain!r}")
    return domain


def envelope_sender(settings: Settings) -> str:
    """The envelope sender of a single message (a test copy, a confirmation): ``bounces@<domain>``.

    List mail gets a VERP address per delivery instead (``envelope_builder``).
    """
    return bounce_address(settings.secret_key(), None, envelope_domain(settings))


def envelope_builder(
    settings: Settings, send_key: str, prepared_for: Callable[[PendingDelivery], Personalisable]
) -> Callable[[PendingDelivery], Envelope]:
    """Ledger row -> finished message, for one send (the pool calls it once per recipient)."""
    from publisher.render.email_mime import recipient_maker

    secret = settings.secret_key()
    make = recipient_maker(settings, secret, send_key)
    domain = envelope_domain(settings)

    def build(row: PendingDelivery) -> Envelope:
        r = make(row.email, row.name)
        sender = bounce_address(secret, row.id, domain)  # VERP: a bounce names this delivery
        return Envelope(sender, row.email, prepared_for(row).personalise(r), r.message_id, smtp_ready=True)

    return build


def drain(
    settings: Settings,
    store: Store,
    send_id: int,
    prepared_for: Callable[[PendingDelivery], Personalisable],
    *,
    clock: Clock,
    progress: Progress | None = None,
    retry: RetryPolicy | None = None,
    transports: Callable[[], Transport] | None = None,
    owner: str | None = None,
    id_range: tuple[int, int] | None = None,
) -> DrainReport:
    """Send every pending row of ``send_id``; each becomes ``sent`` only after the server's 250.

    ``prepared_for(row)`` gives the rendered message for that row (the same
    object for an issue; per variant for digests). SendBusyError if another live
    process holds the send.
    """
    send = store.ledger.get_send_by_id(send_id)
    if send is None:
        raise PublisherError(f"no send with id {send_id}")
    owner = owner or default_owner()
    take_lease(store, send, owner, clock())
    key = send.key
    build = envelope_builder(settings, key, prepared_for)
    report = DrainReport(key)
    started = time.monotonic()
    try:
        pool = DeliveryPool(
            transports or transport_factory(settings, key),
            build,
            concurrency=settings.email.concurrency,
            limiter=_limiter_for(settings),
            retry=retry,
            signer=signer_for(settings),
        )
        with store.ledger.writer() as writer:
            Drainer(store, writer, send, owner, pool, clock, report, progress, id_range).run()
    finally:
        report.seconds = time.monotonic() - started
        store.ledger.release(send.id, owner, now=clock())
    report.counts = store.ledger.counts(send.id)
    report.failures = store.ledger.failures(send.id)
    return report


class Drainer:
    """The loop of one drain: keep the pool fed, write results back, renew the lease."""

    def __init__(
        self,
        store: Store,
        writer: LedgerWriter,
        send: SendInfo,
        owner: str,
        pool: DeliveryPool[PendingDelivery],
        clock: Clock,
        report: DrainReport,
        progress: Progress | None,
        id_range: tuple[int, int] | None,
    ) -> None:
        self.store, self.writer, self.send, self.owner, self.pool = store, writer, send, owner, pool
        self.clock, self.report, self.progress, self.id_range = clock, report, progress, id_range
        self.window = pool.concurrency * 8  # rows handed to the pool but not yet answered
        self.in_flight = 0
        self.outcomes = Outcomes()
        self.held: list[Result] = []  # accepted, waiting for the write before their ack
        self.done = 0
        self.total = store.ledger.counts(send.id).pending

    def run(self) -> None:
        buffer: deque[PendingDelivery] = deque()
        after = 0
        exhausted = False
        last_flush = last_beat = time.monotonic()
        held_since = 0.0  # when the oldest result still waiting for its write arrived
        self.pool.start()
        try:
            while True:
                while not self.pool.stopping and self.in_flight < self.window:
                    if not buffer:
                        if exhausted:
                            break
                        rows = self.store.ledger.pending(
                            self.send.id, after_id=after, limit=CHUNK, id_range=self.id_range
                        )
                        exhausted = len(rows) < CHUNK
                        if not rows:
                            break
                        after = rows[-1].id
                        buffer.extend(rows)
                    row = buffer.popleft()
                    if row.subscriber_status != "confirmed":
                        self.outcomes.skipped.append((row.id, f"subscriber is {row.subscriber_status}"))
                        self.report.skipped += 1
                        continue
                    self.pool.submit(row)
                    self.in_flight += 1
                if self.in_flight == 0 and (self.pool.stopping or (exhausted and not buffer)):
                    break
                wait = FLUSH_SECONDS if not self.held else held_since + HOLD_SECONDS - time.monotonic()
                result = self.pool.get(timeout=wait) if wait > 0 else self.pool.get()
                while result is not None:
                    self._take(result)
                    result = self.pool.get()
                now = time.monotonic()
                if self.held and held_since == 0.0:
                    held_since = now
                if (
                    len(self.held) >= self.pool.concurrency  # every connection is waiting on us
                    or (self.held and self.pool.blocked())  # or every one still working is
                    or (self.held and now - held_since >= HOLD_SECONDS)
                    or len(self.outcomes) >= FLUSH_ROWS
                    or now - last_flush >= FLUSH_SECONDS
                ):
                    self._flush()
                    last_flush = now
                    held_since = 0.0
                if now - last_beat >= HEARTBEAT:
                    last_beat = now
                    if not self.store.ledger.renew(self.send.id, self.owner, now=self.clock(), ttl=LEASE_TTL):
                        self.pool.abort(
                            FatalDeliveryError(f"lost the lease on {self.send.key} to another process")
                        )
        except BaseException:
            self.pool.abort()
            self._finish_in_flight()
            raise
        finally:
            self._flush()
            self.pool.close()
        self.report.fatal = self.pool.fatal
        self.report.retries = self.pool.stats.retries

    def _take(self, result: Result) -> None:
        self.in_flight -= 1
        row: PendingDelivery = result.item
        status = result.status
        if status is Status.SENT:
            self.outcomes.sent.append((row.id, result.message_id))
            self.held.append(result)
            self.report.sent += 1
        elif status is Status.FAILED:
            self.outcomes.failed.append((row.id, result.reason))
            if result.hard_bounce:
                self.outcomes.bounced_subscribers.append(row.subscriber_id)
            self.report.failed += 1
        elif status is Status.DEFERRED:
            self.outcomes.deferred.append((row.id, result.reason))
            self.report.deferred += 1
        else:
            self.report.abandoned += 1
        if status is not Status.ABANDONED:
            self.done += 1

    def _flush(self) -> None:
        if len(self.outcomes) or self.outcomes.bounced_subscribers:
            self.writer.record(self.outcomes, now=self.clock())
            self.outcomes = Outcomes()
        for result in self.held:  # only now may those connections move on
            self.pool.ack(result)
        self.held = []
        if self.progress is not None:
            self.progress(self.done, self.total)

    def _finish_in_flight(self) -> None:
        """After an interrupt: collect what the connections were in the middle of, to record it."""
        deadline = time.monotonic() + 30
        while self.in_flight > 0 and time.monotonic() < deadline:
            result = self.pool.get(timeout=0.2)
            if result is not None:
                self._take(result)
