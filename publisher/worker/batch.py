"""Draining one batch (a range of deliveries ids) of a send, as one worker job.

The embedded drain takes a lease on the whole send, so a second process is
refused; here many workers must work on one send at once, each on its own
batches. So a batch is claimed instead: a session-level PostgreSQL advisory
lock on "<send key>#<first id>" (``store.leases.SessionLock``), held on a
connection of its own for as long as the batch runs. It needs no expiry to
tune: when the worker dies, its connection closes and PostgreSQL releases the
lock at once, so the retried job can claim the batch straight away, while a
worker that is only slow still holds it and a duplicate job waits. The rest is
``ops.drain.drain`` unchanged, the same function the embedded sender runs (the
pool, the gate before the final dot, the suppression re-check, the batched
ledger writes): ``BatchClaim`` only narrows it to the batch (its rows, its
pending count, and "is my claim still held" as the heartbeat).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from publisher.config import Settings
from publisher.deliver import RateLimiter, RetryPolicy, Transport
from publisher.deliver.signing import DkimSigner
from publisher.errors import PublisherError
from publisher.ops.drain import DrainReport, Personalisable, drain
from publisher.store import PendingDelivery, SendCounts, SendInfo, Store
from publisher.store.jobs import pending_in, start_batch
from publisher.store.leases import SessionLock
from publisher.worker.queue import batch_lock

Clock = Callable[[], datetime]


class Retryable(PublisherError):
    """The batch did not finish but may later (busy, SMTP trouble): procrastinate retries the job."""


class BatchBusyError(Retryable):
    """Another live process holds this batch (or the whole send)."""


class BatchClaim:
    """One batch of a send, as ``drain`` holds it (``ops.drain.Claim``)."""

    def __init__(self, store: Store, send: SendInfo, lo: int, hi: int) -> None:
        self.store, self.send = store, send
        self.id_range: tuple[int, int] | None = (lo, hi)
        self.lock = SessionLock(store, batch_lock(send.key, lo))

    def take(self, now: datetime) -> None:
        """Claim the batch and mark the send running, unless a process drains the whole send."""
        if not self.lock.take():
            raise BatchBusyError(f"{self.lock.name} is being sent by another worker")
        try:
            owner = start_batch(self.store, self.send.id, now)
        except BaseException:
            self.lock.release()
            raise
        if owner is not None:
            self.lock.release()
            raise BatchBusyError(f"{self.send.key} is being sent in-process by {owner}; trying later")

    def renew(self, now: datetime) -> bool:
        return self.lock.alive()

    def pending(self) -> int:
        lo, hi = self._range
        return pending_in(self.store, self.send.id, lo, hi)

    def release(self, now: datetime) -> None:
        self.lock.release()

    def settle(self, now: datetime) -> SendCounts:
        """The send is done when this was its last batch; the counts are the batch's."""
        self.store.ledger.close_if_done(self.send.id, now=now)
        return SendCounts(pending=self.pending())

    @property
    def _range(self) -> tuple[int, int]:
        assert self.id_range is not None
        return self.id_range


def run_batch(
    settings: Settings,
    store: Store,
    send: SendInfo,
    lo: int,
    hi: int,
    prepared: Personalisable | None,
    *,
    clock: Clock,
    pick: Callable[[PendingDelivery], Personalisable] | None = None,
    limiter: RateLimiter | None = None,
    signer: DkimSigner | None = None,
    retry: RetryPolicy | None = None,
    transports: Callable[[], Transport] | None = None,
) -> DrainReport:
    """Send the pending rows of ``send`` with ids in [lo, hi]; each ``sent`` only after its 250.

    ``prepared``: the message of every row (an issue), or ``pick(row)``: the
    row's own (a digest's variant).

    BatchBusyError when another live process holds the batch or the send.
    The report's ``counts`` are the batch's (``pending`` left in the range).
    """
    return drain(
        settings,
        store,
        send.id,
        pick or (lambda _row: _given(prepared)),
        clock=clock,
        retry=retry,
        transports=transports,
        claim=BatchClaim(store, send, lo, hi),
        limiter=limiter,
        signer=signer,
    )


def _given(prepared: Personalisable | None) -> Personalisable:
    if prepared is None:
        raise ValueError("run_batch needs prepared or pick")
    return prepared
