"""Dark mode (issue 13, item 3): the email and the site in Chromium, light and dark.

Each page is opened with ``prefers-color-scheme`` emulated both ways. Text must keep a WCAG
contrast of 4.5:1 against the background it is actually drawn on (the first opaque
background up the ancestors), and dark must really change that background. Screenshots of
both schemes at 375 and 800 px go to tests/artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import html as lxml_html

from publisher.config import Settings
from tests.fixtures_browser import ARTIFACTS
from tests.fixtures_email import parse, part_text
from tests.test_email_client import issues, message, open_email

ROOT = Path(__file__).resolve().parent.parent
SCHEMES = ("light", "dark")
WIDTHS = (375, 800)

# Per element: [selector, its colour, the background it sits on] as "rgb(...)"/"rgba(...)" strings.
COLOURS_JS = """sels => sels.flatMap(sel => Array.from(document.querySelectorAll(sel), el => {
  let bg = null;
  for (let e = el; e && !bg; e = e.parentElement) {
    const c = getComputedStyle(e).backgroundColor;
    if (!/rgba\\(.*, 0\\)$/.test(c) && c !== 'transparent') bg = c;
  }
  return [sel, getComputedStyle(el).color, bg];
}))"""

EMAIL_TEXT = [".content", ".body p", ".meta", ".title a", ".body a", ".footer", ".footer a", ".topbar a"]
SITE_TEXT = ["main p", "h1", ".meta", ".body blockquote", ".body pre", "main a", ".site-footer", "nav a"]
FORM_TEXT = ["label", "input[type=email]", "input[type=text]", "select", "button", ".field-error"]


def rgb(css: str) -> tuple[float, float, float]:
    """The channels of a computed ``rgb()``/``rgba()`` colour."""
    r, g, b = (float(v) for v in re.findall(r"[\d.]+", css)[:3])
    return r, g, b


def luminance(css: str) -> float:
    """WCAG 2 relative luminance."""

    def lin(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in rgb(css))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg: str, bg: str) -> float:
    """WCAG 2 contrast ratio of two colours."""
    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def check_text(page, selectors: list[str], scheme: str) -> None:
    """Every matched element's text reaches 4.5:1 on its background."""
    found = page.evaluate(COLOURS_JS, selectors)
    assert {sel for sel, _c, _b in found} == set(selectors), "a selector matched nothing"
    for sel, colour, background in found:
        assert background, (scheme, sel, "no opaque background up the tree")
        assert contrast(colour, background) >= 4.5, (scheme, sel, colour, background)


def page_background(page) -> str:
    """The background the body text of the page sits on."""
    return page.evaluate(COLOURS_JS, ["p"])[0][2]


# -- the email -------------------------------------------------------------------------------------


def test_email_declares_both_schemes_and_keeps_dark_rules(mail_settings) -> None:
    """Meta tags, ``:root`` and the dark ``@media`` survive premailer, every declaration ``!important``."""
    html = part_text(parse(message(mail_settings, issues()["rich"])), "html")
    doc = lxml_html.document_fromstring(html)
    metas = {m.get("name"): m.get("content") for m in doc.xpath("//meta[@name]")}
    assert metas["color-scheme"] == "light dark" and metas["supported-color-schemes"] == "light dark"
    (style,) = doc.xpath("//style")
    css = style.text
    assert re.search(r":root\s*\{[^}]*color-scheme:\s*light dark", css)
    dark = re.search(r"@media \(prefers-color-scheme: dark\)\s*\{(.*?\})\s*\}", css, re.S)
    assert dark, css
    declarations = re.findall(r"[\w-]+\s*:\s*[^;{}]+", dark.group(1))
    assert declarations and all(d.rstrip().endswith("!important") for d in declarations)
    assert re.search(r"\[data-ogsc\] \.content[, ][^{]*\{[^}]*color:[^}]*!important", css)  # Outlook.com


