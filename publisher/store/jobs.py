"""The scale-out path's SQL: planning inside the enqueue's transaction, batches, and the job tables.

``worker/`` owns procrastinate (its App, its task names, how a job is
enqueued); what it asks of the database is here, one named function per
query, so every statement stays in ``store/``. Names that belong to
procrastinate (a task name) come in as arguments.

Planning a send and enqueuing its batch jobs is one transaction (the queue
lives in the same PostgreSQL database): ``plan_in`` writes the plan with the
ledger's own code on the caller's connection, and ``lock_key`` serialises two
fan-outs of one send for the length of it. A batch is a range of
``deliveries`` ids (``batch_ranges``); a worker marks the send running with
``start_batch`` and counts what is left of its range with ``pending_in``.
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, select, text

from publisher.store.ledger import Ledger
from publisher.store.records import Audience, Plan
from publisher.store.schema import deliveries as d

if TYPE_CHECKING:
    from publisher.store.database import Database as Store


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


def plan_in(
    conn: Connection,
    kind: str,
    key: str,
    *,
    now: datetime,
    issue_slug: str | None = None,
    audience: Audience | None = None,
    meta: str = "",
) -> Plan:
    """``Ledger.plan_send`` inside the caller's open transaction (``conn``)."""
    ledger = Ledger(_InTransaction(conn))  # type: ignore[arg-type]  # duck-typed: dialect, read, write
    return ledger.plan_send(kind, key, now=now, issue_slug=issue_slug, audience=audience, meta=meta)


def lock_key(conn: Connection, name: str) -> None:
    """A transaction-scoped advisory lock on ``name``: the next caller waits for our COMMIT."""
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": name})


def batch_ranges(conn: Connection, send_id: int, size: int, everything: bool) -> list[tuple[int, int]]:
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


def uncovered_ranges(conn: Connection, task: str, send_id: int, size: int) -> list[tuple[int, int]]:
    """Ranges of up to ``size`` pending rows that no waiting or running job of ``task`` covers.

    For a send whose rows keep coming (a welcome send, a digest topped up) or
    whose jobs partly failed: new batches never overlap nor straddle a batch
    still queued or running, since two claims on overlapping rows would both
    send them.
    """
    jobs = sorted(
        (int(lo), int(hi))
        for lo, hi in conn.execute(
            text(
                "SELECT (args->>'lo')::bigint, (args->>'hi')::bigint FROM procrastinate_jobs "
                "WHERE task_name = :task AND status IN ('todo', 'doing') "
                "AND (args->>'send_id')::bigint = :send_id"
            ),
            {"task": task, "send_id": send_id},
        )
    )
    covered: list[tuple[int, int]] = []
    for lo, hi in jobs:  # merged, in case two jobs' ranges overlap
        if covered and lo <= covered[-1][1]:
            covered[-1] = (covered[-1][0], max(hi, covered[-1][1]))
        else:
            covered.append((lo, hi))
    starts = [lo for lo, _ in covered]
    ids = conn.execute(
        select(d.c.id).where(d.c.send_id == send_id, d.c.status == "pending").order_by(d.c.id)
    ).scalars()
    ranges: list[tuple[int, int]] = []
    first = last = -1
    count = 0
    for i in ids:
        k = bisect.bisect_right(starts, i) - 1
        if k >= 0 and i <= covered[k][1]:
            continue  # inside a job's range: that job sends it
        if count and (count >= size or bisect.bisect_right(starts, last) != k + 1):
            ranges.append((first, last))  # full, or a job's range lies between last and i
            count = 0
        if not count:
            first = i
        last, count = i, count + 1
    if count:
        ranges.append((first, last))
    return ranges


def pending_in(store: Store, send_id: int, lo: int, hi: int) -> int:
    """Rows of ``send_id`` with ids in [lo, hi] still pending."""
    query = select(func.count()).where(
        d.c.send_id == send_id, d.c.status == "pending", d.c.id >= lo, d.c.id <= hi
    )
    with store.read() as conn:
        return int(conn.execute(query).scalar_one())


def start_batch(store: Store, send_id: int, now: datetime) -> str | None:
    """Mark the send running (first batch); the owner instead when a process holds its lease."""
    with store.write() as conn:
        row = conn.execute(
            text("SELECT lease_owner, lease_expires_at FROM sends WHERE id = :id FOR UPDATE"), {"id": send_id}
        ).one()
        if row.lease_owner and row.lease_expires_at and row.lease_expires_at > now:
            return str(row.lease_owner)
        conn.execute(
            text(
                "UPDATE sends SET status = 'running', started_at = coalesce(started_at, :now) "
                "WHERE id = :id AND status IN ('scheduled', 'paused')"
            ),
            {"id": send_id, "now": now},
        )
    return None


# -- procrastinate's tables (read only) ---------------------------------------------------------------


def count_active(conn: Connection, task: str, send_id: int) -> int:
    """Jobs of ``task`` for ``send_id`` waiting or running."""
    return int(
        conn.execute(
            text(
                "SELECT count(*) FROM procrastinate_jobs WHERE task_name = :task "
                "AND status IN ('todo', 'doing') AND (args->>'send_id')::bigint = :send_id"
            ),
            {"task": task, "send_id": send_id},
        ).scalar_one()
    )


def active_jobs(store: Store, task: str, send_id: int) -> int:
    """Jobs of ``task`` for ``send_id`` waiting or running now (0 on SQLite: there is no queue)."""
    if store.dialect != "postgresql":
        return 0
    with store.read() as conn:
        return count_active(conn, task, send_id) if _has_queue(conn) else 0


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


def job_tallies(store: Store, task: str) -> list[tuple[int, str, int]] | None:
    """(send id, job status, count) of ``task``'s jobs; None without a queue (SQLite)."""
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
            {"task": task},
        ).all()
    return [(int(send_id), str(status), int(n)) for send_id, status, n in rows]


def _has_queue(conn: Connection) -> bool:
    return conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is not None
