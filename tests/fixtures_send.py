"""The sending fixture: a project with one issue, a real store, SMTP to the test server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from publisher.cli import app
from publisher.config import Settings
from publisher.deliver import RetryPolicy
from publisher.store import open_store
from tests.fixtures_content import article

FAST = RetryPolicy(attempts=8, initial=0.05, maximum=0.2, give_up_after=20, jitter=0.01)
SLUG = "spring-news"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def smtp_project(write_issue, make_settings, db_url: str, smtp_server) -> Settings:
    """Settings for a project with one issue, on ``db_url``, sending over SMTP to the test server."""
    write_issue(
        f"issues/{SLUG}.md", article(title="Spring News", date="2026-03-01", body="The trams are back.")
    )
    return make_settings(
        database={"url": db_url},
        email={"transport": "smtp", "smtp": {"host": "127.0.0.1", "port": smtp_server.port, "timeout": 10}},
    )


@pytest.fixture
def sending(project: Path, write_issue, make_settings, db_url, smtp_server):
    """(settings, store, server) for a project with one issue, sending over SMTP to the test server."""
    settings = smtp_project(write_issue, make_settings, db_url, smtp_server)
    store = open_store(db_url)
    yield settings, store, smtp_server
    store.close()


@pytest.fixture
def cli(project: Path, write_issue, make_settings, db_url, smtp_server):
    """Run `publisher ...` in-process against the same project (a CliRunner, --config given)."""
    settings = smtp_project(write_issue, make_settings, db_url, smtp_server)
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None):
        return runner.invoke(app, [*args, "--config", str(project / "config.yaml")], input=stdin)

    run.settings = settings  # type: ignore[attr-defined]
    run.server = smtp_server  # type: ignore[attr-defined]
    run.db_url = db_url  # type: ignore[attr-defined]
    return run