@pytest.mark.slow
def test_email_reads_in_light_and_dark(mail_settings, browser) -> None:
    """The rich issue: readable text in both schemes, a dark background in dark, images on a light mat."""
    html = part_text(parse(message(mail_settings, issues()["rich"])), "html")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    backgrounds: dict[str, str] = {}
    for width in WIDTHS:
        page = open_email(browser, html, width)
        for scheme in SCHEMES:
            page.emulate_media(color_scheme=scheme)
            check_text(page, EMAIL_TEXT, scheme)
            backgrounds[scheme] = page_background(page)
            images = page.evaluate(
                "Array.from(document.images, i => [i.getBoundingClientRect().right,"
                " getComputedStyle(i).backgroundColor])"
            )
            assert images and all(right <= width for right, _bg in images)  # still fits the column
            if scheme == "dark":  # dark logos and black text in pictures stay readable on a light mat
                assert all(luminance(bg) > 0.8 for _r, bg in images), images
            page.screenshot(path=str(ARTIFACTS / f"dark-mode-email-{scheme}-{width}.png"), full_page=True)
        page.close()
        assert luminance(backgrounds["light"]) > 0.8 and luminance(backgrounds["dark"]) < 0.05, backgrounds


# -- the site --------------------------------------------------------------------------------------

ARTICLE = """---
title: Night trams
date: 2026-01-02T08:00:00+00:00
tags: [trams]
---

The last tram leaves at one. [The timetable](https://example.org/t) says so.

> A quotation from the driver.

```
departures = ["00:12", "00:41"]
```
"""


def test_site_declares_both_schemes() -> None:
    """base.html names both schemes; site.css redefines its colours for dark."""
    assert '<meta name="color-scheme" content="light dark">' in (ROOT / "templates/base.html").read_text()
    css = (ROOT / "templates/static/site.css").read_text()
    dark = css[css.index("@media (prefers-color-scheme: dark)") :]
    assert all(f"--{name}:" in dark for name in ("ink", "muted", "accent", "paper", "page", "rule"))


@pytest.mark.slow
def test_site_reads_in_light_and_dark(project: Path, make_settings: Callable[..., Settings], browser) -> None:
    """An article page: readable in both schemes, and dark really darkens it."""
    from publisher.build import build

    (project / "issues" / "night-trams.md").write_text(ARTICLE, encoding="utf-8")
    settings = make_settings(paths={"state": str(project / ".state")})
    build(settings, emails=False)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        backgrounds: dict[str, str] = {}
        for scheme in SCHEMES:
            context = browser.new_context(color_scheme=scheme, viewport={"width": width, "height": 800})
            page = context.new_page()
            page.route("http*://**/*", lambda r: r.abort())  # the site must lay out offline
            page.goto((settings.paths.output / "night-trams/index.html").as_uri())
            assert page.evaluate("getComputedStyle(document.body).marginTop") == "0px"  # css loaded
            check_text(page, SITE_TEXT, scheme)
            backgrounds[scheme] = page_background(page)
            page.screenshot(path=str(ARTIFACTS / f"dark-mode-site-{scheme}-{width}.png"), full_page=True)
            context.close()
        assert luminance(backgrounds["light"]) > 0.8 and luminance(backgrounds["dark"]) < 0.05, backgrounds


@pytest.mark.slow
def test_form_reads_in_light_and_dark(browser, site_with_smtp) -> None:
    """The sign-up form, errors shown: labels, fields, button and error text readable in both schemes."""
    handle, _settings, _store = site_with_smtp
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    backgrounds: dict[str, str] = {}
    for scheme in SCHEMES:
        context = browser.new_context(color_scheme=scheme, viewport={"width": 375, "height": 812})
        page = context.new_page()
        page.goto(handle.url + "/subscribe")
        page.fill("#email", "not-an-address")
        page.evaluate("document.querySelector('#email').removeAttribute('type')")  # let the server judge it
        page.click("button[type=submit]")
        page.wait_for_selector(".field-error")
        check_text(page, [s.replace("[type=email]", "#email") for s in FORM_TEXT], scheme)
        backgrounds[scheme] = page_background(page)
        page.screenshot(path=str(ARTIFACTS / f"dark-mode-form-{scheme}-375.png"), full_page=True)
        context.close()
    assert luminance(backgrounds["light"]) > 0.8 and luminance(backgrounds["dark"]) < 0.05, backgrounds
