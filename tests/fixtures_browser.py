"""Headless Chromium (Debian's, driven by Playwright) for the tests that look at pages as a person would.

Skipped on a developer's machine without Chromium or Playwright; a failure in CI,
where `.ci/run` installs them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

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
