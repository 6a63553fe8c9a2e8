"""Archive pages rendered from hand-made articles: escaping, headings, feeds, relative links."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import html5lib
import pytest

from publisher.config import Settings
from publisher.models import Article
from publisher.render.pages import archive_page, article_page, demote_headings, tag_page
from tests.fixtures_browser import ARTIFACTS

PARSER = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)


def art(slug: str, title: str, **kw: object) -> Article:
    return Article(
        slug=slug,
        title=title,
        date=datetime(2026, 1, 2, tzinfo=UTC),
        body="x",
        source=Path(f"{slug}.md"),
        issue_slug=slug,
        summary=f"About {title}",
        **kw,
    )


def test_headings_follow_the_title_in_order() -> None:
    assert demote_headings("<h1>A</h1><h3>B</h3><h1>C</h1>") == "<h2>A</h2><h3>B</h3><h2>C</h2>"
    assert demote_headings("<p>none</p>") == "<p>none</p>"


def test_article_page_escapes_titles_and_uses_relative_links(make_settings: Callable[..., Settings]) -> None:
    s = make_settings()
    a = art("evil", "<b>Bold</b> & co", tags=("x",), image="https://cdn.example.com/p.jpg", image_alt="A <p>")
    other = art("kind", "<i>Kind</i>")
    page = article_page(s, a, "<h1>Inner</h1><p>text</p>", [other], [other]).decode()
    doc = PARSER.parse(page)
    assert [h.text for h in doc.iter("h1")] == ["<b>Bold</b> & co"]
    assert "<b>Bold</b>" not in page and "&lt;i&gt;Kind&lt;/i&gt;" in page
    assert any(h.text == "Inner" for h in doc.iter("h2"))
    assert any(a.get("href") == "../tags/x/" for a in doc.iter("a"))
    img = next(doc.iter("img"))
    assert img.get("src") == "https://cdn.example.com/p.jpg" and img.get("alt") == "A <p>"
    assert {m.tag for m in doc.iter() if m.tag in ("header", "nav", "main", "footer")} == {
        "header",
        "nav",
        "main",
        "footer",
    }


def test_tag_page_advertises_tag_and_site_feeds(make_settings: Callable[..., Settings]) -> None:
    s = make_settings()
    doc = PARSER.parse(tag_page(s, "cities", [art("a", "A"), art("b", "B")]))
    hrefs = [ln.get("href") for ln in doc.iter("link") if ln.get("rel") == "alternate"]
    assert "https://news.example.org/tags/cities/feed.xml" in hrefs
    assert "https://news.example.org/feed.xml" in hrefs
    assert "../../a/" in [a.get("href") for a in doc.iter("a")]


def test_archive_lists_newest_first_with_summaries(make_settings: Callable[..., Settings]) -> None:
    s = make_settings()
    doc = PARSER.parse(archive_page(s, [art("new", "New"), art("old", "Old")]))
    items = [li for li in doc.iter("li") if li.get("class") == "entry"]
    assert [li.find(".//a").get("href") for li in items] == ["new/", "old/"]
    assert [li.find(".//p[@class='summary']").text for li in items] == ["About New", "About Old"]
    assert doc.find(".//meta[@name='viewport']") is not None


# -- Chromium at 375 px ------------------------------------------------------------------------

WIDE = (
    "A table wider than any phone:\n\n| "
    + " | ".join(f"Column{n}HeadingWithoutSpaces" for n in range(9))
    + " |\n|"
    + "---|" * 9
    + "\n| "
    + " | ".join("https://example.org/a/very/long/path/" + "y" * 30 for _ in range(9))
    + " |\n\nA long link: https://example.org/"
    + "segment-without-any-break-" * 8
    + " and a [linked one](https://example.org/"
    + "x" * 120
    + ").\n\n```\nx = ["
    + ", ".join(str(n) for n in range(80))
    + "]\n```\n"
)


@pytest.mark.slow
def test_archive_and_article_fit_a_375px_phone(
    project: Path, make_settings: Callable[..., Settings], browser
) -> None:
    from publisher.build import build

    issues = project / "issues"
    long_title = "Supercalifragilisticexpialidocious" * 3
    for n in range(110):  # enough for a second archive page
        body = WIDE if n == 7 else f"Story {n} about the harbour, the trams and the river."
        title = long_title if n == 7 else f"Story {n}"
        (issues / f"story-{n:02d}.md").write_text(
            f"---\ntitle: {title}\ndate: 2026-01-{1 + n % 28:02d}T{n % 24:02d}:00:00+00:00\n"
            f"tags: [harbour]\n---\n\n{body}\n",
            encoding="utf-8",
        )
    settings = make_settings(paths={"state": str(project / ".state")})
    build(settings, emails=False)
    out = settings.paths.output
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 375, "height": 800})
    page.route("http*://**/*", lambda r: r.abort())  # the site must lay out offline
    for name, path in [
        ("archive", "index.html"),
        ("archive-page-1", "page/1/index.html"),
        ("article-wide", "story-07/index.html"),
        ("tag", "tags/harbour/index.html"),
    ]:
        page.goto((out / path).as_uri())
        assert page.evaluate("getComputedStyle(document.body).marginTop") == "0px", path  # css loaded
        page.screenshot(path=str(ARTIFACTS / f"page-{name}-375.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, path
        if name == "article-wide":  # the table scrolls in its own box, not the page
            box = page.evaluate(
                "(() => { const t = document.querySelector('.body table');"
                " return [t.getBoundingClientRect().right, t.scrollWidth]; })()"
            )
            assert box[0] <= 375 and box[1] > 375
