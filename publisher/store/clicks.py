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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
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
)

cl, ce, ch = click_links, click_events, click_hours


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


@dataclass(frozen=True)
class LinkClicks:
    link_no: int
    url: str
    by_kind: dict[str, int]


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


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
        conn.execute(ce.insert(), [{"link_id": c.link_id, "at": c.at, "kind": c.kind} for c in batch])
        hours = Counter((c.link_id, _hour(c.at), c.kind) for c in batch)
        stmt = self._insert()(ch)
        stmt = stmt.on_conflict_do_update(
            index_elements=["link_id", "hour", "kind"], set_={"clicks": ch.c.clicks + stmt.excluded.clicks}
        )
        rows = [{"link_id": k[0], "hour": k[1], "kind": k[2], "clicks": n} for k, n in hours.items()]
        conn.execute(stmt, rows)

    def prune(self, before: datetime) -> int:
        """Delete raw events older than ``before`` (the hourly rollups stay): how many."""
        with self._store.write() as conn:
            return int(conn.execute(delete(ce).where(ce.c.at < before)).rowcount or 0)

    def by_link(self, send_key: str) -> list[LinkClicks]:
        """Every recorded link of a send with its clicks by class (from the rollups), by link number."""
        query = (
            select(cl.c.link_no, cl.c.url, ch.c.kind, func.coalesce(func.sum(ch.c.clicks), 0))
            .select_from(cl.outerjoin(ch, ch.c.link_id == cl.c.id))
            .where(cl.c.send_key == send_key)
            .group_by(cl.c.link_no, cl.c.url, ch.c.kind)
            .order_by(cl.c.link_no)
        )
        links: dict[int, LinkClicks] = {}
        with self._store.read() as conn:
            for link_no, url, kind, n in conn.execute(query):
                entry = links.setdefault(link_no, LinkClicks(link_no, url, {}))
                if kind is not None:
                    entry.by_kind[kind] = int(n)
        return list(links.values())

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
