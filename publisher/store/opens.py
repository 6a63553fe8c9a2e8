"""Opens' tables and the only SQL about them (``analytics.opens``; empty while it is off).

A load of a send's 1x1 image (``/o/<token>``) is written as one append-only
``open_events`` row plus an upsert of its hour in ``open_hours``, in the same
transaction, exactly as clicks are (``store.clicks``): reports read the rollup,
so their cost does not grow with the loads, and pruning raw events after
``analytics.retention`` leaves the figures whole. A row names the send, the
moment and the load's class, nothing else: no address, no IP, no user agent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
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
    delete,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from publisher.store.schema import Id, UtcDateTime, metadata, sends

if TYPE_CHECKING:
    from publisher.store.database import Database

# human | Apple Mail Privacy Protection's proxy | Gmail's image proxy | another known
# mail proxy | a scanner (HEAD, no or a bot user agent) | too soon after the send started
OPEN_KINDS = ("human", "apple_mpp", "gmail_proxy", "proxy", "scanner", "prefetch")
_KINDS = "kind IN ('human', 'apple_mpp', 'gmail_proxy', 'proxy', 'scanner', 'prefetch')"

open_events = Table(
    "open_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("send_id", Id, ForeignKey("sends.id", ondelete="CASCADE"), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", String(16), nullable=False),
    CheckConstraint(_KINDS, name="kind"),
    Index("ix_open_events_at", "at"),
)

open_hours = Table(
    "open_hours",
    metadata,
    Column("send_id", Id, ForeignKey("sends.id", ondelete="CASCADE"), nullable=False),
    Column("hour", UtcDateTime, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("opens", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("send_id", "hour", "kind"),
    CheckConstraint(_KINDS, name="kind"),
)

oe, oh = open_events, open_hours


@dataclass(frozen=True)
class OpenTarget:
    """The send an image token names, and when it started."""

    send_id: int
    send_started: datetime  # when it started, or (not started yet) when it was planned
    started: bool  # whether ``send_started`` is final (then the target may be cached)


@dataclass(frozen=True)
class Open:
    send_id: int
    at: datetime
    kind: str  # one of OPEN_KINDS


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


class Opens:
    """The open tables on one store: ``store.opens``."""

    def __init__(self, store: Database) -> None:
        self._store = store

    def _insert(self) -> Any:
        return postgresql.insert if self._store.dialect == "postgresql" else sqlite.insert

    def target(self, send_key: str) -> OpenTarget | None:
        """The send keyed ``send_key``, or None: an image token for no send counts nothing."""
        query = select(sends.c.id, sends.c.started_at, sends.c.created_at).where(sends.c.key == send_key)
        with self._store.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return OpenTarget(int(row[0]), row[1] or row[2], row[1] is not None)

    def record(self, opens: Iterable[Open], *, conn: Connection | None = None) -> None:
        """Append the events and add them to their hours, in one transaction (``conn``: the caller's)."""
        batch = list(opens)
        if not batch:
            return
        if conn is not None:
            with self._store.write_now(conn) as c:
                self._write(c, batch)
            return
        with self._store.write() as c:
            self._write(c, batch)

    def _write(self, conn: Connection, batch: list[Open]) -> None:
        conn.execute(oe.insert(), [{"send_id": o.send_id, "at": o.at, "kind": o.kind} for o in batch])
        hours = Counter((o.send_id, _hour(o.at), o.kind) for o in batch)
        stmt = self._insert()(oh)
        stmt = stmt.on_conflict_do_update(
            index_elements=["send_id", "hour", "kind"], set_={"opens": oh.c.opens + stmt.excluded.opens}
        )
        rows = [{"send_id": k[0], "hour": k[1], "kind": k[2], "opens": n} for k, n in hours.items()]
        conn.execute(stmt, rows)

    def prune(self, before: datetime) -> int:
        """Delete raw events older than ``before`` (the hourly rollups stay): how many."""
        with self._store.write() as conn:
            return int(conn.execute(delete(oe).where(oe.c.at < before)).rowcount or 0)

    def by_kind(self, send_id: int) -> dict[str, int]:
        """A send's image loads by class (from the rollups); classes with none are left out."""
        query = select(oh.c.kind, func.sum(oh.c.opens)).where(oh.c.send_id == send_id).group_by(oh.c.kind)
        with self._store.read() as conn:
            return {kind: int(n) for kind, n in conn.execute(query) if n}

    def by_hour(self, send_id: int, kind: str = "human") -> list[tuple[datetime, int]]:
        """(hour, loads of ``kind``) for a send's hours that had any, in time order."""
        query = (
            select(oh.c.hour, oh.c.opens)
            .where(oh.c.send_id == send_id, oh.c.kind == kind, oh.c.opens > 0)
            .order_by(oh.c.hour)
        )
        with self._store.read() as conn:
            return [(hour, int(n)) for hour, n in conn.execute(query)]

    def event_count(self) -> int:
        """Raw events kept (for tests and ``report --prune``)."""
        with self._store.read() as conn:
            return int(conn.execute(select(func.count()).select_from(oe)).scalar() or 0)
