"""Sequences in the database: who is in which sequence, how far, and the steps' sends.

A step is an ordinary ``sends`` row (kind ``issue`` like the welcome mail, the
schema allowing issue and digest; key ``sequence:<name>:<file slug>``) with one
delivery per reader, so the unique (send, subscriber) pair makes each
(reader, sequence, step) one ledger key: planned once, ever, and drained by
``ops.drain`` like any send. Planning is set-based: one INSERT ... SELECT per
step and batch writes the deliveries straight from ``sequence_members`` joined
to ``subscribers`` (the reader's zone picks its day start and lateness floor
from a CASE over the zones whose window is open), then one UPDATE moves the
same members' progress; both in one transaction, so a crash leaves a batch
planned entirely or not at all. Nothing is ever held in Python per reader.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, func, literal, not_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased

from publisher.store.records import NOT_PAUSED, NOT_SUPPRESSED, SendInfo, _info, unfinished_sends
from publisher.store.schema import UtcDateTime
from publisher.store.schema import deliveries as d
from publisher.store.schema import sends as s
from publisher.store.schema import sequence_members as m
from publisher.store.schema import sequence_steps as st
from publisher.store.schema import subscribers as sub
from publisher.store.subscribers import Filter

if TYPE_CHECKING:
    from publisher.store.database import Database as Store

PREFIX = "sequence:"
KIND = "issue"  # as the welcome mail: the key prefix tells a sequence send apart
BATCH = 50_000  # members planned per transaction (each statement may scan a table once)
CACHE_KIB = 65_536  # SQLite page cache of a planning connection (per connection, at most this much)
LEFT = ("unsubscribed", "bounced", "complained")
ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)  # "always there": the first steps of a sequence


@dataclass(frozen=True)
class ZoneWindow:
    """One zone whose send window is open now: its local day's start, and the lateness floor."""

    zone: str
    day_start: datetime  # the reader's local midnight: one sequence mail since then is the day's one
    late_floor: datetime | None  # a step whose slot is before this was missed while down: next window


@dataclass(frozen=True)
class StepRule:
    """Who a step reaches: members short of ``number`` for whom it is the next step that applies.

    ``threshold``: entered at or after it (``first seen - after``), or the step
    appeared when they were already past its point. ``earlier``: (number,
    threshold) of the steps before it; one that still applies to a member comes first.
    """

    sequence: str
    number: int
    after: timedelta
    threshold: datetime
    earlier: tuple[tuple[int, datetime], ...] = ()

    def member_where(self) -> list[Any]:
        clauses: list[Any] = [
            m.c.sequence == self.sequence,
            m.c.ended_at.is_(None),
            m.c.progress < self.number,
            m.c.entered_at >= self.threshold,
        ]
        always = [n for n, threshold in self.earlier if threshold <= ORIGIN]
        if always:  # implied by the clauses below; said outright, it narrows the index range
            clauses.append(m.c.progress >= max(always))
        for number, threshold in self.earlier:
            clauses.append(not_(and_(m.c.progress < number, m.c.entered_at >= threshold)))
        return clauses


def is_sequence_key(key: str) -> bool:
    return key.startswith(PREFIX)


def _zone_case(values: dict[str, datetime]) -> Any:
    """A value per reader's zone, in SQL (``CASE subscribers.timezone WHEN ... END``)."""
    return case({z: literal(v, UtcDateTime()) for z, v in values.items()}, value=sub.c.timezone)


