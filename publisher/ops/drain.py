"""Draining a planned send: the engine every send shares (issues, digests, worker batches).

``drain`` takes a send id and a ``prepared_for(row)`` callable, streams the
send's pending rows in chunks (memory stays flat in the number of subscribers),
and writes each result to the ledger as soon as the server has answered,
batching the writes of all connections into one transaction. What it holds
while it sends is a ``Claim``: for an issue or a digest, the lease on the sends
row (``SendLease``), renewed by a heartbeat, so a second process cannot drain
the same send (a lease left by a crashed process on this machine is taken over
at once); for a worker's batch, that batch only (``worker.batch.BatchClaim``),
so many workers drain one send together through this same loop.
"""

from __future__ import annotations

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
    RateLimiter,
    Result,
    RetryPolicy,
    Status,
    Transport,
    signer_for,
    transport_factory,
)
from publisher.deliver import limiter_for as _limiter_for
from publisher.deliver.signing import DkimSigner
from publisher.errors import PublisherError
from publisher.models import Recipient
from publisher.render.email_mime import recipient_maker
from publisher.store import Outcomes, PendingDelivery, SendBusyError, SendCounts, SendInfo, Store
from publisher.store.leases import default_owner, owner_is_dead
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


class Claim(Protocol):
    """What a drain holds while it sends: the whole send (``SendLease``) or one batch of it."""

    id_range: tuple[int, int] | None  # the deliveries ids it may send (None: all of the send's)

    def take(self, now: datetime) -> None:
        """Claim it, or raise (SendBusyError, or the claim's own) when another process holds it."""
        ...

    def renew(self, now: datetime) -> bool:
        """Heartbeat; False when the claim is lost (the drain stops)."""
        ...

    def pending(self) -> int:
        """Rows still to send within the claim (the progress total)."""
        ...

    def release(self, now: datetime) -> None:
        """Give it back, whatever happened."""
        ...

    def settle(self, now: datetime) -> SendCounts:
        """After a drain that ran to its end: where the send (or the batch) stands."""
        ...


class SendLease:
    """The lease on a whole send (its ``sends`` row): an issue or a digest drained in one process."""

    id_range: tuple[int, int] | None = None  # the whole send

    def __init__(self, store: Store, send: SendInfo, owner: str) -> None:
        self.store, self.send, self.owner = store, send, owner

    def take(self, now: datetime) -> None:
        take_lease(self.store, self.send, self.owner, now)

    def renew(self, now: datetime) -> bool:
        return self.store.ledger.renew(self.send.id, self.owner, now=now, ttl=LEASE_TTL)

    def pending(self) -> int:
        return self.store.ledger.counts(self.send.id).pending

    def release(self, now: datetime) -> None:
        self.store.ledger.release(self.send.id, self.owner, now=now)

    def settle(self, now: datetime) -> SendCounts:
        return self.store.ledger.counts(self.send.id)


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
    secret = settings.secret_key()
    make = recipient_maker(settings, secret, send_key)
    domain = envelope_domain(settings)

    def build(row: PendingDelivery) -> Envelope:
        r = make(row.email, row.name, row.subscriber_id)  # subscriber: per-subscriber click links only
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
    claim: Claim | None = None,
    limiter: RateLimiter | None = None,
    signer: DkimSigner | None = None,
) -> DrainReport:
    """Send every pending row of ``send_id``; each becomes ``sent`` only after the server's 250.

    ``prepared_for(row)`` gives the rendered message for that row (the same
    object for an issue; per variant for digests). ``claim``: what to hold
    while sending (default: the send's lease, as ``owner``; SendBusyError if
    another live process holds it). ``limiter``, ``signer``: a worker's own
    (shared rate, cached key); by default made from ``settings``.
    """
    send = store.ledger.get_send_by_id(send_id)
    if send is None:
        raise PublisherError(f"no send with id {send_id}")
    held: Claim = claim if claim is not None else SendLease(store, send, owner or default_owner())
    build = envelope_builder(settings, send.key, prepared_for)
    held.take(clock())
    report = DrainReport(send.key)
    started = time.monotonic()
    try:
        pool = DeliveryPool(
            transports or transport_factory(settings, send.key),
            build,
            concurrency=settings.email.concurrency,
            limiter=limiter if limiter is not None else _limiter_for(settings),
            retry=retry,
            signer=signer if signer is not None else signer_for(settings),
        )
        with store.ledger.writer() as writer:
            Drainer(store, writer, send, held, pool, clock, report, progress).run()
    finally:
        report.seconds = time.monotonic() - started
        held.release(clock())
    report.counts = held.settle(clock())
    if held.id_range is None:
        report.failures = store.ledger.failures(send.id)
    return report


