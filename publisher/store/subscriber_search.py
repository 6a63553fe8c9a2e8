"""The console's subscriber list: the API's ``Filter`` plus a time zone, keyset pages both ways.

``Subscribers.list_after`` pages forwards in id order for the admin API; the
console also needs "previous page" links and a newest-first or by-address
order, so this module builds the same WHERE (``Filter.where``) and adds the
zone and the direction. Every page is ``WHERE key > cursor ORDER BY key LIMIT
n + 1`` on an indexed, unique key (the id, or the address's unique index), so
page 500 costs what page 1 costs, and a row added meanwhile neither repeats
nor skips one. No count: at 100,000 rows a COUNT with a substring search
is a full scan on every page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import ColumnElement, select

from publisher.models import Subscriber
from publisher.store.database import Database
from publisher.store.schema import subscribers as t
from publisher.store.subscribers import Filter, to_subscriber

Sort = Literal["oldest", "newest", "email"]
SORTS: tuple[Sort, ...] = ("oldest", "newest", "email")


@dataclass(frozen=True)
class Search:
    """What the list shows: the API's filter, a time zone (None = any) and an order."""

    filter: Filter = field(default_factory=Filter)
    zone: str | None = None
    sort: Sort = "oldest"


@dataclass(frozen=True)
class Page:
    """One page, and the cursors of the pages after and before it (None: there is none)."""

    items: list[Subscriber]
    next: str | None
    previous: str | None


def _key(sort: Sort) -> ColumnElement[Any]:
    return t.c.email if sort == "email" else t.c.id


def _cursor(sort: Sort, sub: Subscriber) -> str:
    return sub.email if sort == "email" else str(sub.id)


def _value(sort: Sort, cursor: str) -> Any:
    return cursor if sort == "email" else int(cursor)


def _where(search: Search) -> list[Any]:
    clauses = search.filter.where()
    if search.zone:
        clauses.append(t.c.timezone == search.zone)
    return clauses


def page(
    store: Database, search: Search, *, after: str | None = None, before: str | None = None, limit: int = 50
) -> Page:
    """The ``limit`` rows after cursor ``after`` (or, given ``before``, the ones just before it).

    A cursor is the last row's key as text (an id, or an address when sorted by
    address); an id cursor that is not a number is a ValueError.
    """
    key = _key(search.sort)
    ascending = search.sort != "newest"
    backwards = before is not None and after is None
    forward_order = key.asc() if ascending else key.desc()
    query = select(t).where(*_where(search))
    if backwards:
        cut = _value(search.sort, before or "")
        query = query.where(key < cut if ascending else key > cut)
        query = query.order_by(key.desc() if ascending else key.asc())
    else:
        if after is not None:
            cut = _value(search.sort, after)
            query = query.where(key > cut if ascending else key < cut)
        query = query.order_by(forward_order)
    with store.read() as conn:
        rows = [to_subscriber(r) for r in conn.execute(query.limit(limit + 1))]
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
        nxt = _cursor(search.sort, rows[-1]) if rows else None
        prev = _cursor(search.sort, rows[0]) if rows and more else None
        return Page(rows, nxt, prev)
    nxt = _cursor(search.sort, rows[-1]) if rows and more else None
    prev = _cursor(search.sort, rows[0]) if rows and after is not None else None
    return Page(rows, nxt, prev)


def by_id(store: Database, subscriber_id: int) -> Subscriber | None:
    """The subscriber with this id (the console's addresses use ids, never email addresses), or None."""
    with store.read() as conn:
        row = conn.execute(select(t).where(t.c.id == subscriber_id)).first()
    return to_subscriber(row) if row else None
