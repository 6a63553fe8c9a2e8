"""Content loading: the sample issues, every kind of problem with its file:line, and the rules."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.content import (
    clean_line,
    known_slugs,
    load_content,
    load_issue,
    load_library,
    slugify,
    summarize,
    truncate,
)
from publisher.errors import ContentError, NotFoundError
from tests.fixtures_content import article

ROOT = Path(__file__).resolve().parent.parent


def problems_of(settings) -> list[str]:
    with pytest.raises(ContentError) as info:
        load_library(settings)
    return info.value.lines()


# -- the repository's own samples ------------------------------------------------------------


def test_samples_load_with_folder_issue_draft_and_image(sample_settings):
    result = load_content(sample_settings)
    lib = result.library
    assert len(lib.issues) == 9
    assert len(lib.published_issues) == 8
    assert len(lib.articles) == 10
    assert result.draft_count == 1
    assert [i.slug for i in lib.issues if i.draft] == ["notes-on-night-buses"]
    assert "notes-on-night-buses" not in {a.slug for a in lib.articles}

    water = lib.issue("summer-of-water")
    assert water is not None and water.is_folder
    assert [a.slug for a in water.articles] == ["rain-gardens", "the-old-well-map", "testing-the-river"]
    assert water.date == max(a.date for a in water.articles)
    assert water.subject == "The Example Gazette: a summer of water"
    assert water.intro.startswith("This issue is about water")
    assert water.source == sample_settings.paths.issues / "summer-of-water" / "index.md"
    assert all(a.issue_slug == "summer-of-water" for a in water.articles)

    benches = lib.issue("measuring-a-city-by-its-benches").articles[0]
    png = sample_settings.paths.issues / "media" / "bench-count.png"
    assert benches.image == "media/measuring-a-city-by-its-benches/bench-count.png"
    assert benches.image_file == png.resolve()
    assert benches.image_type == "image/png"
    assert benches.image_length == png.stat().st_size > 0
    assert benches.image_alt.startswith("Bar chart")

    cafe = lib.issue("cafe-culture-and-the-third-place")
    assert cafe.title == "Café Culture and the Third Place"
    assert all(a.date.tzinfo is not None for a in lib.articles)


def test_samples_are_stable_between_loads(sample_settings):
    assert load_library(sample_settings) == load_library(sample_settings)


# -- fields ----------------------------------------------------------------------------------


def test_article_fields_ids_and_hash(make_settings, write_issue):
    path = write_issue(
        "issues/first-light.md",
        article(
            "First light",
            "2026-03-01T09:30:00",
            extra="author: Ada\ntags: [Cities, cities, Citizen Science, Café, 42]\norder: 3",
            body="# Heading\n\nThe *first* paragraph, with a [link](https://example.org).\n\nSecond one.",
        ),
    )
    settings = make_settings()
    lib = load_library(settings)
    (a,) = lib.articles
    assert a.slug == "first-light"
    assert a.issue_slug == "first-light"
    assert a.id == "tag:news.example.org,2026-03-01:/first-light"
    assert a.tags == ("cities", "citizen-science", "cafe", "42")
    assert a.author == "Ada"
    assert a.order == 3
    assert a.summary == "The first paragraph, with a link."
    assert a.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert a.source == path
    lines = path.read_text().split("\n")
    assert lines[a.body_line - 1] == "# Heading"
    assert a.body.startswith("# Heading\n")
    issue = lib.issue("first-light")
    assert issue.subject == "First light" and not issue.is_folder and issue.articles == (a,)


def test_issue_fields_on_single_file(make_settings, write_issue):
    write_issue(
        "issues/news.md",
        article(
            "News",
            extra='subject: "Big\\nnews"\nsend_at: 2026-04-01T07:00\npreheader: Read on',
        ),
    )
    issue = load_library(make_settings()).issue("news")
    assert issue.subject == "Big news"
    assert issue.preheader == "Read on"
    assert issue.send_at == datetime(2026, 4, 1, 7, 0, tzinfo=make_settings().site.tz)
    assert issue.send_at.utcoffset() == timedelta(hours=1)  # London summer time


def test_naive_dates_are_in_the_site_time_zone(make_settings, write_issue):
    write_issue("issues/a.md", article("A", "2026-01-15"))
    write_issue("issues/b.md", article("B", "2026-07-15 18:00"))
    write_issue("issues/c.md", article("C", "2026-07-15T18:00:00+02:00"))
    write_issue("issues/d.md", article("D", "2026-07-15T18:00:00Z"))
    settings = make_settings(site={"timezone": "America/New_York"})
    lib = load_library(settings)
    by = {a.slug: a.date for a in lib.articles}
    assert by["a"].utcoffset() == timedelta(hours=-5)
    assert (by["a"].hour, by["a"].minute) == (0, 0)
    assert by["b"].utcoffset() == timedelta(hours=-4)
    assert by["b"].hour == 18
    assert by["c"].utcoffset() == timedelta(hours=2)
    assert by["d"].utcoffset() == timedelta(0)
    # the id uses the date as written, not a UTC conversion
    assert next(a for a in lib.articles if a.slug == "b").id.endswith(",2026-07-15:/b")


def test_summary_given_or_first_paragraph(make_settings, write_issue):
    long = " ".join(f"Word{i} is here" for i in range(120))
    write_issue("issues/given.md", article("G", extra="summary: Given text.", body="Body para."))
    write_issue("issues/long.md", article("L", body=long))
    write_issue("issues/quote.md", article("Q", body="> A quote first.\n\nThen the **real** one."))
    lib = load_library(make_settings())
    by = {a.slug: a.summary for a in lib.articles}
    assert by["given"] == "Given text."
    assert by["quote"] == "Then the real one."
    assert len(by["long"]) <= 240 and by["long"].endswith("…")
    assert long.startswith(by["long"][:-1])


def test_summary_helpers():
    first = "The first sentence is long enough to stand as a summary on its own, past a third of the limit."
    assert truncate(first + " " + "x " * 200) == first
    assert truncate("Too short. " + "word " * 100).endswith("word…")
    assert truncate("short") == "short"
    # top-level paragraphs win over list items; images and footnote marks carry no prose
    md = "## Title\n\n- list item\n\nA `code` and ![img](x.png) para[^1].\n\n[^1]: note"
    assert summarize(md) == "A code and para."
    assert summarize("- only a list\n- of items") == "only a list"
    assert summarize("") == ""


def test_titles_lose_control_characters_but_keep_non_ascii(make_settings, write_issue):
    write_issue("issues/t.md", article('"Crème\\r\\nbrûlée\\u2028\\x07 — 東京\\t!"'))
    (a,) = load_library(make_settings()).articles
    assert a.title == "Crème brûlée — 東京 !"


def test_clean_line_and_slugify():
    assert clean_line("  a\r\nb\x85c\u2029d\x00e  ") == "a b c d e"
    assert slugify("Café Culture & the 3rd Place!") == "cafe-culture-the-3rd-place"
    assert slugify("---") == ""
    assert len(slugify("word " * 40)) <= 80


def test_remote_image(make_settings, write_issue):
    write_issue(
        "issues/r.md", article(extra="image: https://cdn.example.org/p/photo.JPG?x=1\nimage_alt: A photo")
    )
    (a,) = load_library(make_settings()).articles
    assert a.image == "https://cdn.example.org/p/photo.JPG?x=1"
    assert a.image_type == "image/jpeg"
    assert a.image_length == 0 and a.image_file is None


def test_local_image_inside_folder_issue(make_settings, write_issue):
    png = (ROOT / "issues" / "media" / "bench-count.png").read_bytes()
    write_issue("issues/week/index.md", "---\ntitle: Week\n---\n")
    write_issue("issues/week/pic.png", png)
    write_issue("issues/week/one.md", article(extra="image: pic.png"))
    (a,) = load_library(make_settings()).articles
    assert a.image == "media/week/pic.png"
    assert a.image_length == len(png)


# -- folder issues and drafts ----------------------------------------------------------------------


def test_folder_issue_order_date_and_draft_articles(make_settings, write_issue):
    write_issue(
        "issues/week-1/index.md", "---\ntitle: Week one\npreheader: Three things\n---\n\nHello *all*.\n"
    )
    write_issue("issues/week-1/b.md", article("B", "2026-02-02", extra="order: 1"))
    write_issue("issues/week-1/a.md", article("A", "2026-02-01", extra="order: 1"))
    write_issue("issues/week-1/z.md", article("Z", "2026-02-03", extra="order: -1"))
    write_issue("issues/week-1/late.md", article("Late", "2026-03-09", extra="draft: true"))
    write_issue("issues/week-1/_notes.md", "not an article at all")
    result = load_content(make_settings())
    issue = result.library.issue("week-1")
    assert [a.slug for a in issue.articles] == ["z", "a", "b"]
    assert issue.date == issue.articles[0].date  # newest published article, drafts ignored
    assert issue.intro == "Hello *all*.\n"
    assert issue.preheader == "Three things"
    assert [a.slug for a in result.draft_articles] == ["late"]
    assert result.draft_count == 1
    assert "late" not in {a.slug for a in result.library.articles}


def test_folder_issue_date_given_and_draft_issue(make_settings, write_issue):
    write_issue("issues/special/index.md", "---\ntitle: Special\ndate: 2026-05-05\ndraft: true\n---\n")
    write_issue("issues/special/one.md", article("One", "2026-05-01"))
    lib = load_library(make_settings())
    issue = lib.issue("special")
    assert issue.draft and issue.date.day == 5
    assert lib.published_issues == () and lib.articles == ()


def test_hidden_files_and_media_folders_are_ignored(make_settings, write_issue):
    write_issue("issues/ok.md", article())
    write_issue("issues/_wip.md", "garbage")
    write_issue("issues/.ok.md.swp", "garbage")
    write_issue("issues/_old/x.md", "garbage")
    write_issue("issues/media/p.png", b"\x89PNG")
    write_issue("issues/notes.txt", "ignored")
    lib = load_library(make_settings())
    assert [i.slug for i in lib.issues] == ["ok"]


def test_issues_sorted_newest_first(make_settings, write_issue):
    write_issue("issues/old.md", article(date="2026-01-01"))
    write_issue("issues/new.md", article(date="2026-06-01"))
    write_issue("issues/mid.md", article(date="2026-03-01"))
    assert [i.slug for i in load_library(make_settings()).issues] == ["new", "mid", "old"]


# -- problems, with file and line --------------------------------------------------------------------

CASES = {
    "no-front-matter": (
        "Just text\n",
        "issues/x.md:1: no front matter: start the file with a '---' line, then title: and date:",
    ),
    "unclosed": ("---\ntitle: A\ndate: 2026-01-01\n", "issues/x.md:1: front matter is not closed"),
    "yaml-syntax": (
        "---\ntitle: Fine\nauthor: a: b\ndate: 2026-01-01\n---\n",
        "issues/x.md:3: front matter is not valid YAML: mapping values are not allowed",
    ),
    "not-a-mapping": ("---\n- a\n- b\n---\n", "issues/x.md:2: front matter must be 'key: value' lines"),
    "missing-title": ("---\ndate: 2026-01-01\n---\n", "issues/x.md:1: title: missing"),
    "empty-title": ('---\ntitle: "\\n"\ndate: 2026-01-01\n---\n', "issues/x.md:2: title: is empty"),
    "title-list": (
        "---\ntitle: [a]\ndate: 2026-01-01\n---\n",
        "issues/x.md:2: title: expected text, got a list",
    ),
    "missing-date": ("---\ntitle: A\n---\n", "issues/x.md:1: date: missing"),
    "bad-date": ("---\ntitle: A\ndate: 2021-13-01\n---\n", "issues/x.md:3: date: not a date: '2021-13-01'"),
    "date-number": ("---\ntitle: A\ndate: 2021\n---\n", "issues/x.md:3: date: not a date: 2021"),
    "tags-not-list": (
        "---\ntitle: A\ndate: 2026-01-01\ntags: cities\n---\n",
        "issues/x.md:4: tags: expected a list such as [cities, science], got 'cities'",
    ),
    "tag-item": (
        "---\ntitle: A\ndate: 2026-01-01\ntags:\n  - ok\n  - '!!!'\n---\n",
        "issues/x.md:6: tags: item 2 ('!!!') is not a tag",
    ),
    "draft-not-bool": (
        "---\ntitle: A\ndate: 2026-01-01\ndraft: maybe\n---\n",
        "issues/x.md:4: draft: expected true or false, got 'maybe'",
    ),
    "order-not-int": (
        "---\ntitle: A\ndate: 2026-01-01\norder: first\n---\n",
        "issues/x.md:4: order: expected a whole number, got 'first'",
    ),
    "unknown-key": (
        "---\ntitle: A\ndate: 2026-01-01\ntgas: [a]\n---\n",
        "issues/x.md:4: tgas: unknown key (did you mean 'tags'?)",
    ),
    "unknown-key-no-guess": (
        "---\ntitle: A\ndate: 2026-01-01\ncolour: red\n---\n",
        "issues/x.md:4: colour: unknown key",
    ),
    "duplicate-key": (
        "---\ntitle: A\ndate: 2026-01-01\ntitle: B\n---\n",
        "issues/x.md:4: title: given twice (also on line 2); keep one",
    ),
    "missing-image": (
        "---\ntitle: A\ndate: 2026-01-01\nimage: media/nope.png\n---\n",
        "issues/x.md:4: image: file not found: 'media/nope.png' (looked for issues/media/nope.png)",
    ),
    "image-outside": (
        "---\ntitle: A\ndate: 2026-01-01\nimage: ../config.yaml\n---\n",
        "issues/x.md:4: image: '../config.yaml' is outside issues/",
    ),
    "image-absolute": (
        "---\ntitle: A\ndate: 2026-01-01\nimage: /etc/passwd\n---\n",
        "issues/x.md:4: image: use a path relative to the article",
    ),
    "image-scheme": (
        "---\ntitle: A\ndate: 2026-01-01\nimage: ftp://x.org/a.png\n---\n",
        "issues/x.md:4: image: expected an http(s) URL or a path next to the article",
    ),
    "send-at-no-time": (
        "---\ntitle: A\ndate: 2026-01-01\nsend_at: 2026-02-01\n---\n",
        "issues/x.md:4: send_at: needs a time as well as a date: '2026-02-01'",
    ),
    "huge-integer": (  # PyYAML hands Python's int() 10,240 digits: a ValueError, not a YAMLError
        "---\ntitle: A\ndate: 2026-01-01\norder: " + "9" * 10_240 + "\n---\n",
        "issues/x.md:4: front matter has a value YAML cannot read: Exceeds the limit",
    ),
    "not-utf8": (b"---\ntitle: caf\xe9\ndate: 2026-01-01\n---\n", "issues/x.md:2: not valid UTF-8 text"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_problem_names_file_and_line(name, make_settings, write_issue):
    text, expected = CASES[name]
    write_issue("issues/x.md", text)
    lines = problems_of(make_settings())
    assert len(lines) == 1, lines
    assert lines[0].startswith(expected), lines


def test_not_an_image_file(make_settings, write_issue):
    write_issue("issues/notes.txt", "text")
    write_issue("issues/x.md", article(extra="image: notes.txt"))
    assert problems_of(make_settings()) == [
        "issues/x.md:4: image: 'notes.txt' is not an image file (use .png, .jpg, .gif, .webp or .svg)"
    ]


def test_every_problem_in_every_file_is_reported_at_once(make_settings, write_issue):
    write_issue("issues/a.md", "---\ntitle: A\ndate: 2021-13-01\ndraft: yes please\n---\n")
    write_issue("issues/b.md", "---\ndate: 2026-01-01\ntags: x\n---\n")
    write_issue("issues/Bad Name.md", article())
    write_issue("issues/c.md", "no front matter")
    lines = problems_of(make_settings())
    assert lines == [
        "issues/Bad Name.md: file name 'Bad Name' is not a URL-safe slug (lowercase letters, digits and "
        "hyphens); rename it to 'bad-name.md'",
        "issues/a.md:3: date: not a date: '2021-13-01'",
        "issues/a.md:4: draft: expected true or false, got 'yes please'",
        "issues/b.md:1: title: missing; add a line like 'title: A short headline'",
        "issues/b.md:3: tags: expected a list such as [cities, science], got 'x'",
        "issues/c.md:1: no front matter: start the file with a '---' line, then title: and date:",
    ]


def test_error_hint_and_message(make_settings, write_issue):
    write_issue("issues/a.md", "---\ntitle: A\ndate: soon\n---\n")
    with pytest.raises(ContentError) as info:
        load_library(make_settings())
    assert "YYYY-MM-DD" in info.value.hint
    assert info.value.message == "1 problem(s) in the content"


def test_duplicate_slug_names_both_files(make_settings, write_issue):
    write_issue("issues/rain.md", article())
    write_issue("issues/week/index.md", "---\ntitle: Week\n---\n")
    write_issue("issues/week/rain.md", article())
    assert problems_of(make_settings()) == [
        "issues/week/rain.md: slug 'rain' is also used by issues/rain.md; slugs must be unique across the "
        "site, so rename one of them"
    ]


def test_folder_and_file_with_same_slug(make_settings, write_issue):
    write_issue("issues/week.md", article())
    write_issue("issues/week/index.md", "---\ntitle: Week\n---\n")
    write_issue("issues/week/one.md", article())
    lines = problems_of(make_settings())
    assert lines == [
        "issues/week.md: slug 'week' is also used by issues/week; slugs must be unique across the site, "
        "so rename one of them"
    ]


def test_reserved_and_unsafe_slugs(make_settings, write_issue):
    write_issue("issues/tags.md", article())
    write_issue("issues/Week_2/index.md", "---\ntitle: W\n---\n")
    write_issue("issues/Week_2/one.md", article())
    assert problems_of(make_settings()) == [
        "issues/Week_2: folder name 'Week_2' is not a URL-safe slug (lowercase letters, digits and "
        "hyphens); rename it to 'week-2'",
        "issues/tags.md: slug 'tags' is reserved for the site's own pages; rename the file",
    ]


def test_folder_problems(make_settings, write_issue):
    write_issue("issues/loose/one.md", article())
    write_issue("issues/empty/index.md", "---\ntitle: Empty\n---\n")
    write_issue("issues/deep/index.md", "---\ntitle: Deep\ntags: [x]\n---\n")
    write_issue("issues/deep/deep-one.md", article(extra="subject: Hi"))
    write_issue("issues/deep/more/deep-two.md", article())
    write_issue("issues/alldraft/index.md", "---\ntitle: All draft\n---\n")
    write_issue("issues/alldraft/one.md", article(extra="draft: true"))
    assert problems_of(make_settings()) == [
        "issues/alldraft/index.md:1: every article in this issue is a draft: publish one, or mark the "
        "issue draft: true",
        "issues/deep/deep-one.md:4: subject: belongs in the issue's index.md, not in an article",
        "issues/deep/index.md:3: tags: belongs in each article, not in index.md",
        "issues/deep/more: folders inside an issue are not read: move its .md files up into deep/",
        "issues/empty/index.md:1: a folder issue needs at least one article: add a .md file beside index.md",
        "issues/loose: folder has .md files but no index.md: add an index.md with the issue's title, or "
        "start the folder name with '_' to keep it out",
    ]


def test_missing_issues_folder(make_settings, project):
    (project / "issues").rmdir()
    assert problems_of(make_settings()) == ["issues: no such folder"]


# -- one issue -----------------------------------------------------------------------------------


def test_load_issue_ignores_problems_elsewhere(make_settings, write_issue):
    write_issue("issues/good.md", article("Good"))
    write_issue("issues/broken.md", "---\ntitle: Broken\ndate: never\n---\n")
    settings = make_settings()
    assert load_issue(settings, "good").title == "Good"
    with pytest.raises(ContentError) as info:
        load_issue(settings, "broken")
    assert info.value.lines() == ["issues/broken.md:3: date: not a date: 'never'"]
    with pytest.raises(NotFoundError) as missing:
        load_issue(settings, "nope")
    assert "good" in missing.value.hint


def test_load_issue_reports_its_slug_clash(make_settings, write_issue):
    write_issue("issues/rain.md", article())
    write_issue("issues/week/index.md", "---\ntitle: Week\n---\n")
    write_issue("issues/week/rain.md", article())
    with pytest.raises(ContentError):
        load_issue(make_settings(), "rain")


def test_known_slugs(make_settings, write_issue):
    write_issue("issues/a.md", article())
    write_issue("issues/w/index.md", "---\ntitle: W\n---\n")
    write_issue("issues/w/b.md", article())
    assert known_slugs(make_settings()) == {"a": "issues/a.md", "w": "issues/w", "b": "issues/w/b.md"}


# -- property: nothing from a title can break a header later ------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=st.text(min_size=1, max_size=60))
def test_titles_never_carry_line_breaks(title, make_settings, write_issue):
    front = yaml.safe_dump(
        {"title": title, "subject": title, "date": "2026-03-01"}, default_style='"', allow_unicode=False
    )
    write_issue("issues/prop.md", f"---\n{front}---\n\nBody.\n")
    config = make_settings()
    if not clean_line(title):
        assert any("title: is empty" in line for line in problems_of(config))
        return
    issue = load_library(config).issue("prop")
    for text in (issue.title, issue.subject, issue.articles[0].title):
        assert "\r" not in text and "\n" not in text
        assert not any(ch in text for ch in "\x00\x0b\x0c\x1c\x85\u2028\u2029")
        assert text == text.strip() and text
    assert issue.title == clean_line(title)


def test_crlf_and_bom_files(make_settings, write_issue):
    raw = "\ufeff---\r\ntitle: Windows\r\ndate: 2026-01-02\r\n---\r\n\r\nLine one\r\nline two\r\n"
    write_issue("issues/win.md", raw.encode("utf-8"))
    (a,) = load_library(make_settings()).articles
    assert a.title == "Windows"
    assert a.body == "Line one\nline two\n"
    assert a.body_line == 6
    assert a.summary == "Line one line two"


def test_load_issue_returns_a_folder_issue(sample_settings):
    issue = load_issue(sample_settings, "summer-of-water")
    assert issue.is_folder and len(issue.articles) == 3
    assert issue == load_library(sample_settings).issue("summer-of-water")


def test_summary_of_long_bodies_matches_a_full_parse():
    filler = "\n\n".join(f"Paragraph number {i} goes on for a while." for i in range(300))
    # a reference link defined at the very end still resolves in the summary
    body = "Opening with a [reference link][ref] in it.\n\n" + filler + "\n\n[ref]: https://example.org\n"
    assert summarize(body) == "Opening with a reference link in it."
    # no top-level paragraph in the opening blocks: the whole body is parsed
    items = "\n".join(f"- item {i} with some words to make it long" for i in range(200))
    assert summarize(items + "\n\nThe real paragraph.\n") == "The real paragraph."


def test_summary_from_the_opening_blocks_matches_a_full_parse():
    from publisher.content.summary import _first, first_paragraph

    bodies = [
        "Plain first paragraph.\n\nSecond one.",
        "# Heading\n\nThen a paragraph.\n\nMore.",
        "- a list\n\n  continued item\n\nTop paragraph after it.",
        "```\ncode\n\nstill code\n```\n\nAfter the fence.",
        "    indented code\n\n    more code\n\nA paragraph.",
        "> quoted\n\nOutside the quote.",
        "A [link][r] and a note[^n].\n\nMore.\n\n[r]: https://example.org\n\n[^n]: The note.",
        "[r]: https://example.org\n\nUses [r] here.",
        "Title\n=====\n\nBody under a setext heading.",
        "| a | b |\n|---|---|\n| 1 | 2 |\n\nAfter the table.",
        "Lazy\ncontinuation lines\nof one paragraph.\n\nNext.",
    ]
    for body in bodies:
        assert first_paragraph(body) == _first(body)[0], body


def test_plain_first_paragraph_fast_path_matches_a_parse():
    import random

    from publisher.content.summary import _first, _plain_first_block

    rng = random.Random(1)
    pieces = [*"abcdefgXYZ ,.;:'\"()?%/-+=@$0129é日!", "  ", "\t", "http://x.org/a-b", "1.", "- ", "* ", "# "]
    pieces += ["& ", "AT&T", "“", "€", "1.5"]
    starts = [*"AbcÉz09\"'(“$€", "1. ", "2) ", "12. ", "1.5", "2010 "]
    used = 0
    for _ in range(5000):
        lines = [
            rng.choice(starts) + "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
            for _ in range(rng.randint(1, 4))
        ]
        body = "\n".join(lines) + ("\n\nNext *block*." if rng.random() < 0.5 else "")
        fast = _plain_first_block(body)
        if fast is not None:
            used += 1
            assert fast == _first(body)[0], body
    assert used > 1000
    markups = ["A *b* c", "A [b](c)", "A\n=", "A &amp; b", "A &#35;", "A `b`", "- a", "1. a", "# A", "    a"]
    for markup in [*markups, "A |b|", "2) a", "A\n1. b", "A ![b](c)", "<b>"]:
        assert _plain_first_block(markup + "\n\nMore.") is None, markup
    for plain in ["AT&T & co!", "“Quoted” start", "2010 was a year", "1.5 million", "(Aside)", "$5 rise"]:
        assert _plain_first_block(plain + "\n\nMore.") == _first(plain)[0] == plain, plain


def test_problem_paths_through_symlinks_and_shared_folders(make_settings, write_issue, tmp_path):
    from publisher.content.loader import Loader
    from publisher.content.scan import relative

    write_issue("issues/plain.md", article("P"))
    write_issue("issues/other.md", article("O"))
    elsewhere = tmp_path / "elsewhere.md"
    elsewhere.write_text(article("E"), encoding="utf-8")
    settings = make_settings()
    link = settings.paths.issues / "linked.md"
    link.symlink_to(elsewhere)
    loader = Loader(settings)
    for name in ["plain.md", "other.md", "linked.md", "plain.md"]:
        path = settings.paths.issues / name
        assert loader.rel(path) == relative(path, settings), name
    outside = tmp_path.parent / "outside.md"
    assert loader.rel(outside) == relative(outside, settings)
