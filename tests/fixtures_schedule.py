"""Fixtures for the queue, digest, scheduler and `publisher run` tests.

A controllable clock, a tmp project with issues and a database (SQLite, or
PostgreSQL through ``db_url`` when PUBLISHER_TEST_DATABASE_URL is set), and a
helper that writes articles with tags and dates for digest scenarios.
"""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from publisher.config import Settings
from publisher.schedule.runner import Runner, RunOptions
from publisher.store import Store, open_store
from tests.polling import wait_for


class FakeClock:
    """A clock tests move by hand; every call returns the current time (aware, UTC)."""

    def __init__(self, start: datetime) -> None:
        self.now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def set(self, when: datetime) -> datetime:
        self.now = when.astimezone(UTC)
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Scene:
    """A tmp project wired to a database: settings, store, and ways to add content."""

    project: Path
    settings: Settings
    store: Store
    make: Callable[..., Settings]

    def article(
        self,
        slug: str,
        *,
        title: str | None = None,
        date: str = "2026-11-20T09:00:00+00:00",
        tags: tuple[str, ...] = (),
        body: str | None = None,
        extra: str = "",
    ) -> Path:
        """Write issues/<slug>.md (one article) and return its path."""
        shown = title or slug.replace("-", " ").title()
        lines = ["---", f"title: {json.dumps(shown)}", f"date: {date}"]
        if tags:
            lines.append("tags: [" + ", ".join(tags) + "]")
        if extra:
            lines.extend(textwrap.dedent(extra).strip("\n").split("\n"))
        lines += ["---", "", body or f"The story of {slug.replace('-', ' ')}, told in a few words.", ""]
        path = self.project / "issues" / f"{slug}.md"
        path.write_text("\n".join(lines), encoding="utf-8")
        return path

    def reconfigure(self, **overrides: Any) -> Settings:
        self.settings = self.make(**overrides)
        return self.settings


@pytest.fixture
def scene(project: Path, make_settings: Callable[..., Settings], db_url: str) -> Iterator[Scene]:
    """A project on ``db_url`` with the file transport (mail lands in outbox/ as .eml files)."""
    settings = make_settings(database={"url": db_url}, email={"transport": "file"})
    store = open_store(db_url)
    yield Scene(project, settings, store, make_settings)
    store.close()


def run_until(settings: Settings, done: Callable[[], bool]) -> None:
    """A real ``publisher run`` loop (a Runner on the real clock, its own store) until ``done()`` holds."""
    own = open_store(settings.database.url)  # its own store, as the `publisher run` process has
    runner = Runner(settings, own, options=RunOptions(poll=0.3, digest_every=3600, web=False))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            runner.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_for(done)
    finally:
        runner.request_stop()
        thread.join(30)
        own.close()
    assert not thread.is_alive() and not errors, errors
