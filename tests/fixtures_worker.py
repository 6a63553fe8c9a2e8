"""Scale-out fixtures: a fresh PostgreSQL database per test, a project wired to it and to the
test SMTP server, and real `publisher worker` processes.

A database of its own (not a schema) because procrastinate's LISTEN/NOTIFY
channels and worker registry are database-wide: workers of one test must
not see another's jobs. The postgres role may CREATE DATABASE; each is dropped
WITH (FORCE) at teardown, so a killed worker's leftover session cannot keep it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from publisher.config import Settings
from publisher.content import load_issue
from publisher.ops.send import issue_key
from publisher.render.email import prepare_issue_email
from publisher.store import Store, open_store
from publisher.worker import Enqueued, fingerprint, plan_and_enqueue, secret_check
from tests.dicts import deep_merge
from tests.fixtures_content import article
from tests.fixtures_smtp import SmtpServer
from tests.fixtures_store import pg_url
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parent.parent
SECRET = "test-secret-0123456789abcdef0123456789"
SLUG = "harbour-news"
_BATCH_LINE = re.compile(r"batch (\S+) #(\d+)-(\d+): sent (\d+)")


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Workers are slow to start: a longer default deadline than the other tests."""
    return wait_for(predicate, timeout)


def fan_out(scale: Scale, slug: str = SLUG, *, now: datetime | None = None) -> Enqueued:
    """Plan and enqueue an issue send the way the scheduler does on PostgreSQL."""
    settings = scale.settings
    now = now or datetime.now(UTC)
    issue = load_issue(settings, slug)

    def args(send) -> dict:
        prepared = prepare_issue_email(settings, issue, send_key=send.key, date=send.created_at)
        return {"fingerprint": fingerprint(prepared), "check": secret_check(settings.secret_key())}

    return plan_and_enqueue(
        scale.store,
        kind="issue",
        key=issue_key(slug),
        now=now,
        issue_slug=slug,
        batch_size=settings.scale.batch_size,
        args=args,
    )


@pytest.fixture
def pg_db_url() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    base = pg_url()
    if not base:
        pytest.skip("PUBLISHER_TEST_DATABASE_URL is not set")
    name = f"pub_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@dataclass
class Scale:
    """A project on its own PostgreSQL database, sending to a test SMTP server."""

    project: Path
    settings: Settings
    store: Store
    server: SmtpServer
    make: Callable[..., Settings]

    @property
    def config(self) -> Path:
        return self.project / "config.yaml"

    def reconfigure(self, **overrides: Any) -> Settings:
        self.settings = self.make(**overrides)
        return self.settings

    def sql(self, query: str, **params: Any) -> list[Any]:
        with self.store.read() as conn:
            return list(conn.execute(sa.text(query), params))

    def scalar(self, query: str, **params: Any) -> Any:
        return self.sql(query, **params)[0][0]

    def jobs(self, status: str | None = None) -> int:
        where = "" if status is None else f" AND status = '{status}'"
        return self.scalar(
            f"SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'publisher.send_batch'{where}"
        )


@pytest.fixture
def scale(
    project: Path, write_issue, make_settings, pg_db_url: str, smtp_server: SmtpServer
) -> Iterator[Scale]:
    write_issue(
        f"issues/{SLUG}.md",
        article(title="Harbour News", date="2026-03-01", body="The ferry runs again on Sundays."),
    )

    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "database": {"url": pg_db_url},
            "email": {
                "transport": "smtp",
                "smtp": {"host": "127.0.0.1", "port": smtp_server.port, "timeout": 10},
                "concurrency": 4,
            },
            "scale": {"batch_size": 100},
        }
        deep_merge(base, overrides)
        return make_settings(**base)

    settings = make()
    store = open_store(pg_db_url)
    yield Scale(project, settings, store, smtp_server, make)
    store.close()


class WorkerProcess:
    """A real `publisher worker` in its own process; its log goes to a file we can read."""

    def __init__(self, config: Path, log: Path, *args: str) -> None:
        self.log_path = log
        self._log = log.open("w")
        env = {**os.environ, "PUBLISHER_SECRET_KEY": SECRET, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from publisher.cli import main; main()",
                "worker",
                "-c",
                str(config),
                *args,
            ],
            cwd=config.parent,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text()

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
        return "waiting for jobs" in self.log()

    def registered(self, scale: Scale, after: int) -> bool:
        """A worker registered with the queue since ``after`` (the highest worker id before us)."""
        self.ready()
        return bool(scale.scalar("SELECT count(*) FROM procrastinate_workers WHERE id > :n", n=after))

    def batches(self) -> list[tuple[str, int, int, int]]:
        """(send key, first id, last id, sent) for every batch this worker finished."""
        return [(k, int(lo), int(hi), int(n)) for k, lo, hi, n in _BATCH_LINE.findall(self.log())]

    def sent(self) -> int:
        return sum(n for *_, n in self.batches())

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def start_worker(scale: Scale, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `publisher worker` processes on the ``scale`` project; all stopped at teardown."""
    workers: list[WorkerProcess] = []

    def start(*args: str, ready: bool = True) -> WorkerProcess:
        before = scale.scalar("SELECT coalesce(max(id), 0) FROM procrastinate_workers")
        worker = WorkerProcess(scale.config, tmp_path / f"worker{len(workers)}.log", *args)
        workers.append(worker)
        if ready:
            wait_until(lambda: worker.registered(scale, before), timeout=30)
        return worker

    yield start
    for worker in workers:
        worker.stop()
