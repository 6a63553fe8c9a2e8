"""Digest bookkeeping: article arrivals, per-subscriber marks, and who got which period.

A digest holds "what arrived since your last one". Arrival is a sequence
number given to an article slug the first time the system sees it, so an
article back-dated into a period already sent still arrives *now* and is in
the next digest, and none is counted twice. Each subscriber's mark is the
highest arrival already digested for them; a subscriber without one (their
first digest) starts from the highest arrival first seen by the time they
subscribed (:meth:`DigestState.seen_by`), so an archive older than them is
not "new" to them (issue 13.6).

``digest_recipients`` has one row per (subscriber, frequency, period), unique:
whatever fires twice (a DST repeat, a restart, a manual run) finds the row
and sends nothing. Recording a page of the round (per zone: sends row,
variants, recipients, deliveries, marks) is one transaction, so a crash
leaves each subscriber's row, delivery and mark all written or none, and the
next round finds exactly those not yet recorded. The subscriber ids of a page
go to the database as one parameter (a JSON array on SQLite, an array on
PostgreSQL), so recording a million is a few statements per page, not a
million bound rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, exists, func, select, type_coerce
from sqlalchemy.dialects import postgresql, sqlite

from publisher.store.digest_record import PageWriter
from publisher.store.digest_tables import (
    Candidate,
    Contents,
    DigestSend,
    Lede,
    Recorded,
    VariantPlan,
    ZoneShare,
    article_arrivals,
    digest_marks,
    digest_recipients,
    digest_variants,
    fingerprint,
    load_contents,
)
from publisher.store.records import NOT_PAUSED, NOT_SUPPRESSED
from publisher.store.schema import deliveries as d
from publisher.store.schema import sends as s
from publisher.store.schema import subscribers as sub

if TYPE_CHECKING:
    from publisher.store.engine import Store

arr, mk, var, rcp = article_arrivals, digest_marks, digest_variants, digest_recipients
PAGE = 50_000  # candidates planned and recorded at a time: some 20 MB, and few transactions per zone

__all__ = [
    "Candidate",
    "Contents",
    "DigestSend",
    "DigestState",
    "Lede",
    "Recorded",
    "VariantPlan",
    "ZoneShare",
    "article_arrivals",
    "digest_marks",
    "digest_recipients",
    "digest_variants",
    "fingerprint",
]


def _sqlite_utc(text: str) -> datetime:
    """A UTC time as SQLite stores it (``2026-12-01 07:00:00.000000``), aware, as UtcDateTime reads it."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _same(value: datetime) -> datetime:
    return value


class _Topics(dict[str, tuple[str, ...]]):
    """``subscribers.topics`` split, once per distinct value (most subscribers share a few)."""

    def __missing__(self, text: str) -> tuple[str, ...]:
        got = self[text] = tuple(t for t in text.split(";") if t)
        return got


