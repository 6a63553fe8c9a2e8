"""Store fixtures: the same tests run on SQLite always and on PostgreSQL when
PUBLISHER_TEST_DATABASE_URL is set, each PostgreSQL test in a schema of its own
(chosen through the URL's search_path, so subprocesses given the URL are isolated too).
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext

from publisher.models import Subscriber, SubscriberStatus
from publisher.store import Store, open_store
from publisher.store.schema import subscribers as subscribers_table
from publisher.store.values import parse_status

PG_ENV = "PUBLISHER_TEST_DATABASE_URL"
NOW = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def pg_url() -> str | None:
    return os.environ.get(PG_ENV) or None


@pytest.fixture
def pg_schema_url() -> Iterator[Callable[[], str]]:
    """A factory of PostgreSQL URLs, each pinned to a fresh schema dropped afterwards."""
    base = pg_url()
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    admin = sa.create_engine(base, poolclass=sa.pool.NullPool)
    made: list[str] = []

    def make() -> str:
        schema = f"t_{uuid.uuid4().hex[:16]}"
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        made.append(schema)
        sep = "&" if "?" in base else "?"
        return f"{base}{sep}options=-csearch_path%3D{schema}"

    yield make
    with admin.begin() as conn:
        for schema in made:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database URL: SQLite in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    make = request.getfixturevalue("pg_schema_url")
    return make()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """An open, migrated store on ``db_url``."""
    s = open_store(db_url)
    yield s
    s.close()


def add_subscribers(store: Store, n: int, *, domain: str = "example.org", **kw: str) -> list[str]:
    """Add ``n`` confirmed instant subscribers quickly (one CSV import); return their addresses."""
    emails = [f"reader{i:06d}@{domain}" for i in range(n)]
    lines = ["email,name"] + [f"{e},Reader {i}" for i, e in enumerate(emails)]
    report = store.subscribers.import_csv(io.StringIO("\n".join(lines) + "\n"), now=NOW)
    assert report.added == n and not report.problems, report.problems[:3]
    return emails


def current_revision(store: Store) -> str | None:
    """The Alembic revision the database is at (the app only ever asks for the head)."""
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def set_status_by_ids(store: Store, ids: list[int], status: SubscriberStatus | str, *, now: datetime) -> int:
    """Set many subscribers' status at once, as a bounce would; returns how many rows changed."""
    if not ids:
        return 0
    st = parse_status(status)
    values: dict[str, Any] = {"status": st.value, "updated_at": now}
    if st not in (SubscriberStatus.CONFIRMED, SubscriberStatus.PENDING):
        values["unsubscribed_at"] = now
    table = subscribers_table
    with store.write() as conn:
        return conn.execute(sa.update(table).where(table.c.id.in_(ids)).values(**values)).rowcount


def subscriber(store: Store, email: str) -> Subscriber:
    """The subscriber with ``email``, which the test expects to be there."""
    found = store.subscribers.get(email)
    assert found is not None, f"no subscriber {email}"
    return found
