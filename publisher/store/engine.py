"""The store as callers see it: a database wired with its table operations, migrated on open.

Every entry point calls :func:`open_store`, which migrates an empty or older
database by itself, so no command needs a separate set-up step. Connections
and transactions live in ``database`` (below every table module); this module
only wires them together, so nothing under ``store/`` needs to import it.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from publisher.errors import StoreError
from publisher.store.clicks import Clicks
from publisher.store.database import BUSY_TIMEOUT_MS, Database, WriteBusyError, make_engine
from publisher.store.editors import Editors
from publisher.store.feedback import Feedbacks
from publisher.store.ledger import Ledger
from publisher.store.opens import Opens
from publisher.store.subscribers import Subscribers

__all__ = [
    "BUSY_TIMEOUT_MS",
    "MIGRATIONS",
    "Store",
    "WriteBusyError",
    "head_revision",
    "open_store",
    "upgrade",
]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class Store(Database):
    """One database: its engine plus the subscriber, ledger and feedback operations on it."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.subscribers = Subscribers(self)
        self.ledger = Ledger(self)
        self.feedback = Feedbacks(self)
        self.editors = Editors(self)
        self.clicks = Clicks(self)
        self.opens = Opens(self)


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Connect to ``url`` and (by default) upgrade its schema to the newest revision."""
    engine = make_engine(url)
    try:
        if migrate:
            _upgrade_engine(engine)
        else:
            with engine.connect():
                pass
    except OperationalError as exc:
        engine.dispose()
        raise StoreError(
            f"cannot open the database {_safe(url)}: {exc.orig}",
            hint="check database.url in config.yaml and that the server is running",
        ) from None
    return Store(engine)


def upgrade(url: str) -> str | None:
    """Bring the database at ``url`` to the newest schema; return its revision."""
    engine = make_engine(url)
    try:
        return _upgrade_engine(engine)
    finally:
        engine.dispose()


def head_revision() -> str:
    # alembic in-function: ~0.1 s to import, paid only by commands that open a database (not `build`).
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def _upgrade_engine(engine: Engine) -> str | None:
    # alembic in-function: ~0.1 s to import, paid only by commands that open a database (not `build`).
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.util.exc import CommandError

    head = head_revision()
    with engine.connect() as conn:
        if MigrationContext.configure(conn).get_current_revision() == head:
            return head  # the common case: nothing to do, and no Alembic start-up cost
    with _migration_lock(engine), engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Two processes starting on an empty database must not both create tables.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(742617)")
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        try:
            command.upgrade(cfg, "head")
        except CommandError as exc:  # e.g. a database migrated by a newer publisher
            raise StoreError(
                f"cannot migrate the database: {exc}",
                hint="the database may come from a newer version of publisher: upgrade publisher",
            ) from None
        return MigrationContext.configure(conn).get_current_revision()


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """On SQLite, a lock file next to the database serialises migrations between processes."""
    db = engine.url.database if engine.dialect.name == "sqlite" else None
    if not db or db == ":memory:":
        yield
        return
    with open(f"{db}.migrate.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _safe(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
