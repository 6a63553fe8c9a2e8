"""The sending fixture: a project with one issue, a real store, SMTP to the test server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

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


@pytest.fixture
def sending(project: Path, write_issue, make_settings, db_url, smtp_server):
    """(settings, store, server) for a project with one issue, sending over SMTP to the test server."""
    write_issue(
        f"issues/{SLUG}.md", article(title="Spring News", date="2026-03-01", body="The trams are back.")
    )
    settings = make_settings(
        database={"url": db_url},
        email={"transport": "smtp", "smtp": {"host": "127.0.0.1", "port": smtp_server.port, "timeout": 10}},
    )
    store = open_store(db_url)
    yield settings, store, smtp_server
    store.close()
