"""Leases: who may work on a thing now (a send, the scheduler), with a heartbeat and an expiry.

One implementation for every lease kept in a row: ``take`` is a single
conditional UPDATE (free, expired, ours, or taken over from a dead owner), so
two callers never both win, on SQLite or PostgreSQL (READ COMMITTED re-checks
the condition on the row another transaction just changed). A send's lease
lives on its ``sends`` row (``Ledger.acquire``); named leases (the scheduler's)
have a table of their own (``Leases``). The owner strings and the "is that
owner dead" test live here too, so the drain and the scheduler's guard share
them.

A batch of a worker's send is claimed differently (``SessionLock``): a
PostgreSQL session advisory lock, released by the server the moment the
worker's connection dies, so it needs no expiry at all.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Column,
    Connection,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    case,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from publisher.errors import PublisherError
from publisher.store.records import from_row
from publisher.store.schema import UtcDateTime, metadata

if TYPE_CHECKING:
    from publisher.store.database import Database as Store

scheduler_leases = Table(
    "scheduler_leases",
    metadata,
    Column("name", String(64), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("info", Text, nullable=False, server_default=""),
    Column("started_at", UtcDateTime, nullable=False),
    Column("heartbeat_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("name"),
)
sl = scheduler_leases


# -- owners ------------------------------------------------------------------------------------------


def default_owner() -> str:
    """This process, as a lease owner: host, pid and a random tag (pids get reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_is_dead(owner: str | None) -> bool:
    """True only when ``owner`` is a process on this machine that no longer runs."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed child not yet reaped by its parent still answers kill(0)
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


# -- a lease in a row ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseColumns:
    """Where a lease is kept: the row's key column and its owner, expiry and heartbeat columns."""

    key: Any  # sqlalchemy Column
    owner: Any
    expires: Any
    heartbeat: Any

    @property
    def table(self) -> Any:
        return self.key.table


def take(
    conn: Connection,
    where: LeaseColumns,
    key: object,
    owner: str,
    *,
    now: datetime,
    ttl: timedelta,
    steal_from: str | None = None,
    also: Mapping[str, Any] | None = None,
) -> bool:
    """Take the lease on row ``key`` if free, expired, ours or ``steal_from``'s; True if we hold it now.

    ``also``: more columns set in the same UPDATE (a send becomes ``running``).
    """
    free = or_(
        where.owner.is_(None),
        where.owner == owner,
        where.expires < now,
        *([where.owner == steal_from] if steal_from else []),
    )
    values = {where.owner.name: owner, where.expires.name: now + ttl, where.heartbeat.name: now}
    query = update(where.table).where(where.key == key, free).values({**values, **(also or {})})
    return bool(conn.execute(query).rowcount)


def renew(
    conn: Connection, where: LeaseColumns, key: object, owner: str, *, now: datetime, ttl: timedelta
) -> bool:
    """Heartbeat: extend our lease; False if it is no longer ours (stop at once)."""
    values = {where.expires.name: now + ttl, where.heartbeat.name: now}
    query = update(where.table).where(where.key == key, where.owner == owner).values(values)
    return bool(conn.execute(query).rowcount)


# -- named leases (the scheduler's) -------------------------------------------------------------------------

NAMED = LeaseColumns(sl.c.name, sl.c.owner, sl.c.expires_at, sl.c.heartbeat_at)


@dataclass(frozen=True)
class LeaseInfo:
    name: str
    owner: str
    info: str
    started_at: datetime
    heartbeat_at: datetime
    expires_at: datetime


class LeaseHeldError(PublisherError):
    """Another live process holds the lease."""

    def __init__(self, lease: LeaseInfo, now: datetime) -> None:
        ago = max(0, int((now - lease.heartbeat_at).total_seconds()))
        super().__init__(
            f"another `publisher run` is already running on this database ({lease.info or lease.owner}; "
            f"started {lease.started_at:%Y-%m-%d %H:%M:%S} UTC, last heartbeat {ago}s ago)",
            hint=(
                "stop that one first; if it was killed, its lease runs out at "
                f"{lease.expires_at:%H:%M:%S} UTC and this command will then start"
            ),
        )
        self.lease = lease


def _lease(row: Any) -> LeaseInfo:
    return from_row(LeaseInfo, row)


class Leases:
    """Named leases with heartbeat and expiry: ``Leases(store)``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, name: str) -> LeaseInfo | None:
        with self._store.read() as conn:
            row = conn.execute(select(sl).where(sl.c.name == name)).first()
        return _lease(row) if row else None

    def acquire(
        self,
        name: str,
        owner: str,
        *,
        now: datetime,
        ttl: timedelta,
        info: str = "",
        steal_from: str | None = None,
    ) -> LeaseInfo:
        """Take the lease if free, expired, ours or ``steal_from``'s; LeaseHeldError otherwise."""
        also = {"info": info, "started_at": case((sl.c.owner == owner, sl.c.started_at), else_=now)}
        try:
            with self._store.write() as conn:
                if not take(conn, NAMED, name, owner, now=now, ttl=ttl, steal_from=steal_from, also=also):
                    row = conn.execute(select(sl).where(sl.c.name == name)).first()
                    if row is not None:
                        raise LeaseHeldError(_lease(row), now)
                    values = {"owner": owner, "info": info, "heartbeat_at": now, "expires_at": now + ttl}
                    conn.execute(insert(sl).values(name=name, started_at=now, **values))
                return _lease(conn.execute(select(sl).where(sl.c.name == name)).one())
        except IntegrityError:  # two first-time inserts raced; the other won
            held = self.get(name)
            if held is None:
                raise
            raise LeaseHeldError(held, now) from None

    def renew(self, name: str, owner: str, *, now: datetime, ttl: timedelta) -> bool:
        """Heartbeat; False if the lease is no longer ours (stop at once)."""
        with self._store.write() as conn:
            return renew(conn, NAMED, name, owner, now=now, ttl=ttl)

    def release(self, name: str, owner: str) -> bool:
        with self._store.write() as conn:
            return bool(conn.execute(delete(sl).where(sl.c.name == name, sl.c.owner == owner)).rowcount)


# -- a claim held by a connection (PostgreSQL) -------------------------------------------------------------


class SessionLock:
    """A session advisory lock named ``name``, on a connection of its own held while the lock is.

    When the holder dies its connection closes and PostgreSQL releases the
    lock at once; a holder that is only slow keeps it.
    """

    def __init__(self, store: Store, name: str) -> None:
        self._store = store
        self.name = name
        self._raw: Any = None

    def take(self) -> bool:
        raw = self._store.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (self.name,))
            row = cur.fetchone()
            got = bool(row is not None and row[0])
            raw.commit()  # the lock is the session's; no transaction stays open
        except BaseException:
            raw.invalidate()
            raw.close()
            raise
        if not got:
            raw.close()
            return False
        self._raw = raw
        return True

    def alive(self) -> bool:
        """The lock's connection still works, so the lock is still ours."""
        try:
            cur = self._raw.cursor()
            cur.execute("SELECT 1")
            cur.fetchone()
            self._raw.commit()
            return True
        except Exception:
            return False

    def release(self) -> None:
        raw, self._raw = self._raw, None
        if raw is None:
            return
        try:
            cur = raw.cursor()
            cur.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (self.name,))
            raw.commit()
        except Exception:
            raw.invalidate()  # a broken connection never goes back to the pool (nor its lock)
        finally:
            raw.close()
