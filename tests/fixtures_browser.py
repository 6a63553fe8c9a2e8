"""Headless Chromium (Debian's, driven by Playwright) for the tests that look at pages as a person would.

Skipped on a developer's machine without Chromium or Playwright; a failure in CI,
where `.ci/run` installs them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from publisher.config import Settings
from publisher.store import Store, open_store
from publisher.web import Limits, ServerHandle, create_app
from tests.fixtures_content import article
from tests.fixtures_web import bound_socket

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"  # screenshots (gitignored)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def need(tool: str, present: bool) -> None:
    """Skip without the tool; fail in CI, where it must be installed."""
    if not present:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is required in CI but is not installed")
        pytest.skip(f"{tool} is not installed")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One Chromium per test module (starting it costs about a second)."""
    need("chromium", Path(CHROMIUM).exists())
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("the playwright Python package", False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def site_with_smtp(
    make_settings: Callable[..., Settings],
    write_issue,
    smtp_server,
    built_site: Path,
    live_server: Callable[..., ServerHandle],
    tmp_path: Path,
) -> Iterator[tuple[ServerHandle, Settings, Store]]:
    write_issue("issues/a.md", article("On bread", extra="tags: [food, science]"))
    sock = bound_socket()
    host, port = sock.getsockname()
    settings = make_settings(
        site={"url": f"http://{host}:{port}", "timezone": "Europe/London"},
        email={"transport": "smtp", "smtp": {"host": "127.0.0.1", "port": smtp_server.port}},
        database={"url": f"sqlite:///{tmp_path / 'browser.db'}"},
    )
    shutil.copytree(built_site / "site", settings.paths.output)  # so pages have their stylesheet
    store = open_store(settings.database.url)
    app = create_app(settings, store=store, environ={}, limits=Limits())
    handle = live_server(settings, app, sock=sock)
    yield handle, settings, store
    store.close()
