"""One database connection pool and its transactions: the piece every store module shares.

SQLite is the embedded default: WAL so readers never block the single writer,
a busy timeout so short write bursts from the web app and a send wait rather
than fail, foreign keys on (off by default in SQLite), and ``BEGIN IMMEDIATE``
for write transactions so two writers queue up instead of failing with
"database is locked" when a read turns into a write. ``write_now`` is the
same transaction for a caller that must not wait (the web app's event loop): it
fails at once with WriteBusyError while another connection writes, since the
busy handler's sleeps (1, 2, 5 ... 100 ms) would stall every request. PostgreSQL goes through
psycopg 3.

The table operations (``subscribers``, ``ledger``, ``feedback``, ...) take a
:class:`Database`; ``engine.Store`` is a Database wired with them, so this
module sits below all of them and none imports the wiring.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from publisher.errors import StoreError

BUSY_TIMEOUT_MS = 30_000
WAL_AUTOCHECKPOINT = 1000  # pages: SQLite's default
SQLITE_BUSY = 5  # the primary result code (extended codes add high bits)


class WriteBusyError(StoreError):
    """Another connection holds SQLite's write lock, and the caller asked not to wait for it."""


class Database:
    """One database's engine and the transactions the store modules run on it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A short transaction for reading (never blocks a writer on SQLite's WAL)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that will write: takes SQLite's write lock up front."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(publisher_write=True)
            with conn.begin():
                yield conn

    def connect(self) -> Connection:
        """A connection for the caller to hold across several ``write_now`` transactions (close it)."""
        return self.engine.connect()

    @contextlib.contextmanager
    def write_now(self, conn: Connection) -> Iterator[Connection]:
        """A write transaction on ``conn`` (held by the caller) that never waits for the lock.

        On SQLite, WriteBusyError at once while another connection writes (retry
        later); once BEGIN IMMEDIATE holds the lock, nothing in a WAL transaction
        or its commit waits on anyone. Elsewhere, an ordinary write transaction.
        """
        conn = conn.execution_options(publisher_write=True, publisher_nowait=True)
        with conn.begin():
            yield conn

    def defer_checkpoints(self, conn: Connection, deferred: bool) -> None:
        """On SQLite, stop (or restart) ``conn`` checkpointing the WAL as it commits.

        A checkpoint writes the WAL back into the database file and syncs it:
        5-12 ms (tens under load), which a writer on the event loop must not
        spend there. While deferred, the writer runs ``checkpoint`` in a thread.
        """
        if self.dialect == "sqlite":  # on the driver's connection: a PRAGMA, not a transaction
            dbapi = conn.connection.driver_connection
            assert dbapi is not None
            dbapi.execute(f"PRAGMA wal_autocheckpoint = {0 if deferred else WAL_AUTOCHECKPOINT}")

    def checkpoint(self) -> None:
        """Copy the WAL back into the database without waiting for anyone (SQLite's PASSIVE mode)."""
        if self.dialect == "sqlite":
            with self.connect() as conn:
                dbapi = conn.connection.driver_connection
                assert dbapi is not None
                dbapi.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sqlite_hooks(engine: Engine) -> None:
    """Take transaction control from pysqlite so BEGIN (IMMEDIATE) is ours to emit."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # no implicit BEGINs from the driver
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys = ON")
        mode = cur.execute("PRAGMA journal_mode").fetchone()[0]
        if mode != "wal" and mode != "memory":
            cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")  # durable with WAL except on power loss
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get("publisher_nowait", False):
            _begin_nowait(conn)
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("publisher_write", False) else "BEGIN")


def _begin_nowait(conn: Connection) -> None:
    """BEGIN IMMEDIATE with the busy handler off for just this statement."""
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    dbapi.execute("PRAGMA busy_timeout = 0")
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    except OperationalError as exc:
        if getattr(exc.orig, "sqlite_errorcode", 0) & 0xFF == SQLITE_BUSY:
            raise WriteBusyError("another connection is writing", hint="try again shortly") from None
        raise
    finally:
        dbapi.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def make_engine(url: str) -> Engine:
    """An engine configured for our use of ``url`` (SQLite or PostgreSQL)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"not a database URL: {url!r}", hint="e.g. sqlite:///publisher.db") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Pooled connections: a send records a batch every few milliseconds, and
        # re-opening the file (plus its PRAGMAs) each time would cost more than the write.
        engine = create_engine(parsed)
        _sqlite_hooks(engine)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() not in ("psycopg", "psycopg2"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=5)
    raise StoreError(
        f"unsupported database {backend!r} in {url!r}",
        hint="use sqlite:///path/to/file.db or postgresql+psycopg://user@host/db",
    )
