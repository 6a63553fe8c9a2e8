"""`publisher import` conversion: plain-text and HTML articles become valid Markdown issues."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from publisher.cli import app
from publisher.content import first_paragraph, load_content, load_library
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


# -- Markdown: kept as it is, front matter completed ------------------------------------------------

MARKDOWN_BODY = (
    "# publisher\n\nAn *email* newsletter.\n\n## Usage\n\n\\## not a heading, 1. not a list\n\n"
    "```sh\n# a shell comment, not a title\n```\n"
)


def front_and_rest(text: str) -> tuple[dict, str]:
    """The front matter (parsed) and everything after its closing '---' line."""
    assert text.startswith("---\n")
    front, rest = text[4:].split("\n---\n", 1)
    return yaml.safe_load(front), rest


def test_markdown_without_front_matter_gets_one_and_keeps_its_body(make_settings):
    settings = make_settings()
    source = Path("docs/README.md")
    (plan,) = plan_imports(settings, [(source, MARKDOWN_BODY.encode())], settings.paths.issues, now=NOW)
    assert plan.path == settings.paths.issues / "readme.md"  # the slug comes from the file name
    meta, rest = front_and_rest(plan.text)
    assert meta == {"title": "publisher", "date": date(2026, 5, 4)}
    assert rest == MARKDOWN_BODY  # byte for byte: no '\\##', no title line turned into text
    plan.path.write_text(plan.text, encoding="utf-8")
    (art,) = load_library(settings).articles
    assert art.title == "publisher" and "## Usage" in art.body


def test_markdown_front_matter_is_kept_as_written_and_completed(make_settings):
    settings = make_settings()
    head = "---\ntitle: 'Kept: it''s mine'\n# the author's comment\nauthor: Ann Lee\n"
    rest = "---\n\n# Another heading\n\n" + MARKDOWN_BODY
    source = [(Path("post.markdown"), (head + rest).encode())]
    (plan,) = plan_imports(settings, source, settings.paths.issues, now=NOW, date="2026-02-03", tags=["Go"])
    assert plan.text == head + "date: 2026-02-03\ntags:\n- go\n" + rest
    assert plan.path.name == "post.md" and plan.title == "Kept: it's mine"

    dated = "---\ndate: 2025-12-24\n---\n" + MARKDOWN_BODY  # its own date wins over --date
    (plan,) = plan_imports(
        settings, [(Path("x.md"), dated.encode())], settings.paths.issues, now=NOW, date="2026-02-03"
    )
    assert plan.text == "---\ndate: 2025-12-24\ntitle: publisher\n---\n" + MARKDOWN_BODY


def test_markdown_with_crlf_and_flow_front_matter_stays_valid(make_settings):
    settings = make_settings()
    crlf = "---\r\ntitle: Windows\r\n---\r\nLine one.\r\n"
    flow = "---\n{title: Flow, author: Bo}\n---\nBody.\n"
    sources = [(Path("crlf.md"), crlf.encode()), (Path("flow.md"), flow.encode())]
    plans = plan_imports(settings, sources, settings.paths.issues, now=NOW)
    assert plans[0].text == "---\r\ntitle: Windows\r\ndate: 2026-05-04\r\n---\r\nLine one.\r\n"
    assert front_and_rest(plans[1].text) == (
        {"title": "Flow", "author": "Bo", "date": date(2026, 5, 4)},
        "Body.\n",
    )
    for plan in plans:
        plan.path.write_text(plan.text, encoding="utf-8", newline="")
    assert sorted(a.title for a in load_library(settings).articles) == ["Flow", "Windows"]


def test_markdown_is_recognised_by_its_content():
    assert convert("notes.txt", b"# Notes\n\nSome text.\n").title == "Notes"
    assert convert("notes", b"---\ntitle: T\n---\nx\n").title == "T"
    assert convert("plain.txt", b"Plain Title\n\n# just one stray line\n\nText.\n").title == "Plain Title"


def test_markdown_problems_are_reported_with_their_line(make_settings):
    settings = make_settings()
    sources = [
        (Path("bad.md"), b"---\ntitle: a\ndate: [\n---\nx\n"),
        (Path("none.md"), b"No heading here.\n"),
    ]
    with pytest.raises(ContentError) as info:
        plan_imports(settings, sources, settings.paths.issues, now=NOW)
    lines = info.value.lines()
    assert lines[0].startswith("bad.md:") and "not valid YAML" in lines[0]
    assert lines[1].startswith("none.md: no title")


# -- HTML: hero image, author and date ----------------------------------------------------------------


def page(head: str = "", article: str = "", title: str = "Plots for All") -> str:
    return (
        f"<html><head><title>{title} | Courier</title>{head}</head><body>"
        f"<header><a rel='author' href='/jo'>By Link Author</a></header><article><h1>{title}</h1>"
        f"{article}<p>Waiting lists for allotment plots have tripled in five years.</p>"
        "</article></body></html>"
    )


def json_ld(data: object) -> str:
    return f'<script type="application/ld+json">{json.dumps(data)}</script>'


ALL_SOURCES = (
    '<meta property="og:image" content="https://cdn.example.com/hero.jpg">'
    '<meta property="og:image:alt" content="A plot in May">'
    '<meta name="author" content="Meta Author">'
    '<meta property="article:published_time" content="2026-04-02T08:00:00Z">'
    + json_ld(
        {
            "@type": "NewsArticle",
            "author": [{"@type": "Person", "name": "Ann Lee"}, {"name": "Bo Chan"}],
            "datePublished": "2026-04-01T09:30:00+02:00",
        }
    )
)


def test_html_page_metadata_precedence():
    """JSON-LD beats <meta> beats the byline link; og:image beats the first figure."""
    figure = '<figure><img src="https://example.com/figure.png" alt="A chart"></figure>'
    time = '<time datetime="2026-03-31">yesterday</time>'
    imported = from_html(page(ALL_SOURCES, figure + time))
    assert imported.author == "Ann Lee, Bo Chan"
    assert imported.published == datetime(2026, 4, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    assert (imported.image, imported.image_alt) == ("https://cdn.example.com/hero.jpg", "A plot in May")

    no_json_ld = ALL_SOURCES.split("<script")[0]
    imported = from_html(page(no_json_ld, figure + time))
    assert imported.author == "Meta Author"
    assert imported.published == datetime(2026, 4, 2, 8, 0, tzinfo=UTC)

    imported = from_html(page("", figure + time))
    assert imported.author == "Link Author"
    assert imported.published == date(2026, 3, 31)
    assert (imported.image, imported.image_alt) == ("https://example.com/figure.png", "A chart")


def test_json_ld_graph_with_author_reference_and_broken_scripts_are_skipped():
    graph = {
        "@context": "https://schema.org",
        "@graph": [
            {"@type": "WebPage", "@id": "#page", "datePublished": "2020-01-01"},
            {"@type": "BlogPosting", "author": {"@id": "#jo"}, "datePublished": "2026-04-05"},
            {"@type": "Person", "@id": "#jo", "name": "Jo Marsh"},
        ],
    }
    broken = (
        '<script type="application/ld+json">{"author": {"name": "Broken",</script>'
        '<script type="application/ld+json">' + "[" * 50_000 + "]" * 50_000 + "</script>"
        '<script type="application/ld+json">{"@type": "Article", "author": "' + "x" * 300_000 + '"}</script>'
    )
    imported = from_html(page(broken + json_ld(graph)))
    assert (imported.author, imported.published) == ("Jo Marsh", date(2026, 4, 5))


def test_html_import_writes_metadata_and_keeps_the_zone(make_settings):
    settings = make_settings()
    source = [(Path("page.html"), page(ALL_SOURCES).encode())]
    (plan,) = plan_imports(settings, source, settings.paths.issues, now=NOW)
    meta, _ = front_and_rest(plan.text)
    assert meta["author"] == "Ann Lee, Bo Chan"
    assert (meta["image"], meta["image_alt"]) == ("https://cdn.example.com/hero.jpg", "A plot in May")
    assert "\ndate: 2026-04-01 09:30:00+02:00\n" in plan.text  # the page's date, not today
    assert plan.media == ()  # a remote image is kept as a URL, never downloaded
    plan.path.write_text(plan.text, encoding="utf-8")
    (art,) = load_library(settings).articles
    assert art.date.utcoffset() == timedelta(hours=2) and art.image == "https://cdn.example.com/hero.jpg"

    (plan,) = plan_imports(settings, source, settings.paths.issues, now=NOW, date="2026-06-01", force=True)
    assert "\ndate: 2026-06-01\n" in plan.text  # --date corrects the page


def test_local_figure_image_is_copied_next_to_the_issue(make_settings, project, tmp_path):
    make_settings()  # sets the secret key the CLI needs
    folder = tmp_path / "saved"
    (folder / "page_files").mkdir(parents=True)
    (folder / "page_files" / "plot photo.JPG").write_bytes(b"\xff\xd8\xff jpeg bytes")
    (tmp_path / "secret.png").write_bytes(b"not yours")
    outside = '<meta property="og:image" content="../secret.png">'  # outside the page's folder: ignored
    html = page(outside, '<figure><img src="page_files/plot%20photo.JPG" alt="Plot, May"></figure>')
    (folder / "page.html").write_text(html, encoding="utf-8")
    config = str(project / "config.yaml")

    result = CliRunner().invoke(app, ["import", str(folder / "page.html"), "-c", config])
    assert result.exit_code == 0, result.output
    issue = project / "issues" / "plots-for-all.md"
    meta, _ = front_and_rest(issue.read_text(encoding="utf-8"))
    assert (meta["image"], meta["image_alt"]) == ("media/plots-for-all.jpg", "Plot, May")
    assert (project / "issues" / "media" / "plots-for-all.jpg").read_bytes() == b"\xff\xd8\xff jpeg bytes"
    assert CliRunner().invoke(app, ["check", "-c", config]).exit_code == 0
    again = CliRunner().invoke(app, ["import", str(folder / "page.html"), "-c", config])
    assert "unchanged" in again.stdout


# -- hostile values ---------------------------------------------------------------------------------


def test_hostile_page_values_give_valid_front_matter_that_check_accepts(make_settings, project):
    settings = make_settings()  # also sets the secret key the CLI needs
    config = str(project / "config.yaml")
    long_title = "Long " * 2048  # 10 KB
    hostile = [
        (
            "crlf.html",
            page('<meta name="author" content="Eve\r\nBcc: all@example.com">', title="CRLF author"),
        ),
        ("long.html", page(title=long_title)),
        (
            "quotes.html",
            page(
                json_ld({"@type": "Article", "author": "O'Brien: \u0000\u202eNUL"}),
                title="It's: a 'test' [/b]",
            ),
        ),
        ("nul.txt", "Title\u0000 with NUL: 'quoted'\n\nBody text.\n"),
    ]
    paths = []
    for name, text in hostile:
        (project / name).write_text(text, encoding="utf-8")
        paths.append(str(project / name))
    result = CliRunner().invoke(app, ["import", *paths, "-c", config])
    assert result.exit_code == 0, result.output
    checked = CliRunner().invoke(app, ["check", "-c", config])
    assert checked.exit_code == 0, checked.output
    arts = {a.source.name: a for a in load_content(settings).library.articles}
    assert arts["crlf-author.md"].author == "Eve Bcc: all@example.com"
    (long,) = [a for n, a in arts.items() if n.startswith("long-long")]
    assert len(long.title) <= 200 and long.title.endswith("…")
    assert arts["it-s-a-test-b.md"].title == "It's: a 'test' [/b]"
    assert arts["it-s-a-test-b.md"].author == "O'Brien: NUL"
    assert arts["title-with-nul-quoted.md"].title == "Title with NUL: 'quoted'"
