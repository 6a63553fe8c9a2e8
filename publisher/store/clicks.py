"""Click counting's tables and the only SQL about them.

A send records the links its mail carries (``click_links``); a click through
``/r/<token>`` looks its link up here (the redirect goes nowhere else) and is
written as one append-only ``click_events`` row plus an upsert of its hour in
``click_hours``, in the same transaction, so reports read the rollup (a few
rows per link and hour) however many events there are, and pruning raw events
after ``analytics.retention`` leaves the figures whole. Nothing here names a
reader: no address, no IP, no user agent (a click's class only).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from publisher.store.engagement import ReaderClick, write_reader_clicks
from publisher.store.schema import Id, UtcDateTime, metadata, sends

if TYPE_CHECKING:
    from publisher.store.database import Database

CLICK_KINDS = ("human", "scanner", "prefetch")
_KINDS = "kind IN ('human', 'scanner', 'prefetch')"

click_links = Table(
    "click_links",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("send_key", String(200), nullable=False),  # sends.key: the send may be planned later
    Column("link_no", Integer, nullable=False),
    Column("url", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("send_key", "link_no"),
)

click_events = Table(
    "click_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("link_id", Id, ForeignKey("click_links.id", ondelete="CASCADE"), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", String(16), nullable=False),
    CheckConstraint(_KINDS, name="kind"),
    Index("ix_click_events_at", "at"),
)

click_hours = Table(
    "click_hours",
    metadata,
    Column("link_id", Id, ForeignKey("click_links.id", ondelete="CASCADE"), nullable=False),
    Column("hour", UtcDateTime, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("clicks", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("link_id", "hour", "kind"),
    CheckConstraint(_KINDS, name="kind"),
    # reports sum clicks per link and class, and per hour of one class: read from the index alone (0013)
    Index("ix_click_hours_link_kind_hour", "link_id", "kind", "hour", "clicks"),
)

cl, ce, ch = click_links, click_events, click_hours
_ADD_EVENTS = ce.insert()


@dataclass(frozen=True)
class LinkTarget:
    """Where one link of one send goes, and when that send started (None: not planned yet)."""

    link_id: int
    url: str
    send_started: datetime | None


@dataclass(frozen=True)
class Click:
    link_id: int
    at: datetime
    kind: str  # one of CLICK_KINDS
    subscriber_id: int | None = None  # analytics.per_subscriber only (``store.engagement``)


@dataclass(frozen=True)
class LinkClicks:
    link_no: int
    url: str
    by_kind: dict[str, int]


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _numbering(rows: Iterable[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for link_no, url in rows:
        out.setdefault(url, int(link_no))
    return out


class Clicks:
    """The click tables on one store: ``store.clicks``."""

    def __init__(self, store: Database) -> None:
        self._store = store

    def _insert(self) -> Any:
        return postgresql.insert if self._store.dialect == "postgresql" else sqlite.insert

    def record_links(self, send_key: str, urls: Sequence[str], *, now: datetime) -> None:
        """Record link 1..n of a send (idempotent: a link once recorded keeps its first URL)."""
        if not urls:
            return
        rows = [
            {"send_key": send_key, "link_no": n, "url": url, "created_at": now}
            for n, url in enumerate(urls, start=1)
        ]
        stmt = self._insert()(cl).on_conflict_do_nothing(index_elements=["send_key", "link_no"])
        with self._store.write() as conn:
            conn.execute(stmt, rows)

    def numbering(self, send_key: str) -> dict[str, int]:
        """URL -> number of every link a send recorded, in number order (a URL's first number)."""
        query = select(cl.c.link_no, cl.c.url).where(cl.c.send_key == send_key).order_by(cl.c.link_no)
        with self._store.read() as conn:
            return _numbering(conn.execute(query))

    def register(self, send_key: str, numbers: Mapping[str, int], *, now: datetime) -> dict[str, int]:
        """Record a send's numbered links unless they clash with what it holds; the send's numbering after.

        For sends whose messages are prepared in several places (a digest's
        variants, by the scheduler or by workers at once): each preparation
        numbers new URLs after the recorded ones and registers them here. One
        transaction that reads and then writes (PostgreSQL: the send's row
        locked first), so two preparations never give one number two URLs or
        one URL two numbers: the later one finds the clash, records nothing,
        and numbers again from the numbering returned (``numbers`` matches it
        exactly when its links are the send's).
        """
        query = select(cl.c.link_no, cl.c.url).where(cl.c.send_key == send_key).order_by(cl.c.link_no)
        with self._store.write() as conn:
            if self._store.dialect == "postgresql":
                conn.execute(select(sends.c.id).where(sends.c.key == send_key).with_for_update())
            held = _numbering(conn.execute(query))
            taken = set(held.values())
            new = {url: n for url, n in numbers.items() if url not in held}
            if any(held.get(url, n) != n for url, n in numbers.items()) or taken & set(new.values()):
                return held
            if new:
                rows = [
                    {"send_key": send_key, "link_no": n, "url": url, "created_at": now}
                    for url, n in new.items()
                ]
                conn.execute(cl.insert(), rows)
        return {**held, **new}

    def target(self, send_key: str, link_no: int) -> LinkTarget | None:
        """The recorded link, or None: a token for a link the send never recorded goes nowhere."""
        started = func.coalesce(sends.c.started_at, sends.c.created_at)
        query = (
            select(cl.c.id, cl.c.url, started)
            .select_from(cl.outerjoin(sends, sends.c.key == cl.c.send_key))
            .where(cl.c.send_key == send_key, cl.c.link_no == link_no)
        )
        with self._store.read() as conn:
            row = conn.execute(query).first()
        return LinkTarget(int(row[0]), row[1], row[2]) if row else None

    def record(self, clicks: Iterable[Click], *, conn: Connection | None = None) -> None:
        """Append the events and add them to their hours, in one transaction (``conn``: the caller's)."""
        batch = list(clicks)
        if not batch:
            return
        if conn is not None:
            with self._store.write_now(conn) as c:
                self._write(c, batch)
            return
        with self._store.write() as c:
            self._write(c, batch)

    def _write(self, conn: Connection, batch: list[Click]) -> None:
        conn.execute(_ADD_EVENTS, [{"link_id": c.link_id, "at": c.at, "kind": c.kind} for c in batch])
        # per-subscriber counting: who clicked, in the same transaction
        write_reader_clicks(
            conn, [ReaderClick(c.subscriber_id, c.link_id, c.at, c.kind) for c in batch if c.subscriber_id]
        )
        self.add_hours(Counter((c.link_id, c.at, c.kind) for c in batch), conn=conn)

    def add_hours(
        self, counts: Mapping[tuple[int, datetime, str], int], *, conn: Connection | None = None
    ) -> None:
        """Add ``(link id, time, class) -> clicks`` to their hours' rollups (``conn``: the caller's).

        The writer's path for every burst, and a bulk load's (``bench/report.py``)
        after inserting raw events by other means.
        """
        hours: Counter[tuple[int, datetime, str]] = Counter()
        for (link_id, at, kind), n in counts.items():
            hours[(link_id, _hour(at), kind)] += n
        rows = [{"link_id": k[0], "hour": k[1], "kind": k[2], "clicks": n} for k, n in hours.items()]
        if not rows:
            return
        if conn is not None:
            conn.execute(self._add_hours, rows)
            return
        with self._store.write() as c:
            c.execute(self._add_hours, rows)

    @cached_property
    def _add_hours(self) -> Any:
        """The rollup's upsert, built once: building it cost more than running it (py-spy, per burst)."""
        stmt = self._insert()(ch)
        return stmt.on_conflict_do_update(
            index_elements=["link_id", "hour", "kind"], set_={"clicks": ch.c.clicks + stmt.excluded.clicks}
        )

    def prune(self, before: datetime) -> int:
        """Delete raw events older than ``before`` (the hourly rollups stay): how many."""
        with self._store.write() as conn:
            return int(conn.execute(delete(ce).where(ce.c.at < before)).rowcount or 0)

    def by_link(self, send_key: str) -> list[LinkClicks]:
        """Every recorded link of a send with its clicks by class (from the rollups), by link number.

        One sum per link and class, each a range of the (link, class, hour,
        clicks) index read alone: no grouping of the send's hours by URL (10 M
        clicks over 30 days, SQLite, back to back: 13 ms against 23 ms).
        """
        sums = [
            select(func.sum(ch.c.clicks)).where(ch.c.link_id == cl.c.id, ch.c.kind == kind).scalar_subquery()
            for kind in CLICK_KINDS
        ]
        query = select(cl.c.link_no, cl.c.url, *sums).where(cl.c.send_key == send_key).order_by(cl.c.link_no)
        with self._store.read() as conn:
            return [
                LinkClicks(
                    row[0], row[1], {k: int(n) for k, n in zip(CLICK_KINDS, row[2:], strict=True) if n}
                )
                for row in conn.execute(query)
            ]

    def by_hour(self, send_key: str, kind: str = "human") -> list[tuple[datetime, int]]:
        """(hour, clicks of ``kind``) for a send's hours that had any, in time order."""
        query = (
            select(ch.c.hour, func.sum(ch.c.clicks))
            .select_from(ch.join(cl, ch.c.link_id == cl.c.id))
            .where(cl.c.send_key == send_key, ch.c.kind == kind)
            .group_by(ch.c.hour)
            .order_by(ch.c.hour)
        )
        with self._store.read() as conn:
            return [(hour, int(n)) for hour, n in conn.execute(query)]

    def event_count(self) -> int:
        """Raw events kept (for tests and ``report --prune``)."""
        with self._store.read() as conn:
            return int(conn.execute(select(func.count()).select_from(ce)).scalar() or 0)
