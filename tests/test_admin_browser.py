"""The console's sign-in in Chromium: by keyboard alone, at phone width, light and dark, axe-clean."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from publisher.config import Settings
from publisher.ops.editors import add_editor
from publisher.store import Store
from publisher.web import ServerHandle
from tests.fixtures_axe import axe_problems
from tests.fixtures_browser import ARTIFACTS

PASSWORD = "correct horse battery staple"


@pytest.fixture
def console_site(site_with_smtp: tuple[ServerHandle, Settings, Store]) -> Iterator[str]:
    handle, _settings, store = site_with_smtp
    add_editor(
        store, "ann@example.org", PASSWORD, role="editor", name="Ann", actor="cli", now=datetime.now(UTC)
    )
    yield handle.url


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_sign_in_by_keyboard_at_375px_passes_axe(browser, console_site: str, scheme: str) -> None:
    context = browser.new_context(
        viewport={"width": 375, "height": 800}, color_scheme=scheme, bypass_csp=True
    )
    page = context.new_page()
    page.goto(f"{console_site}/admin")
    assert page.url.startswith(f"{console_site}/admin/login")  # no session: to the sign-in form
    assert axe_problems(page) == []
    # keyboard only: Tab to each field, type, Enter submits
    page.keyboard.press("Tab")
    for _ in range(12):
        if page.evaluate("document.activeElement.type") == "email":
            break
        page.keyboard.press("Tab")
    page.keyboard.type("ann@example.org")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.type") == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{console_site}/admin")
    assert "ann@example.org" in page.inner_text("main")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # nothing wider than a phone
    assert axe_problems(page) == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"admin-home-375-{scheme}.png"), full_page=True)
    context.close()
