"""`publisher import` conversion: plain-text and HTML articles become valid Markdown issues."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

import pytest
import yaml

from publisher.content import first_paragraph, load_library
from publisher.errors import ContentError
from publisher.importer import (
    convert,
    drop_boilerplate,
    escape_markdown,
    from_html,
    from_text,
    issue_markdown,
    plan_imports,
)
from tests.fixtures_content import article

FIXTURES = Path(__file__).parent / "fixtures" / "content"
SEED = FIXTURES / "seed-article.txt"
SEED_HEADINGS = [
    "Joe Biden Is Seeking Rational Relations with Russia",
    "Joe Biden’s Previous Meetings with Putin Were not Very Pleasant",
    "US-Russia Relations Underwent a Boom-Bust Cycle",
    "Decade Full of Disputes in US-Russia Relations",
    "Biden Hopes for Mutual Cooperation through Personal Attempts",
    "Military Cooperation, an Area for Better Ties",
]
BOILERPLATE = ("Latest news", "Related news", "Please enter your comment!", "Please enter your name here")
NOW = datetime(2026, 5, 4, 10, 30)


def blocks(markdown: str) -> list[str]:
    return [b.strip() for b in markdown.split("\n\n") if b.strip()]


def normalise(text: str) -> str:
    return " ".join(text.split())


def test_seed_article_title_headings_paragraphs_and_no_boilerplate():
    source = SEED.read_text(encoding="utf-8")
    imported = convert(SEED.name, SEED.read_bytes())

    assert imported.title == "Will Joe Biden Boost Low Level US-Russia Relations?"
    parts = blocks(imported.body)
    headings = [b.removeprefix("## ") for b in parts if b.startswith("## ")]
    assert headings == SEED_HEADINGS

    # the source's paragraphs, found independently: every blank-line block that is not the
    # title, a heading or the page furniture after the last paragraph
    source_blocks = [normalise(b) for b in re.split(r"\n\s*\n", source) if b.strip()]
    assert source_blocks[0] == imported.title
    cut = source_blocks.index("Latest news")
    expected = [b for b in source_blocks[1:cut] if b not in SEED_HEADINGS]
    paragraphs = [normalise(first_paragraph(b)) for b in parts if not b.startswith("#")]
    assert len(paragraphs) == len(expected) == 14
    assert paragraphs == expected

    # headings come back in the order they appear in the source, between the right paragraphs
    order = [source_blocks.index(h) for h in SEED_HEADINGS]
    assert order == sorted(order)
    for needle in BOILERPLATE:
        assert needle not in imported.body
    assert first_paragraph(imported.body).startswith(imported.summary)
    assert imported.summary.startswith("The United States and Russia")


def test_seed_import_passes_load_library(make_settings, project):
    settings = make_settings()
    (plan,) = plan_imports(
        settings, [(SEED, SEED.read_bytes())], settings.paths.issues, now=NOW, tags=["US", "Russia"]
    )
    assert plan.path == settings.paths.issues / "will-joe-biden-boost-low-level-us-russia-relations.md"
    plan.path.write_text(plan.text, encoding="utf-8")
    (issue,) = load_library(settings).issues
    (art,) = issue.articles
    assert art.title == "Will Joe Biden Boost Low Level US-Russia Relations?"
    assert art.tags == ("us", "russia")
    assert (art.date.year, art.date.month, art.date.day) == (2026, 5, 4)
    assert art.summary.startswith("The United States and Russia")
    assert art.body.count("\n## ") + art.body.startswith("## ") == 6


def test_html_page_becomes_clean_markdown(make_settings):
    imported = from_html((FIXTURES / "page.html").read_text(encoding="utf-8"))
    assert imported.title == "Allotments Are Back in Fashion"
    body = imported.body
    assert [b for b in blocks(body) if b.startswith("#")] == ["## Who is on the list", "## What happens next"]
    assert body.startswith("Waiting lists for the town's **allotment plots** have tripled")
    assert "[council's report](https://courier.example.com/reports/allotments-2026)" in body
    assert "[national guide](https://www.example.org/guide)" in body
    assert "- retired residents looking for company;" in body
    assert "time\\_and\\_less" in body  # escaped, so it renders as written
    for furniture in (
        "Sport",
        "Weather",
        "Most read",
        "tracking",
        "font-family",
        "Advertisement",
        "Related news",
        "Bridge budget",
        "Share this",
        "comment",
        "Privacy",
        "All rights reserved",
        "By Jo Marsh",
        "Plots in spring",
    ):
        assert furniture not in body, furniture
    assert imported.summary == (
        "Waiting lists for the town's allotment plots have tripled in five years, and the council is "
        "looking for land to meet demand."
    )


def test_html_without_article_uses_largest_text_block_and_page_title():
    html = """<html><head><title>Bees in the City – Weekly Bugle</title></head><body>
    <div id="menu"><p>Home</p><p>About</p></div>
    <div id="story"><p>Urban beekeeping has grown steadily across the district this year.</p>
    <p>Keepers say <a href="relative/page">the hives</a> do best on flat roofs.</p></div>
    </body></html>"""
    imported = from_html(html)
    assert imported.title == "Bees in the City"
    assert imported.body == (
        "Urban beekeeping has grown steadily across the district this year.\n\n"
        "Keepers say the hives do best on flat roofs.\n"
    )


def test_html_without_any_title_is_refused():
    with pytest.raises(ValueError, match="no title"):
        from_html("<html><body><p>Text only.</p></body></html>")


def test_plain_text_rules():
    text = (
        "\ufeffA Title Line\n\n"
        "A paragraph that was hard\nwrapped over two lines.\n\n"
        "Short Heading\n\n"
        "1. Not a list, but a sentence with *stars* and [brackets].\n\n"
        "Ends with a colon:\n\n"
        "Closing paragraph.\n\n"
        "Sources\n\nhttps://example.org/a-very-long-source-link-that-goes-on-and-on-and-on\nReuters\n"
    )
    imported = from_text(text)
    assert imported.title == "A Title Line"
    parts = blocks(imported.body)
    assert parts[0] == "A paragraph that was hard wrapped over two lines."
    assert parts[1] == "## Short Heading"
    assert first_paragraph(parts[2]) == "1. Not a list, but a sentence with *stars* and [brackets]."
    assert parts[3] == "Ends with a colon:"  # end punctuation: a paragraph, not a heading
    assert parts[-1] == "Closing paragraph."
    assert "Sources" not in imported.body and "Reuters" not in imported.body


def test_trailing_debris_without_a_marker_is_kept():
    imported = from_text("Title\n\nA real paragraph here.\n\nPhoto: J. Smith\n")
    assert blocks(imported.body) == ["A real paragraph here.", "Photo: J. Smith"]


def test_drop_boilerplate_only_cuts_the_tail():
    kept = [["Latest news is that the bridge opened."], ["Body."]]
    assert drop_boilerplate(kept) == kept
    assert drop_boilerplate([["Body."], ["Related news"], ["A link"], ["Comments"]]) == [["Body."]]


@pytest.mark.parametrize(
    "text",
    [
        "1. one",
        "2) two",
        "# not a heading",
        "- not a bullet",
        "---",
        "~~~ fence",
        "a *b* _c_ `d` <e> [f](g)",
        "&amp;",
    ],
)
def test_escaped_text_renders_back_to_itself(text):
    assert first_paragraph(escape_markdown(text)) == text


def test_empty_text_is_refused():
    with pytest.raises(ValueError, match="empty"):
        from_text(" \n\n \n")


def test_issue_markdown_front_matter():
    imported = from_text("Title: with colon\n\nFirst para.\n")
    text = issue_markdown(imported, date(2026, 1, 2), ["a", "b"])
    front = text.split("---\n")[1]
    assert yaml.safe_load(front) == {
        "title": "Title: with colon",
        "date": date(2026, 1, 2),
        "tags": ["a", "b"],
        "summary": "First para.",
    }
    assert text.endswith("---\n\nFirst para.\n")


# -- planning: targets, overwrite rules, dates ----------------------------------------------------


def test_refuses_to_overwrite_unless_forced_and_is_idempotent(make_settings):
    settings = make_settings()
    out = settings.paths.issues
    source = [(SEED, SEED.read_bytes())]
    (plan,) = plan_imports(settings, source, out, now=NOW)
    plan.path.write_text(plan.text, encoding="utf-8")
    (again,) = plan_imports(settings, source, out, now=NOW)
    assert again.unchanged
    with pytest.raises(ContentError) as info:
        plan_imports(settings, source, out, now=NOW, date="2026-06-01")
    assert "exists and differs; pass --force" in info.value.lines()[0]
    (forced,) = plan_imports(settings, source, out, now=NOW, date="2026-06-01", force=True)
    assert not forced.unchanged and "date: 2026-06-01" in forced.text


def test_refuses_a_slug_taken_inside_a_folder_issue(make_settings, write_issue):
    write_issue("issues/week/index.md", "---\ntitle: Week\n---\n")
    write_issue("issues/week/a-title-line.md", article())
    settings = make_settings()
    with pytest.raises(ContentError) as info:
        plan_imports(
            settings,
            [(Path("x.txt"), b"A Title Line\n\nText.\n")],
            settings.paths.issues,
            now=NOW,
            force=True,
        )
    assert info.value.lines() == [
        "x.txt: slug 'a-title-line' is already used by issues/week/a-title-line.md; rename that file first"
    ]


def test_all_problems_reported_and_nothing_planned(make_settings):
    settings = make_settings()
    sources = [(Path("a.txt"), b""), (Path("b.txt"), b"Same\n\nx\n"), (Path("c.txt"), b"Same\n\ny\n")]
    with pytest.raises(ContentError) as info:
        plan_imports(settings, sources, settings.paths.issues, now=NOW, date="tomorrow", tags=["ok", "!!"])
    assert info.value.lines() == [
        "--date: not a date: 'tomorrow'",
        "--tag: '!!' is not a tag (use words, letters or digits)",
        "a.txt: the file is empty",
        "c.txt: has the same title (slug 'same') as b.txt",
    ]
    assert "YYYY-MM-DD" in info.value.hint


def test_datetime_option_is_kept_with_its_time(make_settings):
    settings = make_settings()
    (plan,) = plan_imports(
        settings,
        [(Path("a.txt"), b"Hello\n\nWorld.\n")],
        settings.paths.issues,
        now=NOW,
        date="2026-02-03T08:15",
    )
    plan.path.write_text(plan.text, encoding="utf-8")
    (art,) = load_library(settings).articles
    assert (art.date.month, art.date.day, art.date.hour, art.date.minute) == (2, 3, 8, 15)
    assert art.date.tzinfo is not None


def test_odd_html_inputs():
    with pytest.raises(ValueError, match="not an HTML page"):
        from_html("   ")
    xhtml = (
        '<?xml version="1.0" encoding="utf-8"?>\n<html><body><h1>X Title</h1><p>Para one.</p></body></html>'
    )
    imported = convert("page.xhtml", xhtml.encode())
    assert (imported.title, imported.body) == ("X Title", "Para one.\n")
    latin = "Caf\xe9 Notes\n\nA paragraph.\n".encode("cp1252")
    assert convert("notes.txt", latin).title == "Café Notes"
