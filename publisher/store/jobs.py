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

This module is store-level code (SQL only, no SMTP, no rendering policy), so
``ops`` may call it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

from publisher.errors import PublisherError, StoreError
from publisher.store import Audience, SendInfo
from publisher.store.ledger import Ledger

if TYPE_CHECKING:
    from publisher.render.email_mime import PreparedMessage
    from publisher.store import Store

QUEUE = "publisher"
TASK_BATCH = "publisher.send_batch"
TASK_STALLED = "publisher.retry_stalled_jobs"
META = '{"via": "workers"}'  # sends.meta of a send planned for the workers


class AlreadyQueuedError(PublisherError):
    """procrastinate refused a batch job: the same batch is already waiting in the queue."""


@dataclass(frozen=True)
class Enqueued:
    """What one fan-out did."""

    send: SendInfo
    created: bool  # this call wrote the plan
    jobs: int  # batch jobs this call put on the queue
    active: int  # batch jobs of this send already waiting or running before this call


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


def fingerprint(prepared: PreparedMessage) -> str:
    """A digest of a rendered message (slots included, not filled): planner and workers must agree.

    Workers render the issue themselves from their own copy of the project;
    if that copy differs from the planner's (an edited issue, other
    templates), their mail would differ from what was planned. The job
    carries the planner's fingerprint and a worker refuses a mismatch.
    """
    h = hashlib.sha256()
    for chunk in prepared.chunks:
        h.update(chunk if isinstance(chunk, bytes) else b"\0slot:" + chunk.encode() + b"\0")
    return h.hexdigest()[:32]


def secret_check(secret: bytes) -> str:
    """A tag of the signing secret (not the secret): a worker with another key refuses the job.

    Message-IDs and unsubscribe links are signed with the secret; a worker on a
    machine without PUBLISHER_SECRET_KEY would sign with its own generated key
    and send links that do not work.
    """
    return hmac.new(secret, b"publisher.worker.check", hashlib.sha256).hexdigest()[:16]


def batch_lock(key: str, lo: int) -> str:
    return f"{key}#{lo}"


class _InTransaction:
    """The two things ``Ledger.plan_send`` uses from a Store, bound to one open transaction.

    So the plan is written by the ledger's own code, and the jobs join its
    transaction, with no copy of the planning SQL here.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @property
    def dialect(self) -> str:
        return self._conn.dialect.name

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        yield self._conn

    read = write


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
    from procrastinate import exceptions
    from procrastinate.jobs import Job
    from procrastinate.manager import JobManager
    from procrastinate.sync_psycopg_connector import SyncPsycopgConnector

    if store.dialect != "postgresql":
        raise StoreError(
            "the worker queue needs PostgreSQL", hint="set database.url to postgresql+psycopg://…"
        )
    try:
        with store.write() as conn:
            conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"fanout:{key}"}
            )
            plan = Ledger(_InTransaction(conn)).plan_send(  # type: ignore[arg-type]
                kind, key, now=now, issue_slug=issue_slug, audience=audience, meta=META
            )
            send = plan.send
            active = _active(conn, send.id)
            ranges = [] if active and not plan.created else _ranges(conn, send.id, batch_size, plan.created)
            common = args(send) if ranges else {}
            jobs = [
                Job(
                    queue=QUEUE,
                    task_name=TASK_BATCH,
                    lock=batch_lock(key, lo),
                    queueing_lock=batch_lock(key, lo),
                    task_kwargs={**common, "send_id": send.id, "lo": lo, "hi": hi},
                )
                for lo, hi in ranges
            ]
            if jobs:
                # procrastinate's documented way to defer on an external connection:
                # the INSERTs run in our transaction and its NOTIFY fires at our COMMIT.
                JobManager(SyncPsycopgConnector()).batch_defer_jobs(
                    jobs, connection=conn.connection.driver_connection
                )
    except exceptions.AlreadyEnqueued as exc:
        raise AlreadyQueuedError(
            f"{key}: a batch of this send is already waiting in the queue ({exc})",
            hint="`publisher status` shows its jobs; the workers will send it",
        ) from None
    return Enqueued(send, plan.created, len(jobs), active)


def _ranges(conn: Connection, send_id: int, size: int, everything: bool) -> list[tuple[int, int]]:
    """Consecutive id ranges of ``size`` rows each (all rows, or only the pending ones)."""
    pending = "" if everything else "AND status = 'pending'"
    rows = conn.execute(
        text(
            f"""
            SELECT min(id) AS lo, max(id) AS hi FROM (
                SELECT id, (row_number() OVER (ORDER BY id) - 1) / :size AS n
                FROM deliveries WHERE send_id = :send_id {pending}
            ) AS numbered
            GROUP BY n ORDER BY lo
            """
        ),
        {"size": size, "send_id": send_id},
    )
    return [(int(lo), int(hi)) for lo, hi in rows]


def _active(conn: Connection, send_id: int) -> int:
    return int(
        conn.execute(
            text(
                "SELECT count(*) FROM procrastinate_jobs WHERE task_name = :task "
                "AND status IN ('todo', 'doing') AND (args->>'send_id')::bigint = :send_id"
            ),
            {"task": TASK_BATCH, "send_id": send_id},
        ).scalar_one()
    )


def active_jobs(store: Store, send_id: int) -> int:
    """Batch jobs of ``send_id`` waiting or running now (0 on SQLite: there is no queue)."""
    if store.dialect != "postgresql":
        return 0
    with store.read() as conn:
        return _active(conn, send_id) if _has_queue(conn) else 0


def live_workers(store: Store, *, within: timedelta = timedelta(seconds=60)) -> int:
    """Workers whose last heartbeat is recent: is anyone draining the queue?"""
    if store.dialect != "postgresql":
        return 0
    with store.read() as conn:
        if not _has_queue(conn):
            return 0
        return int(
            conn.execute(
                text("SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat > now() - :within"),
                {"within": within},
            ).scalar_one()
        )


def queue_status(store: Store) -> QueueStatus | None:
    """Batch jobs per send and status, and live workers; None without a queue (SQLite)."""
    if store.dialect != "postgresql":
        return None
    with store.read() as conn:
        if not _has_queue(conn):
            return None
        rows = conn.execute(
            text(
                "SELECT (args->>'send_id')::bigint, status::text, count(*) FROM procrastinate_jobs "
                "WHERE task_name = :task GROUP BY 1, 2"
            ),
            {"task": TASK_BATCH},
        ).all()
    tallies: dict[int, dict[str, int]] = {}
    total: dict[str, int] = {}
    for send_id, status, n in rows:
        if status in ("todo", "doing", "failed", "succeeded"):
            tallies.setdefault(int(send_id), {})[status] = int(n)
            total[status] = total.get(status, 0) + int(n)
    return QueueStatus(
        by_send={sid: JobCounts(**t) for sid, t in tallies.items()},
        total=JobCounts(**total),
        workers=live_workers(store),
    )


def _has_queue(conn: Connection) -> bool:
    return conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is not None
