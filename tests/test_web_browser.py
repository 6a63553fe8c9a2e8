"""A real browser through the whole life of a subscription.

Headless Chromium (Playwright) against uvicorn on 127.0.0.1, with the
confirmation mail sent over SMTP to a real aiosmtpd server: subscribe,
confirm from the mail, change preferences, unsubscribe with the button.
Skipped without Chromium or Playwright on a developer's machine; fails in CI.
Screenshots go to tests/artifacts/ (gitignored).
"""

from __future__ import annotations

from publisher.models import Frequency, SubscriberStatus
from tests.fixtures_browser import ARTIFACTS
from tests.fixtures_web import link_from, wait_for


def test_subscribe_confirm_preferences_unsubscribe_in_chromium(browser, site_with_smtp, smtp_server) -> None:
    handle, _settings, store = site_with_smtp
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(timezone_id="Asia/Tokyo", viewport={"width": 900, "height": 1000})
    page = context.new_page()
    problems: list[str] = []
    failed: list[str] = []
    page.on(
        "console", lambda m: problems.append(m.text) if m.type == "error" and "404" not in m.text else None
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)

    # 1. subscribe: the inline (hashed) script guessed the browser's zone despite the CSP
    page.goto(handle.url + "/subscribe")
    assert page.locator("#timezone").input_value() == "Asia/Tokyo"
    page.fill("#email", "reader@example.org")
    page.fill("#name", "Rea Der")
    page.check("input[name=frequency][value=weekly]")
    page.check("input[name=topics][value=science]")
    page.screenshot(path=str(ARTIFACTS / "web-1-subscribe.png"), full_page=True)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Check your inbox")
    page.screenshot(path=str(ARTIFACTS / "web-2-check-inbox.png"), full_page=True)
    sub = wait_for(lambda: store.subscribers.get("reader@example.org"))  # written after the answer
    assert sub.status is SubscriberStatus.PENDING and sub.timezone == "Asia/Tokyo"

    # 2. the mail arrives at the SMTP server; its link confirms
    received = wait_for(smtp_server.received, timeout=15)
    msg = received[0].message()
    assert received[0].rcpt == "reader@example.org"
    confirm = link_from(msg, "confirm")
    assert confirm.startswith(handle.url + "/confirm/")
    page.goto(confirm)  # the link shows a button (a scanner fetching it confirms nothing)
    page.wait_for_selector("text=Confirm my subscription")
    assert store.subscribers.get("reader@example.org").status is SubscriberStatus.PENDING
    page.click("text=Confirm my subscription")
    page.wait_for_selector("text=You are subscribed")
    page.screenshot(path=str(ARTIFACTS / "web-3-confirmed.png"), full_page=True)
    assert store.subscribers.get("reader@example.org").status is SubscriberStatus.CONFIRMED

    # 3. preferences: daily, another zone, topics changed
    page.click("text=Choose how often and which topics")
    page.wait_for_selector("form.preferences-form")
    assert page.locator("#name").input_value() == "Rea Der"
    page.check("input[name=frequency][value=daily]")
    page.select_option("#timezone", "America/Chicago")
    page.uncheck("input[name=topics][value=science]")
    page.check("input[name=topics][value=food]")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Your choices are saved")
    page.screenshot(path=str(ARTIFACTS / "web-4-preferences.png"), full_page=True)
    sub = store.subscribers.get("reader@example.org")
    assert (sub.frequency, sub.timezone, sub.topics) == (Frequency.DAILY, "America/Chicago", ("food",))

    # 4. unsubscribe: the link only shows a button; the button unsubscribes
    page.click("text=Unsubscribe")
    page.wait_for_selector("button[type=submit]")
    assert store.subscribers.get("reader@example.org").status is SubscriberStatus.CONFIRMED
    page.screenshot(path=str(ARTIFACTS / "web-5-unsubscribe.png"), full_page=True)
    page.click("button[type=submit]")
    page.wait_for_selector("text=You are unsubscribed")
    page.screenshot(path=str(ARTIFACTS / "web-6-unsubscribed.png"), full_page=True)
    assert store.subscribers.get("reader@example.org").status is SubscriberStatus.UNSUBSCRIBED
    assert page.url.startswith(handle.url + "/unsubscribe/")  # no redirect

    # the stylesheet loaded and nothing was blocked by the CSP or broke
    assert page.evaluate("getComputedStyle(document.body).fontFamily").startswith("Georgia")
    assert problems == [], problems
    assert [u for u in failed if not u.endswith("/favicon.ico")] == []  # the site has no favicon
    context.close()