class DigestState:
    """Digest tables on one store: ``DigestState(store)``."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._analyzed: set[str] = set()  # periods PostgreSQL has counted in this round

    def _insert(self) -> Any:
        return postgresql.insert if self._store.dialect == "postgresql" else sqlite.insert

    # -- arrivals -----------------------------------------------------------------------------------
    def arrivals(self) -> dict[str, int]:
        """slug -> arrival sequence number, for every article ever seen."""
        with self._store.read() as conn:
            return {slug: seq for slug, seq in conn.execute(select(arr.c.slug, arr.c.seq))}

    def observe(self, items: Iterable[tuple[str, str, datetime]], *, now: datetime) -> dict[str, int]:
        """Give each (slug, article id, date) not seen before the next sequence numbers; all of them.

        Articles first seen together are numbered by date, then slug, so a
        first scan of an archive keeps its order.
        """
        known = self.arrivals()
        new = sorted((i for i in items if i[0] not in known), key=lambda i: (i[2], i[0]))
        if not new:
            return known
        rows = [{"slug": slug, "article_id": aid, "first_seen_at": now} for slug, aid, _ in new]
        with self._store.write() as conn:
            conn.execute(self._insert()(arr).on_conflict_do_nothing(index_elements=["slug"]), rows)
        return self.arrivals()

    def seen_by(self) -> list[tuple[datetime, int]]:
        """(first seen at, highest arrival first seen by then), in time order: a subscriber's start mark."""
        query = select(arr.c.first_seen_at, func.max(arr.c.seq)).group_by(arr.c.first_seen_at)
        with self._store.read() as conn:
            rows = sorted((when, seq) for when, seq in conn.execute(query))
        out: list[tuple[datetime, int]] = []
        for when, seq in rows:  # running max: a clock that stepped back never lowers a mark
            out.append((when, max(seq, out[-1][1]) if out else seq))
        return out

    # -- who may be due -----------------------------------------------------------------------------
    def zones(self, frequency: str) -> list[str]:
        """The time zones of confirmed subscribers of ``frequency``."""
        query = (
            select(sub.c.timezone)
            .where(sub.c.status == "confirmed", sub.c.frequency == frequency)
            .group_by(sub.c.timezone)
        )
        with self._store.read() as conn:
            return sorted(conn.execute(query).scalars())

    def candidate_pages(
        self, frequency: str, period: str, zones: Sequence[str], *, size: int | None = None
    ) -> Iterator[list[Candidate]]:
        """Confirmed ``frequency`` subscribers of ``zones`` without a row for ``period``, a page at a time.

        Pages follow the id (``id > last``), each read in a short transaction of
        its own: a round never holds the whole list, nor keeps a read open while
        it records (on SQLite's WAL that would stop checkpoints, and the WAL grow).
        """
        size = size or PAGE  # read at the call, so a test can make pages small
        after = 0
        split = _Topics()
        while True:
            query = self._due(frequency, period, zones, after).order_by(sub.c.id).limit(size)
            with self._store.read() as conn:
                rows = conn.execute(query).all()
            if rows:
                utc = _sqlite_utc if self._store.dialect == "sqlite" else _same
                yield [Candidate(i, split[t], z, utc(c), m, bool(d)) for i, t, z, c, m, d in rows]
            if len(rows) < size:
                return
            after = rows[-1][0]

    def waiting(self, frequency: str, period: str, zones: Sequence[str], starts: datetime) -> bool:
        """Whether anyone in ``zones`` subscribed by ``starts`` still lacks ``period`` (a digest missed)."""
        query = self._due(frequency, period, zones, 0).where(sub.c.created_at <= starts).limit(1)
        with self._store.read() as conn:
            return conn.execute(query).first() is not None

    def _due(self, frequency: str, period: str, zones: Sequence[str], after: int) -> Any:
        """Who lacks ``period``, from id ``after`` on.

        ``subscriber_id > after`` is implied, and said for PostgreSQL: rows the
        round recorded are all at or below ``after``, so however the planner
        joins them it never walks what this round has written.
        """
        done = exists().where(
            rcp.c.subscriber_id == sub.c.id,
            rcp.c.subscriber_id > after,
            rcp.c.frequency == frequency,
            rcp.c.period == period,
        )
        mailed = exists().where(
            rcp.c.subscriber_id == sub.c.id, rcp.c.subscriber_id > after, rcp.c.send_id.is_not(None)
        )
        # SQLite's text as it is: SQLAlchemy's parser costs more than the rest of planning (_sqlite_utc)
        created = (
            type_coerce(sub.c.created_at, String) if self._store.dialect == "sqlite" else sub.c.created_at
        )
        return (
            select(
                sub.c.id,
                sub.c.topics,
                sub.c.timezone,
                created,
                mk.c.last_seq,
                mailed.label("mailed"),
            )
            .select_from(sub.outerjoin(mk, mk.c.subscriber_id == sub.c.id))
            .where(
                sub.c.status == "confirmed",
                sub.c.frequency == frequency,
                sub.c.timezone.in_(zones),
                NOT_SUPPRESSED,
                NOT_PAUSED,
                ~done,
                sub.c.id > after,
            )
        )

    # -- recording a round ----------------------------------------------------------------------------
    def record(
        self, frequency: str, shares: Sequence[ZoneShare], *, now: datetime, to_seq: int
    ) -> list[Recorded]:
        """Write a page of a round, every zone's share of it, in one transaction (``digest_record``).

        Per zone: creates (or adds to) its send, a variant per article list, a
        recipient row per subscriber (unique per frequency and period: those who
        already have the period are left out), their deliveries, and moves
        their marks up to ``to_seq``.
        """
        with self._store.write() as conn:
            out = PageWriter(conn, self._store.dialect, frequency, now=now, to_seq=to_seq).write(shares)
        periods = {share.period for share in shares} - self._analyzed
        if self._store.dialect == "postgresql" and periods:
            # A new period is a value PostgreSQL's statistics have never seen: it guesses one row
            # has it, and the next round would anti-join each subscriber against a list of every
            # row of the period (quadratic). Counted once per period and round, it is planned right.
            self._analyzed |= periods
            with self._store.write() as conn:
                conn.exec_driver_sql("ANALYZE digest_recipients")
        return out

    # -- draining -------------------------------------------------------------------------------------
    def unfinished(self) -> list[DigestSend]:
        """Digest sends with rows still pending (new, interrupted, or topped up), oldest first."""
        pending = exists().where(d.c.send_id == s.c.id, d.c.status == "pending")
        query = select(s.c.id, s.c.key, s.c.created_at, s.c.meta).where(s.c.kind == "digest", pending)
        with self._store.read() as conn:
            return [DigestSend(*r) for r in conn.execute(query.order_by(s.c.id))]

    def variant_map(self, send_id: int) -> dict[int, int]:
        """subscriber id -> variant id, for one send."""
        query = select(rcp.c.subscriber_id, rcp.c.variant_id).where(rcp.c.send_id == send_id)
        with self._store.read() as conn:
            return {sid: vid for sid, vid in conn.execute(query)}

    def variants(self, send_id: int) -> dict[int, Contents]:
        """variant id -> its contents (article slugs in order, and the lede)."""
        query = select(var.c.id, var.c.articles).where(var.c.send_id == send_id)
        with self._store.read() as conn:
            return {vid: load_contents(text) for vid, text in conn.execute(query)}

    # -- reporting ------------------------------------------------------------------------------------
    def history(self, subscriber_id: int) -> list[tuple[str, str, str | None, tuple[str, ...]]]:
        """(frequency, period, send key or None, article slugs) of every digest period, oldest first."""
        query = (
            select(rcp.c.frequency, rcp.c.period, s.c.key, var.c.articles)
            .select_from(
                rcp.outerjoin(s, s.c.id == rcp.c.send_id).outerjoin(var, var.c.id == rcp.c.variant_id)
            )
            .where(rcp.c.subscriber_id == subscriber_id)
            .order_by(rcp.c.id)
        )
        with self._store.read() as conn:
            return [(f, p, k, load_contents(a).articles if a else ()) for f, p, k, a in conn.execute(query)]
