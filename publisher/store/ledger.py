"""The send ledger: one ``sends`` row per issue send or digest period, one
``deliveries`` row per recipient of it.

A send is first *planned* (every deliveries row written in one transaction,
straight from ``subscribers`` with INSERT ... SELECT), then *drained*. A row
becomes ``sent`` only after the server accepted the message, so a crash loses
nothing and re-draining sends only what is still ``pending``. A lease on the
sends row (owner + expiry, renewed by a heartbeat) keeps two processes from
draining the same send at once (``store.leases``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, case, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from publisher.store.leases import LeaseColumns, renew, take
from publisher.store.records import (
    SUPPRESSED,
    Audience,
    Outcomes,
    PendingDelivery,
    Plan,
    SendBusyError,
    SendCounts,
    SendInfo,
    _info,
)
from publisher.store.schema import DELIVERY_STATUSES
from publisher.store.schema import deliveries as d
from publisher.store.schema import sends as s
from publisher.store.schema import subscribers as sub

# A send's lease is kept on its own row (``store.leases`` does the taking and renewing).
SEND_LEASE = LeaseColumns(s.c.id, s.c.lease_owner, s.c.lease_expires_at, s.c.heartbeat_at)

if TYPE_CHECKING:
    from publisher.store.database import Database as Store


__all__ = [
    "Audience",
    "Ledger",
    "LedgerWriter",
    "Outcomes",
    "PendingDelivery",
    "Plan",
    "SendBusyError",
    "SendCounts",
    "SendInfo",
]


class Ledger:
    """The operations on ``sends`` and ``deliveries``; reached as ``store.ledger``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- planning ---------------------------------------------------------------
    def plan_send(
        self,
        kind: str,
        key: str,
        *,
        now: datetime,
        issue_slug: str | None = None,
        audience: Audience | None = None,
        meta: str = "",
    ) -> Plan:
        """Create the send ``key`` and all its deliveries rows in one transaction.

        Idempotent: if ``key`` exists, nothing is written and ``created`` is False.
        """
        audience = audience or Audience()
        dialect = postgresql if self._store.dialect == "postgresql" else sqlite
        with self._store.write() as conn:
            new_id = conn.execute(
                dialect.insert(s)
                .values(
                    kind=kind, key=key, issue_slug=issue_slug, status="scheduled", meta=meta, created_at=now
                )
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(s.c.id)
            ).scalar()
            if new_id is None:
                row = conn.execute(select(s).where(s.c.key == key)).one()
                return Plan(_info(row), created=False)
            rows = select(
                literal(new_id, s.c.id.type), sub.c.id, sub.c.email, literal("pending"), literal(0)
            ).where(*audience.where())
            conn.execute(
                d.insert().from_select(["send_id", "subscriber_id", "email", "status", "attempts"], rows)
            )
            # Counted, not rowcount: psycopg reports -1 for INSERT ... SELECT.
            planned = select(func.count()).where(d.c.send_id == new_id).scalar_subquery()
            conn.execute(update(s).where(s.c.id == new_id).values(planned=planned))
            row = conn.execute(select(s).where(s.c.id == new_id)).one()
        return Plan(_info(row), created=True)

    def audience_size(self, audience: Audience | None = None) -> int:
        """How many rows a plan for ``audience`` would write now (for --dry-run)."""
        query = select(func.count()).select_from(sub).where(*(audience or Audience()).where())
        with self._store.read() as conn:
            return int(conn.execute(query).scalar_one())

    def get_send(self, key: str) -> SendInfo | None:
        with self._store.read() as conn:
            row = conn.execute(select(s).where(s.c.key == key)).first()
        return _info(row) if row else None

    def get_send_by_id(self, send_id: int) -> SendInfo | None:
        with self._store.read() as conn:
            row = conn.execute(select(s).where(s.c.id == send_id)).first()
        return _info(row) if row else None

    # -- the lease ------------------------------------------------------------------
    def acquire(
        self, send_id: int, owner: str, *, now: datetime, ttl: timedelta, steal_from: str | None = None
    ) -> SendInfo:
        """Take the send's lease (free, expired, ours, or ``steal_from``'s); SendBusyError if held."""
        running = {"status": "running", "started_at": func.coalesce(s.c.started_at, now)}
        with self._store.write() as conn:
            took = take(
                conn, SEND_LEASE, send_id, owner, now=now, ttl=ttl, steal_from=steal_from, also=running
            )
            row = conn.execute(select(s).where(s.c.id == send_id)).one()
        if not took:
            raise SendBusyError(row.key, row.lease_owner, row.lease_expires_at)
        return _info(row)

    def renew(self, send_id: int, owner: str, *, now: datetime, ttl: timedelta) -> bool:
        """Heartbeat: extend our lease; False if it is no longer ours (stop sending)."""
        with self._store.write() as conn:
            return renew(conn, SEND_LEASE, send_id, owner, now=now, ttl=ttl)

    def release(self, send_id: int, owner: str, *, now: datetime) -> SendInfo:
        """Give up the lease; the send is ``done`` if nothing is pending, else ``paused``."""
        with self._store.write() as conn:
            pending = conn.execute(
                select(func.count()).where(d.c.send_id == send_id, d.c.status == "pending")
            ).scalar_one()
            status = "paused" if pending else "done"
            conn.execute(
                update(s)
                .where(s.c.id == send_id, s.c.lease_owner == owner)
                .values(
                    lease_owner=None,
                    lease_expires_at=None,
                    status=status,
                    finished_at=None if pending else now,
                )
            )
            row = conn.execute(select(s).where(s.c.id == send_id)).one()
        return _info(row)

    def close_if_done(self, send_id: int, *, now: datetime) -> bool:
        """Mark an unleased send ``done`` when nothing in it is pending; True if it is done."""
        no_pending = ~select(d.c.id).where(d.c.send_id == send_id, d.c.status == "pending").exists()
        with self._store.write() as conn:
            conn.execute(
                update(s)
                .where(s.c.id == send_id, s.c.lease_owner.is_(None), s.c.status != "done", no_pending)
                .values(status="done", finished_at=now)
            )
            return conn.execute(select(s.c.status).where(s.c.id == send_id)).scalar_one() == "done"

    # -- draining ------------------------------------------------------------------
    def pending(
        self,
        send_id: int,
        *,
        after_id: int = 0,
        limit: int = 500,
        id_range: tuple[int, int] | None = None,
    ) -> list[PendingDelivery]:
        """The next ``limit`` pending rows after ``after_id``, in id order (keyset paging)."""
        query = (
            select(
                d.c.id,
                d.c.subscriber_id,
                d.c.email,
                d.c.attempts,
                sub.c.name,
                # re-checked batch by batch, so a suppression during a long send stops mail within seconds
                case((SUPPRESSED, "suppressed"), else_=sub.c.status).label("subscriber_status"),
                sub.c.frequency,
                sub.c.topics,
                sub.c.timezone,
            )
            .join(sub, sub.c.id == d.c.subscriber_id)
            .where(d.c.send_id == send_id, d.c.status == "pending", d.c.id > after_id)
            .order_by(d.c.id)
            .limit(limit)
        )
        if id_range is not None:
            query = query.where(and_(d.c.id >= id_range[0], d.c.id <= id_range[1]))
        with self._store.read() as conn:
            return [PendingDelivery(*row) for row in conn.execute(query)]

    def record(self, outcomes: Outcomes, *, now: datetime) -> None:
        """Write a batch of results in one transaction (only rows still pending change)."""
        if not len(outcomes) and not outcomes.bounced_subscribers:
            return
        still_pending = and_(d.c.id == bindparam("b_id"), d.c.status == "pending")
        with self._store.write() as conn:
            if outcomes.sent:
                conn.execute(
                    update(d)
                    .where(still_pending)
                    .values(
                        status="sent",
                        sent_at=now,
                        message_id=bindparam("b_mid"),
                        attempts=d.c.attempts + 1,
                        last_error=None,
                    ),
                    [{"b_id": i, "b_mid": mid} for i, mid in outcomes.sent],
                )
            for status, items in (("failed", outcomes.failed), ("skipped", outcomes.skipped)):
                if items:
                    conn.execute(
                        update(d)
                        .where(still_pending)
                        .values(status=status, attempts=d.c.attempts + 1, last_error=bindparam("b_err")),
                        [{"b_id": i, "b_err": err[:1000]} for i, err in items],
                    )
            if outcomes.deferred:
                conn.execute(
                    update(d)
                    .where(still_pending)
                    .values(attempts=d.c.attempts + 1, last_error=bindparam("b_err")),
                    [{"b_id": i, "b_err": err[:1000]} for i, err in outcomes.deferred],
                )
            if outcomes.bounced_subscribers:
                conn.execute(
                    update(sub)
                    .where(sub.c.id.in_(outcomes.bounced_subscribers), sub.c.status == "confirmed")
                    .values(status="bounced", updated_at=now, unsubscribed_at=now)
                )

    @contextlib.contextmanager
    def writer(self) -> Iterator[LedgerWriter]:
        """A writer holding one connection for the length of a drain (see LedgerWriter)."""
        raw = self._store.engine.raw_connection()
        try:
            yield LedgerWriter(self, raw, self._store.engine.dialect)
        finally:
            raw.close()

    # -- reporting ----------------------------------------------------------------
    def counts(self, send_id: int) -> SendCounts:
        return self.all_counts([send_id]).get(send_id, SendCounts())

    def all_counts(self, send_ids: Sequence[int] | None = None) -> dict[int, SendCounts]:
        """{send id: counts} of ``send_ids`` (every send if None), in one query.

        Each status is counted on its own range of the (send_id, status) index:
        SQLite then counts index entries without reading them, about twice as
        fast as grouping by status (measured: 19 ms for 5 sends of 97,000 rows
        against 37 ms), and PostgreSQL answers both shapes from the same index.
        """
        tallies = [
            select(func.count()).select_from(d).where(d.c.send_id == s.c.id, d.c.status == status)
            for status in DELIVERY_STATUSES
        ]
        query = select(s.c.id, s.c.planned, *(t.scalar_subquery() for t in tallies))
        if send_ids is not None:
            query = query.where(s.c.id.in_(send_ids))
        with self._store.read() as conn:
            rows = conn.execute(query).all()
        return {
            int(sid): SendCounts(
                planned=planned, **dict(zip(DELIVERY_STATUSES, map(int, counts), strict=True))
            )
            for sid, planned, *counts in rows
        }

    def failures(self, send_id: int, *, limit: int = 100) -> list[tuple[str, str]]:
        """(address, reason) of failed rows, for the end-of-send report."""
        query = (
            select(d.c.email, d.c.last_error)
            .where(d.c.send_id == send_id, d.c.status == "failed")
            .order_by(d.c.id)
            .limit(limit)
        )
        with self._store.read() as conn:
            return [(e, r or "") for e, r in conn.execute(query)]

    def sends(self, *, limit: int = 50) -> list[tuple[SendInfo, SendCounts]]:
        """The newest sends with their counts (``publisher status``)."""
        with self._store.read() as conn:
            rows = [_info(r) for r in conn.execute(select(s).order_by(s.c.id.desc()).limit(limit))]
        counts = self.all_counts([r.id for r in rows])
        return [(r, counts.get(r.id, SendCounts(planned=r.planned))) for r in rows]


