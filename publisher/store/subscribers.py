"""Subscriber rows: add, look up, list, change status and preferences, remove.

Every value goes through ``values`` first, so the table only ever holds
normalised addresses and header-safe names. Timestamps come from the caller's
``now`` (the clock is passed in, never read here).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import Connection, Row, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from publisher.errors import NotFoundError, PublisherError
from publisher.models import Frequency, Subscriber, SubscriberStatus
from publisher.store.csvio import ImportReport, Suppression, export_csv, import_csv
from publisher.store.database import Database
from publisher.store.schema import deliveries as d
from publisher.store.schema import sends as s_
from publisher.store.schema import subscribers as t
from publisher.store.values import (
    check_name,
    check_timezone,
    clean_topics,
    normalise_email,
    parse_frequency,
    parse_status,
    topics_text,
)


class SubscriberExistsError(PublisherError):
    """``add`` for an address that is already on the list."""


@dataclass(frozen=True)
class Filter:
    """Which subscribers a list, count or export covers (None = any)."""

    status: SubscriberStatus | None = None
    frequency: Frequency | None = None
    topic: str | None = None
    search: str | None = None  # substring of the address or name

    def where(self) -> list[Any]:
        clauses: list[Any] = []
        if self.status is not None:
            clauses.append(t.c.status == self.status.value)
        if self.frequency is not None:
            clauses.append(t.c.frequency == self.frequency.value)
        if self.topic:
            topic = self.topic.strip().lower()
            clauses.append((";" + t.c.topics + ";").contains(f";{topic};", autoescape=True))
        if self.search:
            needle = self.search.strip().lower()
            clauses.append(
                t.c.email.contains(needle, autoescape=True)
                | func.lower(t.c.name).contains(needle, autoescape=True)
            )
        return clauses


def to_subscriber(row: Row[Any] | Any) -> Subscriber:
    return Subscriber(
        email=row.email,
        name=row.name,
        status=SubscriberStatus(row.status),
        frequency=Frequency(row.frequency),
        topics=tuple(x for x in row.topics.split(";") if x),
        timezone=row.timezone,
        id=row.id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        unsubscribed_at=row.unsubscribed_at,
    )


class Subscribers:
    """The operations on ``subscribers``; reached as ``store.subscribers``."""

    def __init__(self, store: Database) -> None:
        self._store = store

    def add(
        self,
        email: str,
        *,
        now: datetime,
        name: str = "",
        status: SubscriberStatus | str = SubscriberStatus.CONFIRMED,
        frequency: Frequency | str = Frequency.INSTANT,
        topics: str | tuple[str, ...] | builtins.list[str] = (),
        timezone: str = "UTC",
    ) -> Subscriber:
        """Add one subscriber; SubscriberExistsError if the address is already there."""
        address = normalise_email(email)
        st = parse_status(status)
        values: dict[str, Any] = {
            "email": address,
            "name": check_name(name),
            "status": st.value,
            "frequency": parse_frequency(frequency).value,
            "topics": topics_text(clean_topics(topics)),
            "timezone": check_timezone(timezone),
            "created_at": now,
            "updated_at": now,
            "confirmed_at": now if st is SubscriberStatus.CONFIRMED else None,
            "unsubscribed_at": now if st is SubscriberStatus.UNSUBSCRIBED else None,
        }
        try:
            with self._store.write() as conn:
                new_id = conn.execute(insert(t).values(**values).returning(t.c.id)).scalar_one()
        except IntegrityError:
            raise SubscriberExistsError(
                f"{address} is already subscribed",
                hint="use `publisher subscribers list --search ADDRESS` to see it",
            ) from None
        return Subscriber(
            email=address,
            name=values["name"],
            status=st,
            frequency=Frequency(values["frequency"]),
            topics=clean_topics(values["topics"]),
            timezone=values["timezone"],
            id=new_id,
            created_at=now,
            updated_at=now,
        )

    def get(self, email: str) -> Subscriber | None:
        """The subscriber with this address (any spelling of it), or None."""
        try:
            address = normalise_email(email)
        except PublisherError:
            return None
        with self._store.read() as conn:
            row = conn.execute(select(t).where(t.c.email == address)).first()
        return to_subscriber(row) if row else None

    def export(self, email: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """Everything stored about one subscriber (for their data request): the full row and
        every delivery planned for them; None if there is no such subscriber."""
        try:
            address = normalise_email(email)
        except PublisherError:
            return None
        with self._store.read() as conn:
            row = conn.execute(select(t).where(t.c.email == address)).first()
            if row is None:
                return None
            query = (
                select(
                    s_.c.key.label("send_key"),
                    s_.c.kind,
                    s_.c.issue_slug,
                    d.c.email,
                    d.c.status,
                    d.c.attempts,
                    d.c.last_error,
                    d.c.message_id,
                    d.c.sent_at,
                )
                .join(s_, s_.c.id == d.c.send_id)
                .where(d.c.subscriber_id == row.id)
                .order_by(d.c.id)
            )
            deliveries = [dict(r._mapping) for r in conn.execute(query)]
        record = dict(row._mapping)
        record["topics"] = [x for x in record["topics"].split(";") if x]
        return record, deliveries

    def list(
        self, filter: Filter | None = None, *, limit: int | None = None, offset: int = 0
    ) -> list[Subscriber]:
        """Subscribers matching ``filter``, oldest first."""
        query = select(t).where(*(filter or Filter()).where()).order_by(t.c.id).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self._store.read() as conn:
            return [to_subscriber(r) for r in conn.execute(query)]

    def list_after(
        self, filter: Filter | None = None, *, after: int = 0, limit: int = 100
    ) -> builtins.list[Subscriber]:
        """Up to ``limit`` matching subscribers with an id above ``after``, in id order.

        Keyset paging for the API: a page costs the same at row 200,000 as at row 0
        (OFFSET reads and drops every row before it), and a row added or removed
        meanwhile neither repeats nor skips one on the next page.
        """
        query = select(t).where(t.c.id > after, *(filter or Filter()).where()).order_by(t.c.id).limit(limit)
        with self._store.read() as conn:
            return [to_subscriber(r) for r in conn.execute(query)]

    def iter(self, filter: Filter | None = None, *, chunk: int = 2000) -> Iterator[Subscriber]:
        """Every matching subscriber, fetched in id order one chunk at a time (flat memory)."""
        after = 0
        where = (filter or Filter()).where()
        while True:
            query = select(t).where(t.c.id > after, *where).order_by(t.c.id).limit(chunk)
            with self._store.read() as conn:
                rows = conn.execute(query).all()
            for row in rows:
                yield to_subscriber(row)
            if len(rows) < chunk:
                return
            after = rows[-1].id

    def count(self, filter: Filter | None = None) -> int:
        query = select(func.count()).select_from(t).where(*(filter or Filter()).where())
        with self._store.read() as conn:
            return int(conn.execute(query).scalar_one())

    def counts_by_status(self) -> dict[str, int]:
        query = select(t.c.status, func.count()).group_by(t.c.status)
        with self._store.read() as conn:
            return {status: int(n) for status, n in conn.execute(query)}

    def remove(self, email: str) -> bool:
        """Forget a subscriber entirely (their pending deliveries go with them); False if absent."""
        try:
            address = normalise_email(email)
        except PublisherError:
            return False
        with self._store.write() as conn:
            return conn.execute(delete(t).where(t.c.email == address)).rowcount > 0

    def set_status(self, email: str, status: SubscriberStatus | str, *, now: datetime) -> Subscriber:
        """Confirm, unsubscribe, or mark bounced/complained (web app, bounces, admin)."""
        st = parse_status(status)
        values: dict[str, Any] = {"status": st.value, "updated_at": now}
        if st is SubscriberStatus.CONFIRMED:
            values["confirmed_at"] = now
            values["unsubscribed_at"] = None
        elif st is not SubscriberStatus.PENDING:
            values["unsubscribed_at"] = now
        return self._update(email, values)

    def unsubscribe_many(
        self, requests: Sequence[tuple[str, datetime]], *, conn: Connection | None = None
    ) -> int:
        """Unsubscribe each (address, when) still confirmed or pending, all in one transaction.

        The one-click link's write: a conditional UPDATE (no read first), so it
        is idempotent, does nothing for an address we no longer have or one that
        bounced, and a burst of clicks costs one commit instead of one each.
        ``conn``: a connection the caller holds, written with ``Database.write_now``
        (on SQLite, WriteBusyError at once instead of waiting for the lock).
        Returns how many rows changed.
        """
        params = []
        for email, when in requests:
            try:
                params.append({"b_email": normalise_email(email), "b_now": when})
            except PublisherError:
                continue  # not an address we could hold: nothing to stop
        if not params:
            return 0
        leaving = or_(  # not IN (...): an expanding list cannot go through executemany
            t.c.status == SubscriberStatus.CONFIRMED.value, t.c.status == SubscriberStatus.PENDING.value
        )
        statement = (
            update(t)
            .where(t.c.email == bindparam("b_email"), leaving)
            .values(
                status=SubscriberStatus.UNSUBSCRIBED.value,
                updated_at=bindparam("b_now"),
                unsubscribed_at=bindparam("b_now"),
            )
        )
        with self._store.write() if conn is None else self._store.write_now(conn) as tx:
            return tx.execute(statement, params).rowcount

    def update_preferences(
        self,
        email: str,
        *,
        now: datetime,
        name: str | None = None,
        frequency: Frequency | str | None = None,
        topics: str | tuple[str, ...] | builtins.list[str] | None = None,
        timezone: str | None = None,
    ) -> Subscriber:
        """Change what the subscriber chose; arguments left as None stay as they are."""
        values: dict[str, Any] = {"updated_at": now}
        if name is not None:
            values["name"] = check_name(name)
        if frequency is not None:
            values["frequency"] = parse_frequency(frequency).value
        if topics is not None:
            values["topics"] = topics_text(clean_topics(topics))
        if timezone is not None:
            values["timezone"] = check_timezone(timezone)
        return self._update(email, values)

    def _update(self, email: str, values: dict[str, Any]) -> Subscriber:
        address = normalise_email(email)
        with self._store.write() as conn:
            row = conn.execute(update(t).where(t.c.email == address).values(**values).returning(*t.c)).first()
        if row is None:
            raise NotFoundError(f"no subscriber {address}")
        return to_subscriber(row)

    def import_csv(
        self,
        source: TextIO,
        *,
        now: datetime,
        source_name: str = "CSV",
        chunk: int = 2000,
        errors: TextIO | None = None,
        suppression: Suppression | None = None,
    ) -> ImportReport:
        """Import (add or update) subscribers from CSV; see ``csvio.import_csv``."""
        return import_csv(
            self._store,
            source,
            now=now,
            source_name=source_name,
            chunk=chunk,
            errors=errors,
            suppression=suppression,
        )

    def export_csv(self, out: TextIO, filter: Filter | None = None) -> int:
        """Write matching subscribers as CSV (the import format); returns the row count."""
        return export_csv(self.iter(filter), out)
