"""The email as real clients and filters see it: headless Chromium and SpamAssassin.

Both tools are system packages; the tests skip without them on a developer's
machine but fail in CI (env CI set), where they must be installed.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from publisher.config import Settings
from publisher.models import Issue
from publisher.render.email import make_recipient, prepare_issue_email
from tests.fixtures_browser import ARTIFACTS, need
from tests.fixtures_email import make_article, make_folder_issue, make_issue, parse, part_text

ROOT = Path(__file__).resolve().parent.parent


# Content built to overflow a phone: a 9-column table, unbroken words, a huge image, long code.
WIDE_BODY = (
    "| "
    + " | ".join(f"Heading{n}WithoutSpaces" for n in range(9))
    + " |\n|"
    + "---|" * 9
    + "\n| "
    + " | ".join("https://example.org/x/" + "y" * 30 for _ in range(9))
    + " |\n\n"
    + "Supercalifragilisticexpialidocious" * 6
    + "\n\n![A very wide picture](media/wide.png)\n\n"
    "```\n" + "x = [" + ", ".join(str(n) for n in range(80)) + "]\n```\n\n"
    "Inline `" + "a_really_long_identifier_" * 8 + "` code.\n"
)


def issues() -> dict[str, Issue]:
    return {
        "rich": make_issue(),
        "folder": make_folder_issue(),
        "wide": make_issue(make_article(slug="wide", title="A wide one " + "W" * 60, body=WIDE_BODY)),
        "unicode": make_issue(
            make_article(
                slug="unicode",
                title="Café culture — «le troisième lieu» 🚋",
                author="Zoë Ångström",
                body="Ünïcödé text, 日本語の文章、 and العربية in one paragraph.\n\n- one\n- two\n",
            )
        ),
    }


def message(settings: Settings, issue: Issue, name: str = "Ana Souza") -> bytes:
    now = datetime.now(UTC).replace(microsecond=0)  # a fresh Date, as at send time
    prepared = prepare_issue_email(settings, issue, send_key=f"issue:{issue.slug}", date=now)
    rcpt = make_recipient(
        settings, b"test-secret-0123456789abcdef0123456789", f"issue:{issue.slug}", "ana@example.org", name
    )
    return prepared.personalise(rcpt)


# -- SpamAssassin ----------------------------------------------------------------------------------


def spam_score(raw: bytes) -> tuple[float, str]:
    out = subprocess.run(
        ["spamassassin", "-L", "-t"], input=raw, capture_output=True, timeout=120, check=False
    ).stdout.decode("utf-8", "replace")
    m = re.search(r"Content analysis details:\s+\((-?[\d.]+) points", out)
    assert m, out[-2000:]
    return float(m.group(1)), out[m.start() :]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "name"), [("rich", "Ana Souza"), ("folder", "Zoë «Ω» 👩🏽‍💻"), ("unicode", "مريم الحسيني")]
)
def test_spamassassin_score_is_low(mail_settings, kind, name):
    need("spamassassin", shutil.which("spamassassin") is not None)
    score, report = spam_score(message(mail_settings, issues()[kind], name))
    assert score <= 1.0, report


# -- Chromium --------------------------------------------------------------------------------------


def png(width: int, height: int) -> bytes:
    """A plain grey PNG of the given size (enough to test that images shrink to the column)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x99" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def open_email(browser, html: str, width: int):
    page = browser.new_page(viewport={"width": width, "height": 900})
    picture = png(1600, 400)

    def route(r):
        if r.request.url.endswith(".png"):
            r.fulfill(status=200, content_type="image/png", body=picture)
        else:
            r.abort()  # no network: an email must not need anything else to lay out

    page.route("**/*", route)
    page.set_content(html, wait_until="load")
    return page


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["rich", "folder", "wide", "unicode"])
def test_reflows_on_a_phone_and_caps_at_600_on_desktop(mail_settings, browser, kind):
    html = part_text(parse(message(mail_settings, issues()[kind])), "html")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    phone = open_email(browser, html, 375)
    phone.screenshot(path=str(ARTIFACTS / f"email-{kind}-375.png"), full_page=True)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    widths = phone.evaluate("Array.from(document.images, i => i.getBoundingClientRect().right)")
    assert all(right <= 375 for right in widths)
    if kind in ("rich", "wide"):
        assert widths  # the 1600 px pictures are there, shrunk to the column
    assert phone.evaluate("document.querySelector('.preheader').offsetHeight") == 0
    phone.close()

    desktop = open_email(browser, html, 800)
    desktop.screenshot(path=str(ARTIFACTS / f"email-{kind}-800.png"), full_page=True)
    box = desktop.evaluate(
        "(() => { const r = document.querySelector('table.container').getBoundingClientRect();"
        " return [r.left, r.width]; })()"
    )
    assert box[1] <= 600 and box[1] >= 560
    assert abs(box[0] - (800 - box[1]) / 2) <= 1  # centred
    assert desktop.evaluate("document.documentElement.scrollWidth") <= 800
    desktop.close()
