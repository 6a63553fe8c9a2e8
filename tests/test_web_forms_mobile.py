"""The sign-up form on a phone, in Chromium: thumb-sized controls, no zoom, errors tied to fields.

Issue 13, item 15. A 375 px viewport (an iPhone's), the browser's time zone set, a
submission with mistakes; measured in the real page (computed styles, boxes, ARIA).
"""

from __future__ import annotations

from tests.fixtures_browser import ARTIFACTS

CONTROLS = "input[type=email], input[type=text], select, button, label.choice"


def test_the_form_on_a_phone(browser, site_with_smtp) -> None:
    handle, _settings, _store = site_with_smtp
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(
        timezone_id="Asia/Kolkata", viewport={"width": 375, "height": 812}, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.goto(handle.url + "/subscribe")
    # the browser's zone is pre-selected; zones come grouped by region, without legacy aliases
    assert page.locator("#timezone").input_value() == "Asia/Kolkata"
    options = page.locator("#timezone option").evaluate_all("els => els.map(e => e.value)")
    groups = page.locator("#timezone optgroup").evaluate_all("els => els.map(e => e.label)")
    assert {"Europe", "America", "Asia", "UTC"} <= set(groups)
    assert "Europe/Oslo" in options and not {"US/Eastern", "Etc/GMT+5", "Asia/Calcutta"} & set(options)
    sizes = page.locator(CONTROLS).evaluate_all(
        "els => els.map(e => [e.tagName + '.' + e.className, e.getBoundingClientRect().height,"
        " parseFloat(getComputedStyle(e).fontSize), e.getBoundingClientRect().right])"
    )
    assert sizes
    for name, height, font, right in sizes:
        assert height >= 44, (name, height)
        assert font >= 16, (name, font)  # iOS zooms into smaller text
        assert right <= 375, (name, right)  # nothing runs off the screen
    page.screenshot(path=str(ARTIFACTS / "form-375.png"), full_page=True)
    # a mistake is said next to its field, and tied to it for screen readers
    page.fill("#email", "not-an-address")
    page.evaluate("document.querySelector('#email').removeAttribute('type')")  # let the server judge it
    page.click("button[type=submit]")
    page.wait_for_selector(".field-error")
    field = page.locator("#email")
    assert field.get_attribute("aria-invalid") == "true"
    described = field.get_attribute("aria-describedby")
    assert described and "valid email" in page.locator(f"#{described}").inner_text()
    assert page.locator("#name").get_attribute("aria-invalid") is None
    assert field.evaluate("e => getComputedStyle(e).borderTopColor") == "rgb(179, 38, 30)"  # seen, too
    page.screenshot(path=str(ARTIFACTS / "form-375-error.png"), full_page=True)
    context.close()
