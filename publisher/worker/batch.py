"""Draining one batch (a range of deliveries ids) of a send, as one worker job.

The embedded drain takes a lease on the whole send, so a second process is
refused; here many workers must work on one send at once, each on its own
batches. So a batch is claimed instead: a session-level PostgreSQL advisory
lock on "<send key>#<first id>", held on a connection of its own for as long
as the batch runs. It needs no expiry to tune: when the worker dies, its
connection closes and PostgreSQL releases the lock at once, so the retried job
can claim the batch straight away, while a worker that is only slow still
holds it and a duplicate job waits. The rest is ``ops.drain``'s drain loop
(``Drainer``) unchanged: the pool, the gate before the final dot, the
batched ledger writes; only its view of the ledger is narrowed to the batch
(its pending count, and "is my claim still held" as the heartbeat).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text

from publisher.config import Settings
from publisher.deliver import DeliveryPool, RateLimiter, RetryPolicy, Transport, transport_factory
from publisher.deliver.signing import DkimSigner
from publisher.errors import PublisherError
from publisher.ops.drain import Drainer, DrainReport, Personalisable, default_owner, envelope_builder
from publisher.store import PendingDelivery, SendCounts, SendInfo, Store
from publisher.store.jobs import batch_lock
from publisher.store.schema import deliveries as d

Clock = Callable[[], datetime]


class Retryable(PublisherError):
    """The batch did not finish but may later (busy, SMTP trouble): procrastinate retries the job."""


class BatchBusyError(Retryable):
    """Another live process holds this batch (or the whole send)."""


class BatchClaim:
    """A session advisory lock on one batch, on a connection held for the batch's length."""

    def __init__(self, store: Store, key: str, lo: int) -> None:
        self._store = store
        self.name = batch_lock(key, lo)
        self._raw: Any = None

    def take(self) -> bool:
        raw = self._store.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (self.name,))
            got = bool(cur.fetchone()[0])
            raw.commit()  # the lock is the session's; no transaction stays open
        except BaseException:
            raw.invalidate()
            raw.close()
            raise
        if not got:
            raw.close()
            return False
        self._raw = raw
        return True

    def alive(self) -> bool:
        """The claim's connection still works, so the lock is still ours."""
        try:
            cur = self._raw.cursor()
            cur.execute("SELECT 1")
            cur.fetchone()
            self._raw.commit()
            return True
        except Exception:
            return False

    def release(self) -> None:
        raw, self._raw = self._raw, None
        if raw is None:
            return
        try:
            cur = raw.cursor()
            cur.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (self.name,))
            raw.commit()
        except Exception:
            raw.invalidate()  # a broken connection never goes back to the pool (nor its lock)
        finally:
            raw.close()


class _BatchLedger:
    """The ledger as ``Drainer`` sees it, narrowed to one batch and one claim."""

    def __init__(self, store: Store, claim: BatchClaim, lo: int, hi: int) -> None:
        self._store, self._claim, self._lo, self._hi = store, claim, lo, hi

    def counts(self, send_id: int) -> SendCounts:
        return SendCounts(pending=pending_in(self._store, send_id, self._lo, self._hi))

    def pending(self, send_id: int, **kw: Any) -> list[PendingDelivery]:
        return self._store.ledger.pending(send_id, **kw)

    def renew(self, send_id: int, owner: str, **_: Any) -> bool:
        return self._claim.alive()


@dataclass
class _BatchStore:
    ledger: _BatchLedger


def pending_in(store: Store, send_id: int, lo: int, hi: int) -> int:
    query = select(func.count()).where(
        d.c.send_id == send_id, d.c.status == "pending", d.c.id >= lo, d.c.id <= hi
    )
    with store.read() as conn:
        return int(conn.execute(query).scalar_one())


def _start(store: Store, send: SendInfo, now: datetime) -> None:
    """Mark the send running (first batch) unless a process holds its lease (a local drain)."""
    with store.write() as conn:
        row = conn.execute(
            text("SELECT lease_owner, lease_expires_at FROM sends WHERE id = :id FOR UPDATE"), {"id": send.id}
        ).one()
        if row.lease_owner and row.lease_expires_at and row.lease_expires_at > now:
            raise BatchBusyError(f"{send.key} is being sent in-process by {row.lease_owner}; trying later")
        conn.execute(
            text(
                "UPDATE sends SET status = 'running', started_at = coalesce(started_at, :now) "
                "WHERE id = :id AND status IN ('scheduled', 'paused')"
            ),
            {"id": send.id, "now": now},
        )


def run_batch(
    settings: Settings,
    store: Store,
    send: SendInfo,
    lo: int,
    hi: int,
    prepared: Personalisable,
    *,
    clock: Clock,
    limiter: RateLimiter | None = None,
    signer: DkimSigner | None = None,
    retry: RetryPolicy | None = None,
    transports: Callable[[], Transport] | None = None,
) -> DrainReport:
    """Send the pending rows of ``send`` with ids in [lo, hi]; each ``sent`` only after its 250.

    BatchBusyError when another live process holds the batch or the send.
    The report's ``counts`` are the batch's (``pending`` left in the range).
    """
    claim = BatchClaim(store, send.key, lo)
    if not claim.take():
        raise BatchBusyError(f"{claim.name} is being sent by another worker")
    report = DrainReport(send.key)
    started = time.monotonic()
    try:
        _start(store, send, clock())
        build = envelope_builder(settings, send.key, lambda _row: prepared)
        pool: DeliveryPool[PendingDelivery] = DeliveryPool(
            transports or transport_factory(settings, send.key),
            build,
            concurrency=settings.email.concurrency,
            limiter=limiter,
            retry=retry,
            signer=signer,
        )
        view = _BatchStore(_BatchLedger(store, claim, lo, hi))
        with store.ledger.writer() as writer:
            drainer = Drainer(
                view,  # type: ignore[arg-type]
                writer,
                send,
                default_owner(),
                pool,
                clock,
                report,
                None,
                (lo, hi),
            )
            drainer.run()
    finally:
        report.seconds = time.monotonic() - started
        claim.release()
    store.ledger.close_if_done(send.id, now=clock())
    report.counts = SendCounts(pending=pending_in(store, send.id, lo, hi))
    return report
