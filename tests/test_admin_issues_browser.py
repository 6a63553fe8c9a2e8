"""The console's Issues pages in Chromium: phone width, keyboard, axe-clean, preview under its real CSP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from publisher.config import Settings
from publisher.ops.editors import add_editor
from publisher.store import Queue, Store
from publisher.web import ServerHandle
from tests.fixtures_axe import axe_problems
from tests.fixtures_browser import ARTIFACTS
from tests.fixtures_smtp import SmtpServer
from tests.test_dark_mode import luminance

PASSWORD = "correct horse battery staple"


@pytest.fixture
def console_site(site_with_smtp: tuple[ServerHandle, Settings, Store]) -> Iterator[str]:
    handle, _settings, store = site_with_smtp
    add_editor(
        store, "ann@example.org", PASSWORD, role="editor", name="Ann", actor="cli", now=datetime.now(UTC)
    )
    yield handle.url


def _sign_in(page: Any, site: str, target: str) -> None:
    page.goto(f"{site}/admin/login?next=/admin/{target}")
    page.fill("input[type=email]", "ann@example.org")
    page.fill("input[type=password]", PASSWORD)
    page.press("input[type=password]", "Enter")
    page.wait_for_url(f"{site}/admin/{target}")


def _tab_to(page: Any, text: str, limit: int = 80) -> None:
    """Tab (keyboard only) until the focused element's text contains ``text``."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if text in page.evaluate("document.activeElement.textContent || ''"):
            return
    raise AssertionError(f"no focusable element with {text!r} within {limit} tabs")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_issues_list_and_preview_at_375px_by_keyboard_pass_axe(
    browser: Any, console_site: str, smtp_server: SmtpServer, scheme: str
) -> None:
    context = browser.new_context(
        viewport={"width": 375, "height": 800}, color_scheme=scheme, bypass_csp=True
    )
    page = context.new_page()
    _sign_in(page, console_site, "issues")
    assert "On bread" in page.inner_text("main") and "ready" in page.inner_text("main")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert axe_problems(page) == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"admin-issues-375-{scheme}.png"), full_page=True)

    _tab_to(page, "On bread")  # keyboard: from the list to the preview
    page.keyboard.press("Enter")
    page.wait_for_url(f"{console_site}/admin/issues/a")
    assert page.locator("iframe[sandbox='']").count() == 4
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # the 600 px frames scroll in place
    assert axe_problems(page) == []
    page.screenshot(path=str(ARTIFACTS / f"admin-issue-preview-375-{scheme}.png"), full_page=True)

    # focus the button, then the keyboard's Enter (tabbing through the four frames races with their
    # loading: a frame that finishes loading can take the focus between two key presses)
    page.focus("form[action$='/test'] button")
    assert "Send a test to me" in page.evaluate("document.activeElement.textContent")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{console_site}/admin/issues/a?done=test")
    assert [m.rcpt for m in smtp_server.received()] == ["ann@example.org"]
    context.close()


def test_the_preview_frames_render_under_the_real_csp(browser: Any, console_site: str) -> None:
    """No CSP bypass: the console frames only its email route, which shows the mail without script."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="light")
    page = context.new_page()
    _sign_in(page, console_site, "issues/a")
    frames = {f.url.rsplit("=", 1)[-1]: f for f in page.frames if "email.html" in f.url}
    assert set(frames) == {"light", "dark"}
    for frame in page.frames[1:]:
        frame.wait_for_selector(".content")
        assert "On bread" in frame.inner_text("body")
        assert frame.evaluate("typeof document.scripts") == "object"  # the frame's own DOM is there
    dark_bg = frames["dark"].evaluate("getComputedStyle(document.body).backgroundColor")
    light_bg = frames["light"].evaluate("getComputedStyle(document.body).backgroundColor")
    assert luminance(dark_bg) < 0.1 < luminance(light_bg)  # dark mode drawn, in a light browser
    ARTIFACTS.mkdir(exist_ok=True)
    for n, figure in enumerate(page.locator("figure.preview-frame").all()):
        name = figure.locator("figcaption").inner_text().replace(" px, ", "-")  # e.g. 375-dark
        figure.scroll_into_view_if_needed()
        figure.screenshot(path=str(ARTIFACTS / f"admin-issue-email-{name}.png"))
        assert n < 4
    context.close()


def test_a_check_problem_then_queue_and_unqueue_by_keyboard(
    browser: Any, console_site: str, site_with_smtp: tuple[ServerHandle, Settings, Store], write_issue: Any
) -> None:
    """The editor's walk: a broken issue shows its problem; a good one is queued, then unqueued."""
    _handle, _settings, store = site_with_smtp
    write_issue("issues/broken.md", "---\ntitle: Broken\ndate: 2026-13-45\n---\nBody.\n")
    context = browser.new_context(
        viewport={"width": 375, "height": 800}, color_scheme="dark", bypass_csp=True
    )
    page = context.new_page()
    _sign_in(page, console_site, "issues")
    listing = page.inner_text("main")
    assert "broken" in listing and "date" in listing  # the problem, beside its issue
    assert page.locator(".problem").count() >= 1

    page.goto(f"{console_site}/admin/issues/a")
    page.fill("#queue-at", "2099-01-01T09:00")
    page.select_option("#queue-zone", "UTC")
    page.focus("form[action$='/queue'] button")
    page.keyboard.press("Enter")
    page.wait_for_url("**/admin/issues/a?done=queued*")
    assert [q.slug for q in Queue(store).list()] == ["a"]
    assert "Queued for" in page.inner_text("main") and "2099" in page.inner_text("main")
    assert axe_problems(page) == []

    page.focus("form[action$='/unqueue'] button")  # the keyboard's Enter on the focused button
    page.keyboard.press("Enter")
    page.wait_for_url("**/admin/issues/a?done=unqueued*")
    assert Queue(store).list() == []
    context.close()