class LedgerWriter:
    """The drain's hot path: ``sent`` rows written with one prepared statement on one connection.

    Measured on SQLite here, going through SQLAlchemy Core for each batch costs
    about 650 us a commit; the driver's own executemany on a held connection
    about 100 us, which is what lets every connection wait for its acceptance
    to be recorded without slowing the send down. Rarer outcomes (failures,
    deferrals) take the ordinary path.
    """

    def __init__(self, ledger: Ledger, raw: Any, dialect: Any) -> None:
        self._ledger = ledger
        self._raw = raw
        self._sqlite = dialect.name == "sqlite"
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self._sql = (
            f"UPDATE deliveries SET status = 'sent', sent_at = {mark}, message_id = {mark}, "
            f"attempts = attempts + 1, last_error = NULL WHERE id = {mark} AND status = 'pending'"
        )
        self._when = d.c.sent_at.type._cached_bind_processor(dialect) or (lambda v: v)

    def record(self, outcomes: Outcomes, *, now: datetime) -> None:
        if outcomes.sent:
            when = self._when(now)
            cur = self._raw.cursor()
            try:
                if self._sqlite:
                    cur.execute("BEGIN IMMEDIATE")
                    try:
                        cur.executemany(self._sql, [(when, mid, i) for i, mid in outcomes.sent])
                    except BaseException:
                        cur.execute("ROLLBACK")
                        raise
                    cur.execute("COMMIT")
                else:
                    try:
                        cur.executemany(self._sql, [(when, mid, i) for i, mid in outcomes.sent])
                    except BaseException:
                        self._raw.rollback()
                        raise
                    self._raw.commit()
            finally:
                cur.close()
        if outcomes.failed or outcomes.deferred or outcomes.skipped or outcomes.bounced_subscribers:
            rest = Outcomes()
            rest.failed, rest.deferred, rest.skipped = outcomes.failed, outcomes.deferred, outcomes.skipped
            rest.bounced_subscribers = outcomes.bounced_subscribers
            self._ledger.record(rest, now=now)
