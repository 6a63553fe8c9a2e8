"""The console's subscriber pages in Chromium: search, page, act and import a CSV by keyboard at 375 px.

No JavaScript is needed by the pages (the console's CSP allows none); axe-core
is injected with ``bypass_csp`` only to check them. Screenshots land in the
test artifacts folder.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from publisher.config import Settings
from publisher.ops.editors import add_editor
from publisher.store import Store
from publisher.web import ServerHandle
from tests.fixtures_axe import axe_problems
from tests.fixtures_browser import ARTIFACTS
from tests.fixtures_store import subscriber

PASSWORD = "correct horse battery staple"


@pytest.fixture
def console_site(site_with_smtp: tuple[ServerHandle, Settings, Store]) -> Iterator[tuple[str, Store]]:
    handle, _settings, store = site_with_smtp
    now = datetime.now(UTC)
    add_editor(store, "ann@example.org", PASSWORD, role="editor", name="Ann", actor="cli", now=now)
    lines = ["email,name,topics"] + [f"reader{i:03d}@example.org,Reader {i},food" for i in range(60)]
    store.subscribers.import_csv(io.StringIO("\n".join(lines) + "\n"), now=now)
    store.subscribers.add("ada@example.net", now=now, name="Ada Lovelace", status="pending")
    yield handle.url, store


def _check(page: Any, name: str, scheme: str) -> None:
    """No serious axe violation, nothing wider than the phone, and a screenshot."""
    assert axe_problems(page) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"admin-{name}-375-{scheme}.png"), full_page=True)


def _tab_to(page: Any, selector: str) -> None:
    """Press Tab until ``selector`` has the focus (keyboard only)."""
    for _ in range(200):
        page.keyboard.press("Tab")
        if page.evaluate(f"document.activeElement.matches({selector!r})"):
            return
    raise AssertionError(f"Tab never reached {selector}")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_search_page_act_and_import_by_keyboard(
    browser, console_site: tuple[str, Store], scheme: str, tmp_path: Path
) -> None:
    url, store = console_site
    context = browser.new_context(
        viewport={"width": 375, "height": 800}, color_scheme=scheme, bypass_csp=True
    )
    page = context.new_page()
    page.goto(f"{url}/admin/subscribers")
    page.fill("input[type=email]", "ann@example.org")
    page.fill("input[type=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{url}/admin/subscribers")
    _check(page, "subscribers", scheme)

    _tab_to(page, "a[rel=next]")  # paging: a plain link, followed with Enter
    page.keyboard.press("Enter")
    page.wait_for_url("**after=**")
    assert "reader050@example.org" in page.inner_text("main")
    assert page.locator("a[rel=prev]").count() == 1

    page.goto(f"{url}/admin/subscribers")
    _tab_to(page, "#q")
    page.keyboard.type("lovelace")
    page.keyboard.press("Enter")
    page.wait_for_url("**q=lovelace**")
    _tab_to(page, "a[href*='/admin/subscribers/']:not([href*='export']):not([href*='import'])")
    page.keyboard.press("Enter")
    page.wait_for_url("**/admin/subscribers/*")
    assert "Ada Lovelace" in page.inner_text("main")
    _check(page, "subscriber", scheme)

    _tab_to(page, "#new-status")
    page.select_option("#new-status", "confirmed")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url("**done=status")
    assert "Status changed." in page.inner_text("main")
    assert subscriber(store, "ada@example.net").status.value == "confirmed"

    csv = tmp_path / "list.csv"
    csv.write_text("email,name\nnew@example.org,New\nnot-an-address,Bad\n", encoding="utf-8")
    page.goto(f"{url}/admin/subscribers/import")
    _check(page, "import", scheme)
    page.set_input_files("#file", str(csv))
    _tab_to(page, "button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Rows refused")
    assert "not-an-address" in page.inner_text("main") or "email" in page.inner_text("main")
    assert store.subscribers.get("new@example.org") is None  # nothing written before the confirmation
    _check(page, "import-check", scheme)
    _tab_to(page, "form[action$='/confirm'] button")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=What the import did")
    assert store.subscribers.get("new@example.org") is not None
    context.close()
