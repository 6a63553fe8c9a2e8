"""What the console's dashboard reads beyond the ledger and feedback: running sends, weekly growth.

Growth is counted with one grouped scan per series, the week number worked out
by the database (SQLite's ``julianday``, PostgreSQL's epoch): confirmed by ``subscribers.confirmed_at``,
unsubscribed by ``subscribers.unsubscribed_at`` of those whose status is
``unsubscribed`` (the column is stamped for bounces and complaints too),
bounced by the bounce facts that made an address bounced
(``inbound_events.outcome``), so a bounce stays counted in its week whatever
the subscriber did later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, bindparam, cast, func, select

from publisher.store.records import SendInfo, _info
from publisher.store.schema import UtcDateTime
from publisher.store.schema import inbound_events as ev
from publisher.store.schema import sends as s
from publisher.store.schema import subscribers as sub

if TYPE_CHECKING:
    from publisher.store.database import Database

WEEK = timedelta(days=7)
BOUNCED_OUTCOMES = ("bounced", "bounced (soft limit)")  # store.feedback's outcomes that bounce an address


@dataclass(frozen=True)
class WeekGrowth:
    """One week (Monday 00:00 UTC on) of the list's changes."""

    start: datetime
    confirmed: int = 0
    unsubscribed: int = 0
    bounced: int = 0


def week_starts(until: datetime, weeks: int) -> list[datetime]:
    """The Mondays (00:00 UTC) of the ``weeks`` weeks ending with the one holding ``until``, oldest first."""
    day = until.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    monday = day - timedelta(days=day.weekday())
    return [monday - WEEK * i for i in range(weeks - 1, -1, -1)]


def _week_of(dialect: str, column: Any, start: datetime) -> Any:
    """Which week (0, 1, ...) after ``start`` a timestamp falls in, in the database's own date arithmetic."""
    since = bindparam("p_start", start, type_=UtcDateTime)
    if dialect == "sqlite":
        return cast((func.julianday(column) - func.julianday(since)) / 7, Integer)
    return cast(func.floor(func.extract("epoch", column - since) / WEEK.total_seconds()), Integer)


def _per_week(store: Database, column: Any, starts: Sequence[datetime], *where: Any) -> list[int]:
    """How many rows have ``column`` in each week of ``starts`` (one scan, grouped by week)."""
    week = _week_of(store.dialect, column, starts[0]).label("week")
    query = (
        select(week, func.count())
        .where(column >= starts[0], column < starts[-1] + WEEK, *where)
        .group_by(week)
    )
    out = [0] * len(starts)
    with store.read() as conn:
        for index, n in conn.execute(query):
            if 0 <= int(index) < len(out):
                out[int(index)] += int(n)
    return out


def weekly_growth(store: Database, *, until: datetime, weeks: int = 12) -> list[WeekGrowth]:
    """Confirmed, unsubscribed and bounced addresses per week, the last ``weeks`` weeks, oldest first."""
    starts = week_starts(until, weeks)
    confirmed = _per_week(store, sub.c.confirmed_at, starts)
    unsubscribed = _per_week(store, sub.c.unsubscribed_at, starts, sub.c.status == "unsubscribed")
    bounced = _per_week(store, ev.c.received_at, starts, ev.c.outcome.in_(BOUNCED_OUTCOMES))
    return [
        WeekGrowth(start, c, u, b)
        for start, c, u, b in zip(starts, confirmed, unsubscribed, bounced, strict=True)
    ]


def running_sends(store: Database, *, limit: int = 20) -> list[SendInfo]:
    """Sends being drained now (status ``running``), newest first."""
    query = select(s).where(s.c.status == "running").order_by(s.c.id.desc()).limit(limit)
    with store.read() as conn:
        return [_info(r) for r in conn.execute(query)]
