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
and sends nothing. Recording a round (sends row, variants, recipients,
deliveries, marks) is one transaction, so a crash leaves all of it or none.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, exists, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from publisher.store.digest_tables import (
    Candidate,
    Contents,
    DigestSend,
    Lede,
    Recorded,
    VariantPlan,
    article_arrivals,
    digest_marks,
    digest_recipients,
    digest_variants,
    dump_contents,
    fingerprint,
    load_contents,
)
from publisher.store.records import NOT_SUPPRESSED
from publisher.store.schema import deliveries as d
from publisher.store.schema import sends as s
from publisher.store.schema import subscribers as sub

if TYPE_CHECKING:
    from publisher.store.engine import Store

arr, mk, var, rcp = article_arrivals, digest_marks, digest_variants, digest_recipients

__all__ = [
    "Candidate",
    "Contents",
    "DigestSend",
    "DigestState",
    "Lede",
    "Recorded",
    "VariantPlan",
    "article_arrivals",
    "digest_marks",
    "digest_recipients",
    "digest_variants",
    "fingerprint",
]


class DigestState:
    """Digest tables on one store: ``DigestState(store)``."""

    def __init__(self, store: Store) -> None:
        self._store = store

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

    def candidates(self, frequency: str, periods: dict[str, str]) -> list[Candidate]:
        """Confirmed ``frequency`` subscribers in the zones given, without a digest row for their period."""
        by_period: dict[str, list[str]] = {}
        for zone, period in periods.items():
            by_period.setdefault(period, []).append(zone)
        out: list[Candidate] = []
        with self._store.read() as conn:
            for period, zones in sorted(by_period.items()):
                done = exists().where(
                    rcp.c.subscriber_id == sub.c.id, rcp.c.frequency == frequency, rcp.c.period == period
                )
                mailed = exists().where(rcp.c.subscriber_id == sub.c.id, rcp.c.send_id.is_not(None))
                query = (
                    select(
                        sub.c.id,
                        sub.c.email,
                        sub.c.name,
                        sub.c.topics,
                        sub.c.timezone,
                        sub.c.created_at,
                        mk.c.last_seq,
                        mailed.label("mailed"),
                    )
                    .select_from(sub.outerjoin(mk, mk.c.subscriber_id == sub.c.id))
                    .where(
                        sub.c.status == "confirmed",
                        sub.c.frequency == frequency,
                        sub.c.timezone.in_(zones),
                        NOT_SUPPRESSED,
                        ~done,
                    )
                    .order_by(sub.c.id)
                )
                for r in conn.execute(query):
                    topics = tuple(t for t in r.topics.split(";") if t)
                    out.append(
                        Candidate(
                            r.id,
                            r.email,
                            r.name,
                            topics,
                            r.timezone,
                            r.created_at,
                            r.last_seq,
                            bool(r.mailed),
                        )
                    )
        return out

    # -- recording a round ----------------------------------------------------------------------------
    def record(
        self,
        frequency: str,
        period: str,
        key: str,
        *,
        now: datetime,
        to_seq: int,
        variants: Sequence[VariantPlan],
        quiet: Sequence[int],
        meta: dict[str, str] | None = None,
    ) -> Recorded:
        """Write one zone's round in one transaction; subscribers who already have the period are left out.

        Creates (or adds to) the send ``key``, a variant per article list, a
        recipient row per subscriber (unique per frequency and period), their
        deliveries, and moves their marks up to ``to_seq``.
        """
        send_id: int | None = None
        claimed: list[int] = []
        mailed = 0
        quiet_claimed: list[int] = []
        with self._store.write() as conn:
            if any(v.subscriber_ids for v in variants):
                send_id = self._send_row(conn, key, meta, now)
            for v in variants:
                if not v.subscriber_ids or send_id is None:
                    continue
                vid = self._variant_row(conn, send_id, v.contents, to_seq, now)
                got = self._claim(conn, frequency, period, now, v.subscriber_ids, send_id, vid)
                claimed.extend(got)
                if got:
                    mailed += self._deliveries(conn, send_id, vid)
            if quiet:
                quiet_claimed = self._claim(conn, frequency, period, now, quiet, None, None)
            self._raise_marks(conn, claimed + quiet_claimed, to_seq, now)
            if send_id is not None and mailed:
                self._reopen(conn, send_id)
        return Recorded(
            key, send_id, mailed, len(quiet_claimed), sum(1 for v in variants if v.subscriber_ids)
        )

    def _send_row(self, conn: Any, key: str, meta: dict[str, str] | None, now: datetime) -> int:
        """The id of the digest send ``key``, created unless an earlier zone or round made it."""
        send_id = conn.execute(
            self._insert()(s)
            .values(
                kind="digest",
                key=key,
                status="scheduled",
                meta=json.dumps(meta or {}, sort_keys=True),
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(s.c.id)
        ).scalar()
        if send_id is None:
            send_id = conn.execute(select(s.c.id).where(s.c.key == key)).scalar_one()
        return int(send_id)

    def _variant_row(self, conn: Any, send_id: int, contents: Contents, to_seq: int, now: datetime) -> int:
        """The id of the send's variant for ``contents`` (one per fingerprint), created if new."""
        fp = fingerprint(contents, to_seq)
        conn.execute(
            self._insert()(var)
            .values(send_id=send_id, fingerprint=fp, articles=dump_contents(contents), created_at=now)
            .on_conflict_do_nothing(index_elements=["send_id", "fingerprint"])
        )
        return int(
            conn.execute(
                select(var.c.id).where(var.c.send_id == send_id, var.c.fingerprint == fp)
            ).scalar_one()
        )

    def _reopen(self, conn: Any, send_id: int) -> None:
        """Count the send's deliveries again and reopen it if done: new rows were added to it."""
        planned = select(func.count()).where(d.c.send_id == send_id).scalar_subquery()
        reopen = case((s.c.status == "done", "scheduled"), else_=s.c.status)
        conn.execute(
            update(s).where(s.c.id == send_id).values(planned=planned, status=reopen, finished_at=None)
        )

    def _claim(
        self,
        conn: Any,
        frequency: str,
        period: str,
        now: datetime,
        ids: Sequence[int],
        send_id: int | None,
        variant_id: int | None,
    ) -> list[int]:
        """Insert recipient rows; the ids actually inserted (the others already had this period)."""
        rows = [
            {
                "subscriber_id": i,
                "frequency": frequency,
                "period": period,
                "send_id": send_id,
                "variant_id": variant_id,
                "created_at": now,
            }
            for i in ids
        ]
        stmt = (
            self._insert()(rcp)
            .on_conflict_do_nothing(index_elements=["subscriber_id", "frequency", "period"])
            .returning(rcp.c.subscriber_id)
        )
        return list(conn.execute(stmt, rows).scalars())

    def _deliveries(self, conn: Any, send_id: int, variant_id: int) -> int:
        """The ledger rows for a variant's recipients (straight from subscribers, as plan_send does)."""
        planned = exists().where(d.c.send_id == send_id, d.c.subscriber_id == rcp.c.subscriber_id)
        rows = (
            select(literal(send_id, s.c.id.type), sub.c.id, sub.c.email, literal("pending"), literal(0))
            .select_from(rcp.join(sub, sub.c.id == rcp.c.subscriber_id))
            .where(
                rcp.c.send_id == send_id,  # indexed; the variant alone is not
                rcp.c.variant_id == variant_id,
                sub.c.status == "confirmed",
                NOT_SUPPRESSED,
                ~planned,
            )
        )
        before = conn.execute(select(func.count()).where(d.c.send_id == send_id)).scalar_one()
        conn.execute(
            d.insert().from_select(["send_id", "subscriber_id", "email", "status", "attempts"], rows)
        )
        after = conn.execute(select(func.count()).where(d.c.send_id == send_id)).scalar_one()
        return int(after - before)

    def _raise_marks(self, conn: Any, ids: Sequence[int], to_seq: int, now: datetime) -> None:
        if not ids:
            return
        stmt = self._insert()(mk)
        stmt = stmt.on_conflict_do_update(
            index_elements=["subscriber_id"],
            set_={
                "last_seq": case(
                    (stmt.excluded.last_seq > mk.c.last_seq, stmt.excluded.last_seq), else_=mk.c.last_seq
                ),
                "updated_at": stmt.excluded.updated_at,
            },
        )
        conn.execute(stmt, [{"subscriber_id": i, "last_seq": to_seq, "updated_at": now} for i in ids])

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
