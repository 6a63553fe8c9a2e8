"""``/privacy`` says what this publication counts, from its own settings (issue #16, item 3).

Over real HTTP for each analytics setting, and in Chromium on a phone-sized
screen: readable without sideways scrolling, every link reachable by Tab with a
visible focus, and no serious accessibility problem (axe).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from publisher.config import Settings
from publisher.store import Store
from tests.fixtures_axe import axe_problems
from tests.fixtures_web import main_text

SAYS = {
    "off": ("We count no clicks", "We do not count clicks", "no tracking image"),
    "per-link": ("never per reader", "not you", "never store your IP address", "after 90 days"),
    "per-subscriber": ("which links you clicked", "180 days", "at least 5 issues", "within 14 days"),
    "opens": ("tiny image", "an estimate"),
}
SETTINGS = {
    "off": {"clicks": False},
    "per-link": {},
    "per-subscriber": {"per_subscriber": True},
    "opens": {"opens": True},
}


@pytest.mark.parametrize("mode", list(SETTINGS))
def test_the_privacy_page_says_what_is_counted(
    mode: str,
    make_settings: Callable[..., Settings],
    store: Store,
    make_app: Callable[..., FastAPI],
    live_server: Any,
) -> None:
    settings = make_settings(database={"url": store.url}, analytics=SETTINGS[mode])
    base = live_server(settings, make_app(settings, store)).url.rstrip("/")
    got = httpx.get(f"{base}/privacy", timeout=10)
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/html")
    text = " ".join(main_text(got.text).split())
    for phrase in SAYS[mode]:
        assert phrase in text, (mode, phrase)
    if mode == "opens":
        assert "no tracking image" not in text
    else:  # one story, not three
        assert not any(SAYS[m][0] in text for m in ("off", "per-link", "per-subscriber") if m != mode), mode
        assert "tiny image" not in text
    assert httpx.head(f"{base}/privacy", timeout=10).status_code == 200


def test_the_privacy_page_on_a_phone_and_by_keyboard(browser: Any, site_with_smtp: Any) -> None:
    handle, _settings, _store = site_with_smtp
    context = browser.new_context(  # bypass_csp: only so axe can be injected (fixtures_axe)
        viewport={"width": 375, "height": 812}, is_mobile=True, has_touch=True, bypass_csp=True
    )
    page = context.new_page()
    page.goto(handle.url + "/privacy")
    assert page.locator("h1").inner_text() == "Privacy: what we count"
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling
    assert page.evaluate("parseFloat(getComputedStyle(document.querySelector('main p')).fontSize)") >= 16
    links = page.locator("a[href]").count()
    seen = []
    for _ in range(links):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "(() => { const e = document.activeElement; const s = getComputedStyle(e);"
            " return [e.tagName, s.outlineStyle !== 'none' || s.boxShadow !== 'none'"
            " || e.matches(':focus-visible')]; })()"
        )
        seen.append(focused)
    assert seen and all(tag == "A" and visible for tag, visible in seen), seen
    assert axe_problems(page) == []
    context.close()