class Drainer:
    """The loop of one drain: keep the pool fed, write results back, renew the lease."""

    def __init__(
        self,
        store: Store,
        writer: LedgerWriter,
        send: SendInfo,
        claim: Claim,
        pool: DeliveryPool[PendingDelivery],
        clock: Clock,
        report: DrainReport,
        progress: Progress | None,
    ) -> None:
        self.store, self.writer, self.send, self.claim, self.pool = store, writer, send, claim, pool
        self.clock, self.report, self.progress = clock, report, progress
        self.window = pool.concurrency * 8  # rows handed to the pool but not yet answered
        self.in_flight = 0
        self.outcomes = Outcomes()
        self.held: list[Result] = []  # accepted, waiting for the write before their ack
        self.done = 0
        self.total = claim.pending()
        self.buffer: deque[PendingDelivery] = deque()  # fetched, not yet handed to the pool
        self.after = 0  # the last id fetched (keyset paging)
        self.exhausted = False  # no more pending rows to fetch
        self.held_since = 0.0  # when the oldest result still waiting for its write arrived

    def run(self) -> None:
        last_flush = last_beat = time.monotonic()
        self.pool.start()
        try:
            while True:
                self._feed()
                if self.in_flight == 0 and (self.pool.stopping or (self.exhausted and not self.buffer)):
                    break
                self._collect()
                now = time.monotonic()
                if self.held and self.held_since == 0.0:
                    self.held_since = now
                if self._write_due(now, last_flush):
                    self._flush()
                    last_flush = now
                    self.held_since = 0.0
                if now - last_beat >= HEARTBEAT:
                    last_beat = now
                    if not self.claim.renew(self.clock()):
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

    def _feed(self) -> None:
        """Hand rows to the pool until the window is full (fetching the next chunk as needed)."""
        while not self.pool.stopping and self.in_flight < self.window:
            if not self.buffer:
                if self.exhausted:
                    return
                rows = self.store.ledger.pending(
                    self.send.id, after_id=self.after, limit=CHUNK, id_range=self.claim.id_range
                )
                self.exhausted = len(rows) < CHUNK
                if not rows:
                    return
                self.after = rows[-1].id
                self.buffer.extend(rows)
            row = self.buffer.popleft()
            if row.subscriber_status != "confirmed":  # left, or suppressed since the plan
                self.outcomes.skipped.append((row.id, f"subscriber is {row.subscriber_status}"))
                self.report.skipped += 1
                continue
            self.pool.submit(row)
            self.in_flight += 1

    def _collect(self) -> None:
        """Take every answer there is, waiting a little for the first."""
        wait = FLUSH_SECONDS if not self.held else self.held_since + HOLD_SECONDS - time.monotonic()
        result = self.pool.get(timeout=wait) if wait > 0 else self.pool.get()
        while result is not None:
            self._take(result)
            result = self.pool.get()

    def _write_due(self, now: float, last_flush: float) -> bool:
        return (
            len(self.held) >= self.pool.concurrency  # every connection is waiting on us
            or (bool(self.held) and self.pool.blocked())  # or every one still working is
            or (bool(self.held) and now - self.held_since >= HOLD_SECONDS)
            or len(self.outcomes) >= FLUSH_ROWS
            or now - last_flush >= FLUSH_SECONDS
        )

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
