"""Recording a page of a digest round: a few statements per page, in subscriber id order.

A page (``DigestState.record``) is one transaction: per zone a send row and a
variant row per article list, then, for the whole page at once, the recipient
rows (unique per subscriber, frequency and period: whoever already has the
period is refused and left out of the rest), the deliveries of those who may
still get mail, and the marks. The subscribers go to the database as one
parameter (a JSON array read by ``json_each`` on SQLite, arrays ``unnest``-ed
on PostgreSQL), not a bound row each, and in id order: every index keyed by
subscriber is then written in one sweep per page. Written per zone and per
variant instead, each sweep crossed the same index pages again, and on
SQLite's small page cache that made recording a million 2-3 times slower.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, String, case, func, literal, select, true, update
from sqlalchemy.dialects import postgresql, sqlite

from publisher.store.digest_tables import (
    Contents,
    Recorded,
    ZoneShare,
    digest_marks,
    digest_recipients,
    digest_variants,
    dump_contents,
    fingerprint,
)
from publisher.store.records import NOT_PAUSED, NOT_SUPPRESSED
from publisher.store.schema import UtcDateTime
from publisher.store.schema import deliveries as d
from publisher.store.schema import sends as s
from publisher.store.schema import subscribers as sub

mk, var, rcp = digest_marks, digest_variants, digest_recipients
Row = tuple[int, int | None, int | None]  # subscriber, send, variant (None, None: due, no mail)


class PageWriter:
    """Writes one page of a round on ``conn`` (inside the caller's transaction)."""

    def __init__(self, conn: Any, dialect: str, frequency: str, *, now: datetime, to_seq: int) -> None:
        self.conn, self.dialect, self.frequency, self.now, self.to_seq = conn, dialect, frequency, now, to_seq
        self.insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    def write(self, shares: Sequence[ZoneShare]) -> list[Recorded]:
        rows_by_period: dict[str, list[Row]] = {}
        sends: list[int | None] = []
        for share in shares:
            send_id = self._send_row(share) if any(v.subscriber_ids for v in share.variants) else None
            sends.append(send_id)
            rows = rows_by_period.setdefault(share.period, [])
            for v in share.variants:
                if v.subscriber_ids and send_id is not None:
                    vid = self._variant_row(send_id, v.contents)
                    rows.extend((i, send_id, vid) for i in v.subscriber_ids)
            rows.extend((i, None, None) for i in share.quiet)
        claimed: set[int] = set()
        for period, rows in rows_by_period.items():
            rows.sort()
            claimed.update(self._claim(period, rows))
        added = self._deliveries(
            [(i, send) for rows in rows_by_period.values() for i, send, _v in rows if send and i in claimed]
        )
        self._raise_marks(sorted(claimed))
        for send_id, n in added.items():
            self._reopen(send_id, n)
        return [
            Recorded(
                share.key,
                send_id,
                added.get(send_id, 0) if send_id is not None else 0,
                sum(1 for i in share.quiet if i in claimed),
                sum(1 for v in share.variants if v.subscriber_ids),
            )
            for share, send_id in zip(shares, sends, strict=True)
        ]

    def _table(self, names: Sequence[str], rows: Sequence[Sequence[int | None]]) -> Any:
        """``rows`` as a table with columns ``names``, sent as one parameter rather than a row each."""
        if self.dialect == "postgresql":
            arrays = [literal([r[n] for r in rows], postgresql.ARRAY(BigInteger)) for n in range(len(names))]
            return func.unnest(*arrays).table_valued(*names).render_derived()
        each = func.json_each(literal(json.dumps(rows), String)).table_valued("value")
        columns = [func.json_extract(each.c.value, f"$[{n}]").label(name) for n, name in enumerate(names)]
        return select(*columns).select_from(each).subquery()

    def _send_row(self, share: ZoneShare) -> int:
        """The id of the zone's digest send, created unless an earlier page or round made it."""
        meta = json.dumps(share.meta, sort_keys=True)
        send_id = self.conn.execute(
            self.insert(s)
            .values(kind="digest", key=share.key, status="scheduled", meta=meta, created_at=self.now)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(s.c.id)
        ).scalar()
        if send_id is None:
            send_id = self.conn.execute(select(s.c.id).where(s.c.key == share.key)).scalar_one()
        return int(send_id)

    def _variant_row(self, send_id: int, contents: Contents) -> int:
        """The id of the send's variant for ``contents`` (one per fingerprint), created if new."""
        fp = fingerprint(contents, self.to_seq)
        self.conn.execute(
            self.insert(var)
            .values(send_id=send_id, fingerprint=fp, articles=dump_contents(contents), created_at=self.now)
            .on_conflict_do_nothing(index_elements=["send_id", "fingerprint"])
        )
        query = select(var.c.id).where(var.c.send_id == send_id, var.c.fingerprint == fp)
        return int(self.conn.execute(query).scalar_one())

    def _claim(self, period: str, rows: Sequence[Row]) -> list[int]:
        """Insert recipient rows; the ids actually inserted (the others already had this period)."""
        t = self._table(("id", "send_id", "variant_id"), rows)
        values = select(
            t.c.id,
            literal(self.frequency, String),
            literal(period, String),
            t.c.send_id,
            t.c.variant_id,
            literal(self.now, UtcDateTime),
        ).where(true())  # SQLite: an upsert's SELECT needs a WHERE (else its ON reads as a join's)
        stmt = (
            self.insert(rcp)
            .from_select(
                ["subscriber_id", "frequency", "period", "send_id", "variant_id", "created_at"], values
            )
            .on_conflict_do_nothing(index_elements=["subscriber_id", "frequency", "period"])
            .returning(rcp.c.subscriber_id)
        )
        return [int(i) for i in self.conn.execute(stmt).scalars()]

    def _deliveries(self, rows: Sequence[tuple[int, int]]) -> Counter[int]:
        """Ledger rows for those just claimed who may still get mail (as plan_send plans): how many per send.

        Driven by the list, each subscriber read by id: joined the other way,
        SQLite would walk every confirmed subscriber to find the ones listed.
        """
        if not rows:
            return Counter()
        t = self._table(("id", "send_id"), rows)
        email = (
            select(sub.c.email)
            .where(sub.c.id == t.c.id, sub.c.status == "confirmed", NOT_SUPPRESSED, NOT_PAUSED)
            .scalar_subquery()
        )
        # materialised, so each subscriber is looked up once (a subquery is flattened, and looked up twice)
        live = select(t.c.id, t.c.send_id, email.label("email")).cte("live").prefix_with("MATERIALIZED")
        values = select(live.c.send_id, live.c.id, live.c.email, literal("pending"), literal(0))
        stmt = (
            self.insert(d)
            .from_select(
                ["send_id", "subscriber_id", "email", "status", "attempts"],
                values.where(live.c.email.is_not(None)),
            )
            .on_conflict_do_nothing(index_elements=["send_id", "subscriber_id"])
            .returning(d.c.send_id)
        )
        return Counter(int(i) for i in self.conn.execute(stmt).scalars())

    def _raise_marks(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        t = self._table(("id",), [(i,) for i in ids])
        values = select(t.c.id, literal(self.to_seq, BigInteger), literal(self.now, UtcDateTime)).where(
            true()
        )
        stmt = self.insert(mk).from_select(["subscriber_id", "last_seq", "updated_at"], values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["subscriber_id"],
            set_={
                "last_seq": case(
                    (stmt.excluded.last_seq > mk.c.last_seq, stmt.excluded.last_seq), else_=mk.c.last_seq
                ),
                "updated_at": stmt.excluded.updated_at,
            },
        )
        self.conn.execute(stmt)

    def _reopen(self, send_id: int, added: int) -> None:
        """Count the new deliveries in and reopen the send if done: rows were added to it.

        Deliveries are only ever added here (never deleted: a subscriber who
        leaves is ``skipped``), so adding keeps ``planned`` equal to the count
        without counting a growing send again for every page.
        """
        reopen = case((s.c.status == "done", "scheduled"), else_=s.c.status)
        self.conn.execute(
            update(s)
            .where(s.c.id == send_id)
            .values(planned=s.c.planned + added, status=reopen, finished_at=None)
        )
