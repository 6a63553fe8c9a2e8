"""Markdown to plain text for the text/plain part."""

from __future__ import annotations

import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.render.text import absolute_url, display_width, markdown_to_text, underline, wrap

BASE = "https://news.example.org"


def test_headings_are_underlined_or_prefixed():
    text = markdown_to_text("# Big news\n\n## Smaller\n\n### Smallest\n")
    assert text == "Big news\n========\n\nSmaller\n-------\n\n### Smallest\n"


def test_heading_offset_demotes_headings():
    assert markdown_to_text("# One\n\n## Two\n", heading_offset=1) == "One\n---\n\n### Two\n"


def test_paragraphs_wrap_at_72_without_breaking_urls():
    url = "https://example.org/" + "a" * 90
    text = markdown_to_text(("word " * 40) + url + " end\n")
    lines = text.splitlines()
    assert url in lines
    assert all(len(line) <= 72 for line in lines if line != url)
    assert " ".join(text.split()) == ("word " * 40) + url + " end"


def test_links_show_their_absolute_target():
    text = markdown_to_text(
        "See [the map](maps/wells.png), [home](/), <https://example.org/x>, [mail](mailto:a@b.org) "
        "and [a note](#fn1).",
        base_url=BASE,
    )
    flat = " ".join(text.split())
    assert "the map (https://news.example.org/maps/wells.png)" in flat
    assert "home (https://news.example.org/)" in flat
    assert "https://example.org/x," in flat and "(https://example.org/x)" not in flat
    assert "mail (mailto:a@b.org)" in flat
    assert "and a note." in flat


def test_lists_nested_and_numbered():
    text = markdown_to_text("- one\n- two\n  1. a\n  2. b\n- three\n\n3. x\n4. y\n")
    assert text == "- one\n- two\n  1. a\n  2. b\n- three\n\n3. x\n4. y\n"


def test_loose_list_items_are_spaced_and_wrapped_with_hanging_indent():
    text = markdown_to_text("- " + "long " * 20 + "\n\n- short\n")
    lines = text.splitlines()
    assert lines[0].startswith("- long") and lines[1].startswith("  long")
    assert "" in lines and lines[-1] == "- short"


def test_table_becomes_aligned_columns():
    src = "| Street | Benches |\n|:--|--:|\n| Station Road | 24 |\n| Lane | 155 |\n"
    assert markdown_to_text(src) == (
        "Street        Benches\n------------  -------\nStation Road       24\nLane              155\n"
    )


def test_too_wide_table_becomes_records():
    head = " | ".join(f"Column number {n}" for n in range(6))
    row = " | ".join(f"value {n}" for n in range(6))
    text = markdown_to_text(f"| {head} |\n|{'---|' * 6}\n| {row} |\n")
    assert "Column number 0: value 0\nColumn number 1: value 1\n" in text
    assert all(len(line) <= 72 for line in text.splitlines())


def test_footnotes_are_numbered_with_notes_at_the_end():
    text = markdown_to_text(
        "Claim.[^src] Another.[^b]\n\n[^src]: The [source](https://ex.org).\n[^b]: Second.\n"
    )
    assert text.startswith("Claim.[1] Another.[2]\n")
    assert text.rstrip().endswith("[1] The source (https://ex.org).\n[2] Second.")


def test_code_is_indented_and_not_wrapped():
    code = "x = " + "1 + " * 40 + "1"
    text = markdown_to_text(f"Before:\n\n```python\n{code}\nprint(x)\n```\n\n    indented\n")
    assert f"    {code}\n    print(x)\n" in text
    assert "\n    indented\n" in text


def test_emphasis_quotes_images_rules_and_breaks():
    text = markdown_to_text(
        "*soft* and **loud** `code`\n\n> quoted\n> text\n\n![A chart](media/c.png)\n\n"
        "---\n\nline one  \nline two\n",
        base_url=BASE,
    )
    assert "_soft_ and *loud* code" in text
    assert "> quoted text" in text
    assert "[Image: A chart] (https://news.example.org/media/c.png)" in text
    assert "* * *" in text
    assert "line one\nline two" in text


def test_raw_html_is_text_not_markup():
    text = markdown_to_text("A <b>bold</b> move & <script>alert(1)</script>")
    assert text == "A <b>bold</b> move & <script>alert(1)</script>\n"  # the text part shows it literally


def test_helpers():
    assert display_width("日本") == 4 and display_width("é") == 1 and display_width("e\u0301") == 1
    assert underline("日本語", "=") == "日本語\n======"
    assert wrap("a b", 72, "- ", "  ") == ["- a b"]
    assert absolute_url("x.png", BASE) == "https://news.example.org/x.png"
    assert absolute_url("//cdn.org/x", BASE) == "https://cdn.org/x"
    assert absolute_url("https://a.org/", BASE) == "https://a.org/"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_markdown_gives_text(source):
    text = markdown_to_text(source, base_url=BASE)
    assert text.endswith("\n")
    assert "\r" not in text.replace("\r\n", "")


_WORDS = st.sampled_from(
    [
        "a",
        "bb",
        "word",
        " ",
        "  ",
        "x" * 30,
        "https://example.org/" + "p" * 70,
        "é",
        "\xa0",
        "\t",
        "\x1f",
        "-",
        "—",
    ]
)


@settings(max_examples=300)
@given(
    parts=st.lists(_WORDS, max_size=40),
    width=st.integers(min_value=1, max_value=80),
    initial=st.sampled_from(["", "- ", "[12] ", "#" * 30]),
    subsequent=st.sampled_from(["", "  ", " " * 25]),
)
def test_wrap_is_textwraps_without_broken_words(
    parts: list[str], width: int, initial: str, subsequent: str
) -> None:
    text = "".join(parts)
    expected = textwrap.wrap(
        text,
        width=max(width, 20),
        initial_indent=initial,
        subsequent_indent=subsequent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    assert wrap(text, width, initial, subsequent) == (expected or [initial.rstrip()])
