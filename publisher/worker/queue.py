"""The fan-out: a send's ledger rows and its batch jobs, written in one transaction.

On PostgreSQL the job queue (procrastinate's tables) lives in the same
database as the ledger, so planning a send and enqueuing one job per batch of
``scale.batch_size`` deliveries is one transaction: either the plan and every
job exist, or neither does. A crash between the two cannot leave a planned
send nobody works on, nor jobs for rows that were never written.

A batch is a range of ``deliveries`` ids. Each batch job carries
``lock = queueing_lock = "<send key>#<first id>"``: procrastinate then never
queues the same batch twice, nor runs two copies of it at once. A queueing lock
only covers jobs still waiting (``todo``), so it cannot be the lasting guard
against a second fan-out; the ``sends.key`` unique constraint is, and a
transaction-scoped advisory lock per send key serialises concurrent fan-outs.
A second fan-out of a send that is planned therefore enqueues nothing while
any of its jobs waits or runs, and re-enqueues only the still-pending rows when
none does (a resume after jobs failed).

This module owns what procrastinate is to us (queue and task names, how a job
is enqueued); the SQL it needs is ``store.jobs``'. ``JobQueue`` is the
``ops.scaleout.WorkerQueue`` the edges hand to ``send_issue``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from publisher.errors import PublisherError, StoreError
from publisher.ops.scaleout import Enqueued, Handed
from publisher.store import Audience, SendInfo, Store
from publisher.store import jobs as sql

QUEUE = "publisher"
TASK_BATCH = "publisher.send_batch"
TASK_STALLED = "publisher.retry_stalled_jobs"
META = '{"via": "workers"}'  # sends.meta of a send planned for the workers


class AlreadyQueuedError(PublisherError):
    """procrastinate refused a batch job: the same batch is already waiting in the queue."""


@dataclass(frozen=True)
class JobCounts:
    todo: int = 0
    doing: int = 0
    failed: int = 0
    succeeded: int = 0


@dataclass(frozen=True)
class QueueStatus:
    """The job queue as ``publisher status`` shows it."""

    by_send: dict[int, JobCounts] = field(default_factory=dict)
    total: JobCounts = JobCounts()
    workers: int = 0  # workers with a recent heartbeat


def batch_lock(key: str, lo: int) -> str:
    """A batch's name: its job's procrastinate lock, and the advisory lock a worker claims it by."""
    return f"{key}#{lo}"


def plan_and_enqueue(
    store: Store,
    *,
    kind: str,
    key: str,
    now: datetime,
    batch_size: int,
    args: Callable[[SendInfo], dict[str, Any]],
    issue_slug: str | None = None,
    audience: Audience | None = None,
) -> Enqueued:
    """Plan send ``key`` (if new) and enqueue its batch jobs, in one transaction.

    ``args(send)`` gives what goes into every job (the fingerprint and secret
    check, which depend on the send's date: a send planned a moment earlier by
    another process keeps its own). Safe to call
    again: a planned send gets no second ledger rows, and jobs only for
    pending rows when none of its jobs is waiting or running.
    """
    from procrastinate import exceptions  # heavy, and only for PostgreSQL scale-out

    if store.dialect != "postgresql":
        raise StoreError(
            "the worker queue needs PostgreSQL", hint="set database.url to postgresql+psycopg://…"
        )
    try:
        with store.write() as conn:
            sql.lock_key(conn, f"fanout:{key}")
            plan = sql.plan_in(conn, kind, key, now=now, issue_slug=issue_slug, audience=audience, meta=META)
            send = plan.send
            active = sql.count_active(conn, TASK_BATCH, send.id)
            skip = active and not plan.created
            ranges = [] if skip else sql.batch_ranges(conn, send.id, batch_size, plan.created)
            if ranges:
                _defer(conn.connection.driver_connection, key, send.id, ranges, args(send))
    except exceptions.AlreadyEnqueued as exc:
        raise AlreadyQueuedError(
            f"{key}: a batch of this send is already waiting in the queue ({exc})",
            hint="`publisher status` shows its jobs; the workers will send it",
        ) from None
    return Enqueued(send, plan.created, len(ranges), active)


def enqueue_planned(
    store: Store, *, send_id: int, key: str, batch_size: int, args: Callable[[], dict[str, Any]]
) -> Handed:
    """Enqueue jobs for a send its own code planned (digest, welcome…): the pending rows no job covers.

    Under the same per-key advisory lock as a fan-out, so two schedulers'
    ticks (or a tick and ``publisher digest``) never queue the same rows
    twice. Such a send may gain rows while its jobs run (the next
    confirmation's welcome row), so unlike an issue it is topped up rather
    than left alone while jobs are active. ``args()`` only runs when there
    is something to enqueue (it renders the message for the fingerprint).
    """
    from procrastinate import exceptions  # heavy, and only for PostgreSQL scale-out

    if store.dialect != "postgresql":
        raise StoreError(
            "the worker queue needs PostgreSQL", hint="set database.url to postgresql+psycopg://…"
        )
    try:
        with store.write() as conn:
            sql.lock_key(conn, f"fanout:{key}")
            active = sql.count_active(conn, TASK_BATCH, send_id)
            ranges = sql.uncovered_ranges(conn, TASK_BATCH, send_id, batch_size)
            if ranges:
                _defer(conn.connection.driver_connection, key, send_id, ranges, args())
    except exceptions.AlreadyEnqueued as exc:
        raise AlreadyQueuedError(
            f"{key}: a batch of this send is already waiting in the queue ({exc})",
            hint="`publisher status` shows its jobs; the workers will send it",
        ) from None
    return Handed(key, len(ranges), active)


def _defer(
    connection: Any, key: str, send_id: int, ranges: list[tuple[int, int]], common: dict[str, Any]
) -> None:
    """One batch job per range, inserted on ``connection`` (the caller's open transaction)."""
    # procrastinate: heavy, and only for PostgreSQL scale-out
    from procrastinate.jobs import Job
    from procrastinate.manager import JobManager  # (as above)
    from procrastinate.sync_psycopg_connector import SyncPsycopgConnector  # (as above)

    jobs = [
        Job(
            queue=QUEUE,
            task_name=TASK_BATCH,
            lock=batch_lock(key, lo),
            queueing_lock=batch_lock(key, lo),
            task_kwargs={**common, "send_id": send_id, "lo": lo, "hi": hi},
        )
        for lo, hi in ranges
    ]
    # procrastinate's documented way to defer on an external connection:
    # the INSERTs run in our transaction and its NOTIFY fires at our COMMIT.
    JobManager(SyncPsycopgConnector()).batch_defer_jobs(jobs, connection=connection)


def active_jobs(store: Store, send_id: int) -> int:
    """Batch jobs of ``send_id`` waiting or running now (0 on SQLite: there is no queue)."""
    return sql.active_jobs(store, TASK_BATCH, send_id)


def queue_status(store: Store) -> QueueStatus | None:
    """Batch jobs per send and status, and live workers; None without a queue (SQLite)."""
    rows = sql.job_tallies(store, TASK_BATCH)
    if rows is None:
        return None
    tallies: dict[int, dict[str, int]] = {}
    total: dict[str, int] = {}
    for send_id, status, n in rows:
        if status in ("todo", "doing", "failed", "succeeded"):
            tallies.setdefault(send_id, {})[status] = n
            total[status] = total.get(status, 0) + n
    return QueueStatus(
        by_send={sid: JobCounts(**t) for sid, t in tallies.items()},
        total=JobCounts(**total),
        workers=sql.live_workers(store),
    )


class JobQueue:
    """The workers' queue as ``send_issue`` uses it (``ops.scaleout.WorkerQueue``)."""

    def live_workers(self, store: Store) -> int:
        return sql.live_workers(store)

    def active_jobs(self, store: Store, send_id: int) -> int:
        return active_jobs(store, send_id)

    def plan_and_enqueue(
        self,
        store: Store,
        *,
        kind: str,
        key: str,
        now: datetime,
        batch_size: int,
        args: Callable[[SendInfo], dict[str, Any]],
        issue_slug: str | None = None,
    ) -> Enqueued:
        return plan_and_enqueue(
            store, kind=kind, key=key, now=now, batch_size=batch_size, args=args, issue_slug=issue_slug
        )

    def enqueue_planned(
        self, store: Store, *, send_id: int, key: str, batch_size: int, args: Callable[[], dict[str, Any]]
    ) -> Handed:
        return enqueue_planned(store, send_id=send_id, key=key, batch_size=batch_size, args=args)
