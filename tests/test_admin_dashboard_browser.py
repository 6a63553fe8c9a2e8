"""The dashboard and a send report in Chromium: 375 px, light and dark, keyboard, axe, live progress.

The console's CSP allows no script today, so the live-progress check runs in a
context with ``bypass_csp=True``, as the CSP change the dashboard asks for
(``script-src 'self'; connect-src 'self'``) would allow; the no-script check
shows the page is useful without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from publisher.config import Settings
from publisher.ops.editors import add_editor
from publisher.store import Outcomes, Queue, Store
from publisher.web import ServerHandle
from tests.fixtures_axe import axe_problems
from tests.fixtures_browser import ARTIFACTS
from tests.test_admin_dashboard import PASSWORD, seed


@pytest.fixture
def console_site(
    site_with_smtp: tuple[ServerHandle, Settings, Store], write_issue
) -> Iterator[tuple[str, Store]]:
    handle, _settings, store = site_with_smtp
    now = datetime.now(UTC)
    write_issue("issues/broken.md", "---\ntitle: [unclosed\n---\nBody\n")
    add_editor(store, "ann@example.org", PASSWORD, role="editor", name="Ann", actor="cli", now=now)
    seed(store, now)
    Queue(store).put("next-week", now + timedelta(days=7), now=now)
    yield handle.url, store


def _sign_in(page, url: str, next_path: str) -> None:
    page.goto(f"{url}/admin/login?next={next_path}")
    page.fill("input[type=email]", "ann@example.org")
    page.fill("input[type=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{url}{next_path}")


def _fits_a_phone(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= 375


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_dashboard_and_report_at_375px_by_keyboard_pass_axe(browser, console_site, scheme: str) -> None:
    url, _store = console_site
    context = browser.new_context(
        viewport={"width": 375, "height": 800}, color_scheme=scheme, bypass_csp=True
    )
    page = context.new_page()
    _sign_in(page, url, "/admin/dashboard")
    main = page.inner_text("main")
    assert "next-week" in main and "issues/broken.md" in main and "issue:on-bread" in main
    _fits_a_phone(page)
    assert axe_problems(page) == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"admin-dashboard-375-{scheme}.png"), full_page=True)
    for _ in range(60):  # keyboard only: Tab to the send's report link, Enter opens it
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "issue:on-bread":
            break
    page.keyboard.press("Enter")
    page.wait_for_url(f"{url}/admin/sends/*")
    assert "gmail.com" in page.inner_text("main")
    _fits_a_phone(page)
    assert axe_problems(page) == []
    page.screenshot(path=str(ARTIFACTS / f"admin-report-375-{scheme}.png"), full_page=True)
    context.close()


def test_dashboard_without_script_shows_progress_and_a_reload_link(browser, console_site) -> None:
    url, store = console_site
    send = store.ledger.plan_send("issue", "issue:live", now=datetime.now(UTC), issue_slug="live").send
    store.ledger.acquire(send.id, "drain", now=datetime.now(UTC), ttl=timedelta(minutes=5))
    context = browser.new_context(viewport={"width": 375, "height": 800}, java_script_enabled=False)
    page = context.new_page()
    _sign_in(page, url, "/admin/dashboard")
    assert page.get_attribute(f"#send-{send.id} progress", "value") == "0"
    assert page.get_by_role("link", name="Reload").is_visible()
    context.close()


def test_progress_reaches_100_without_reload(browser, console_site) -> None:
    url, store = console_site
    now = datetime.now(UTC)
    send = store.ledger.plan_send("issue", "issue:live", now=now, issue_slug="live").send
    store.ledger.acquire(send.id, "drain", now=now, ttl=timedelta(minutes=5))
    rows = store.ledger.pending(send.id)
    context = browser.new_context(viewport={"width": 375, "height": 800}, bypass_csp=True)
    page = context.new_page()
    _sign_in(page, url, "/admin/dashboard")
    page.evaluate("window.notReloaded = true")
    bar = f"#send-{send.id} progress"
    assert page.get_attribute(bar, "value") == "0"
    half, rest = Outcomes(), Outcomes()
    half.sent.extend((r.id, f"<m{r.id}@t>") for r in rows[: len(rows) // 2])
    rest.sent.extend((r.id, f"<m{r.id}@t>") for r in rows[len(rows) // 2 :])
    store.ledger.record(half, now=now)  # as the drain records each accepted batch
    page.wait_for_function(f"document.querySelector('{bar}').value > 0", timeout=10_000)
    store.ledger.record(rest, now=now)
    store.ledger.release(send.id, "drain", now=now)
    page.wait_for_function(f"document.querySelector('{bar}').value === 100", timeout=10_000)
    assert page.evaluate("window.notReloaded") is True
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-dashboard-progress-375.png"), full_page=True)
    context.close()