class SequenceStore:
    """Sequence tables on one store: ``SequenceStore(store)``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _insert(self) -> Any:
        return postgresql.insert if self._store.dialect == "postgresql" else sqlite.insert

    # -- steps ---------------------------------------------------------------------------------------
    def observe(self, sequence: str, slugs: Sequence[str], *, now: datetime) -> dict[str, datetime]:
        """Record the step files not seen before; slug -> first seen, for all.

        The steps a sequence has when it is first seen were always there (first
        seen ``ORIGIN``): only a step that appears later is "added later".
        """
        known = self._first_seen(sequence)
        new = [x for x in slugs if x not in known]
        if new:
            when = now if known else ORIGIN
            rows = [{"sequence": sequence, "slug": x, "first_seen_at": when} for x in new]
            with self._store.write() as conn:
                stmt = self._insert()(st).on_conflict_do_nothing(index_elements=["sequence", "slug"])
                conn.execute(stmt, rows)
            known = self._first_seen(sequence)
        return known

    def _first_seen(self, sequence: str) -> dict[str, datetime]:
        query = select(st.c.slug, st.c.first_seen_at).where(st.c.sequence == sequence)
        with self._store.read() as conn:
            return {slug: when for slug, when in conn.execute(query)}

    # -- entering and leaving ------------------------------------------------------------------------
    def enter(
        self,
        sequence: str,
        *,
        now: datetime,
        ids: Sequence[int] | None = None,
        where: Filter | None = None,
        zone: str | None = None,
        progress: int = 0,
    ) -> int:
        """Enter confirmed, unsuppressed subscribers (these ``ids``, or those ``where``/``zone`` match).

        Returns how many are newly in; a member stays a member, so entering twice,
        or after leaving, does nothing.
        """
        who: list[Any] = []
        if ids is not None:
            who.append(sub.c.id.in_(list(ids)))
        if where is not None:
            who.extend(where.where())
        if zone is not None:
            who.append(sub.c.timezone == zone)
        with self._store.write() as conn:
            return self.enter_where(conn, sequence, who, now=now, progress=progress)

    def enter_where(
        self,
        conn: Any,
        sequence: str,
        who: Sequence[Any],
        *,
        now: datetime,
        progress: int = 0,
        last_at: datetime | None = None,
    ) -> int:
        """The INSERT ... SELECT behind :meth:`enter`, on the caller's transaction (the welcome plan's)."""
        other = aliased(m)
        latest = select(func.max(other.c.last_at)).where(other.c.subscriber_id == sub.c.id).scalar_subquery()
        rows = select(
            sub.c.id,
            literal(sequence, m.c.sequence.type),
            literal(now, UtcDateTime()),
            literal(progress, m.c.progress.type),
            literal(last_at, UtcDateTime()) if last_at is not None else latest,
        ).where(*who, sub.c.status == "confirmed", NOT_SUPPRESSED)
        stmt = (
            self._insert()(m)
            .from_select(["subscriber_id", "sequence", "entered_at", "progress", "last_at"], rows)
            .on_conflict_do_nothing(index_elements=["subscriber_id", "sequence"])
            .returning(m.c.id)
        )
        return len(conn.execute(stmt).all())

    def end_left(self, *, now: datetime) -> int:
        """End the membership of everyone who left the list: unsubscribing stops the rest, for good."""
        left = select(sub.c.id).where(sub.c.status.in_(LEFT))
        stmt = update(m).where(m.c.ended_at.is_(None), m.c.subscriber_id.in_(left)).values(ended_at=now)
        with self._store.write() as conn:
            return int(conn.execute(stmt).rowcount or 0)

    # -- planning -------------------------------------------------------------------------------------
    def zones(self) -> list[str]:
        """The time zones of active members' confirmed subscribers."""
        query = select(sub.c.timezone).where(sub.c.status == "confirmed").group_by(sub.c.timezone)
        with self._store.read() as conn:
            return sorted(conn.execute(query).scalars())

    def plan_step(
        self,
        rule: StepRule,
        key: str,
        windows: Sequence[ZoneWindow],
        *,
        now: datetime,
        meta: dict[str, str],
        batch: int = BATCH,
    ) -> int:
        """Plan the step for every member it is due for in an open zone; rows added (batch by batch)."""
        if not windows:
            return 0
        # ``last_at`` is kept the same on all of a reader's memberships: no sequence mail since
        # their local midnight is a test on the row itself, no join.
        day_start = _zone_case({w.zone: w.day_start for w in windows})
        not_today = or_(m.c.last_at.is_(None), m.c.last_at < day_start)
        where = [
            *rule.member_where(),
            m.c.entered_at <= now - rule.after,
            sub.c.timezone.in_([w.zone for w in windows]),
            sub.c.status == "confirmed",
            NOT_SUPPRESSED,
            NOT_PAUSED,  # sunsetting paused them: no mail until they click or save their preferences
            not_today,
        ]
        floors = {w.zone: w.late_floor - rule.after for w in windows if w.late_floor is not None}
        if floors:
            floor = _zone_case(floors)
            where.append(or_(floor.is_(None), m.c.entered_at >= floor))
        total = 0
        while True:
            added = self._plan_batch(rule, key, where, now=now, meta=meta, batch=batch)
            total += added
            if added < batch:
                return total

    def _plan_batch(
        self, rule: StepRule, key: str, where: list[Any], *, now: datetime, meta: dict[str, str], batch: int
    ) -> int:
        with self._store.write() as conn:
            if self._store.dialect == "sqlite":  # the indexes a round walks outgrow the 2 MB default
                conn.exec_driver_sql(f"PRAGMA cache_size = -{CACHE_KIB}")
            send_id = self._send_row(conn, key, now, meta)
            before = conn.execute(select(func.coalesce(func.max(d.c.id), 0))).scalar_one()
            rows = (
                select(literal(send_id, s.c.id.type), sub.c.id, sub.c.email, literal("pending"), literal(0))
                .select_from(m.join(sub, sub.c.id == m.c.subscriber_id))
                .where(*where)
                # In the index's order: a fast-start plan (index range, then one row each by key) rather
                # than PostgreSQL's hash joins over the whole tables, repeated for every batch.
                .order_by(m.c.sequence, m.c.progress, m.c.entered_at)
                .limit(batch)
            )
            conn.execute(
                self._insert()(d)
                .from_select(["send_id", "subscriber_id", "email", "status", "attempts"], rows)
                .on_conflict_do_nothing(index_elements=["send_id", "subscriber_id"])
            )
            fresh = (d.c.send_id == send_id, d.c.status == "pending", d.c.id > before)
            added = conn.execute(select(func.count()).where(*fresh)).scalar_one()
            new = select(d.c.subscriber_id).where(*fresh)
            conn.execute(
                update(m)
                .where(m.c.subscriber_id.in_(new))  # every membership of theirs: today's mail is used
                .values(
                    progress=case((m.c.sequence == rule.sequence, rule.number), else_=m.c.progress),
                    last_at=now,
                )
            )
            if added:
                planned = select(func.count()).where(d.c.send_id == send_id).scalar_subquery()
                reopen = case((s.c.status == "done", "scheduled"), else_=s.c.status)
                conn.execute(
                    update(s)
                    .where(s.c.id == send_id)
                    .values(planned=planned, status=reopen, finished_at=None)
                )
        return int(added or 0)

    def _send_row(self, conn: Any, key: str, now: datetime, meta: dict[str, str]) -> int:
        send_id = conn.execute(
            self._insert()(s)
            .values(
                kind=KIND, key=key, status="scheduled", meta=json.dumps(meta, sort_keys=True), created_at=now
            )
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(s.c.id)
        ).scalar()
        if send_id is None:
            send_id = conn.execute(select(s.c.id).where(s.c.key == key)).scalar_one()
        return int(send_id)

    # -- draining -------------------------------------------------------------------------------------
    def unfinished(self) -> list[SendInfo]:
        """Sequence sends with rows pending, oldest first."""
        with self._store.read() as conn:
            return [_info(r) for r in conn.execute(unfinished_sends(PREFIX))]

    def skip_pending(self, send_id: int, reason: str) -> int:
        """Mark a send's pending rows skipped (its step file was removed): they are never sent."""
        stmt = (
            update(d)
            .where(d.c.send_id == send_id, d.c.status == "pending")
            .values(status="skipped", last_error=reason)
        )
        with self._store.write() as conn:
            return int(conn.execute(stmt).rowcount or 0)

    # -- reporting ------------------------------------------------------------------------------------
    def at_steps(self) -> dict[tuple[str, int], int]:
        """(sequence, progress) -> active members whose last planned step is that one (0: none yet)."""
        query = (
            select(m.c.sequence, m.c.progress, func.count())
            .where(m.c.ended_at.is_(None))
            .group_by(m.c.sequence, m.c.progress)
        )
        with self._store.read() as conn:
            return {(seq, p): int(n) for seq, p, n in conn.execute(query)}

    def due_by(self, rule: StepRule, until: datetime) -> int:
        """Active, confirmed members for whom this is the next step and who reach its time by ``until``."""
        query = (
            select(func.count())
            .select_from(m.join(sub, sub.c.id == m.c.subscriber_id))
            .where(*rule.member_where(), m.c.entered_at <= until - rule.after, sub.c.status == "confirmed")
        )
        with self._store.read() as conn:
            return int(conn.execute(query).scalar_one())
