"""The text part written from markdown-it-pyrs's tree: the text markdown-it-py's tree gave.

``markdown_to_text`` walks the tree of the parser that renders the body's HTML
(``markdown.fast_tree``); ``TokenText`` (markdown-it-py) stays for bodies with
footnotes and for those markdown-it-pyrs panics on. Where the two parsers agree
on the structure, both renderers must give the same bytes (the issue emails did
not change when the text part moved to the faster tree).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it.tree import SyntaxTreeNode

from publisher.render.markdown import fast_tree, parser
from publisher.render.text import TokenText, TreeText, markdown_to_text

ROOT = Path(__file__).resolve().parent.parent
BASE = "https://news.example.org/a/"

WIDE_TABLE = "\n".join(
    ["| " + " | ".join(f"column {n}" for n in range(8)) + " |", "|---" * 8 + "|", "| x |" * 8]
)
# Every construct the text renderer handles, alone and mixed, where the parsers agree.
CONSTRUCTS = [
    "# One\n\n## Two\n\n### Three\n\n###### Six",
    "Setext one\n===\n\nSetext two\n---",
    "- tight\n- list\n  - nested\n  - items\n- end",
    "- loose\n\n- list\n\n  with two paragraphs",
    "3. three\n4. four\n\n1) one\n2) two",
    "-\n- after an empty item",
    "> quoted *text*\n>\n> > nested quote\n\n> - list in a quote",
    "```python\ncode = 1\n\n```\n\n    indented\n    code",
    "a\n\n---\n\n***\n\nb",
    "| left | centre | right | none |\n|:--|:-:|--:|---|\n| 1 | 2 | 3 | 4 |\n| a |",
    WIDE_TABLE,
    '[text](http://x.org/ü p "t") [same](http://x.org) [http://x.org](http://x.org) [x.org](http://x.org)',
    "[rel](../up/page) [frag](#here) [empty]() [ref][r]\n\n[r]: /refd 'title'",
    "<http://a.org/%C3%BC> <http://b.org> <a@b.org> <mailto:c@d.org>",
    "![alt *em*](pic.png) ![](bare.png) ![x](<with space.png>) ![y](//cdn.org/z.png)",
    "*em* _em_ **strong** __strong__ `code` `` a ` b `` ***both***",
    "hard  \nbreak\\\nand soft\nbreak",
    "&amp; &copy; &#35; &#x41; &bogus; \\* \\_ \\[ \\\\",
    "A <b>bold</b> move & <script>alert(1)</script> <!-- c -->",
    "wide 日本語 text and e\u0301 marks " * 6,
    "word " * 60 + "https://example.org/" + "p" * 80 + " end",
    "1. item\n\n   ```\n   fenced in a list\n   ```\n\n2. next",
    "",
    "\n\n   \n",
]


def _token_text(source: str, **kw: object) -> str:
    """The text as markdown-it-py's tree gives it (what every body used before)."""
    root = SyntaxTreeNode(parser().parse(source))
    base = str(kw.get("base_url", ""))
    offset = int(kw.get("heading_offset", 0))  # type: ignore[call-overload]
    lines = TokenText(base, 72, offset).blocks(root.children, 72)
    return "\n".join(line.rstrip() for line in lines).strip("\n") + "\n"


@pytest.mark.parametrize("source", CONSTRUCTS)
@pytest.mark.parametrize("kw", [{}, {"base_url": BASE, "heading_offset": 1}])
def test_tree_text_is_token_text(source: str, kw: dict[str, object]) -> None:
    assert fast_tree(source) is not None  # the fast path is the one under test
    assert markdown_to_text(source, **kw) == _token_text(source, **kw)  # type: ignore[arg-type]


def test_the_sample_issues_give_the_same_text() -> None:
    sources = sorted(ROOT.glob("issues/**/*.md"))
    assert sources
    for path in sources:
        body = path.read_text(encoding="utf-8").split("---", 2)[-1]
        assert markdown_to_text(body, base_url=BASE) == _token_text(body, base_url=BASE), path


_PIECES = st.sampled_from(
    [
        "# h",
        "## h2",
        "word",
        "two words",
        "*em*",
        "**st**",
        "`co`",
        "[l](http://x.org)",
        "[l](/rel)",
        "<http://a.org/%C3%BC>",
        "<a@b.org>",
        "![i](p.png)",
        "&amp;",
        "\\*",
        "é 中",
        "- a",
        "1. b",
        "```\ncode\n```",
        "    ind",
        "***",
        "<b>x</b>",
        "long " * 20,
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, min_size=1, max_size=8), st.sampled_from(["\n", "\n\n"]))
def test_random_blocks_give_the_same_text(pieces: list[str], sep: str) -> None:
    source = sep.join(pieces)
    assert markdown_to_text(source, base_url=BASE) == _token_text(source, base_url=BASE)


def test_footnotes_still_go_through_markdown_it_py() -> None:
    source = "Claim.[^1]\n\n[^1]: The note."
    assert fast_tree(source) is None
    assert markdown_to_text(source) == "Claim.[1]\n\n--------\n[1] The note.\n"


def test_a_body_markdown_it_pyrs_panics_on_still_gives_text() -> None:
    source = "see [`a and more"  # markdown-it 0.6 indexes out of bounds on this (module docstring)
    assert fast_tree(source) is None
    assert markdown_to_text(source) == "see [`a and more\n"


@pytest.mark.parametrize(
    "hostile",
    ["a\r\nb\rc", "nul \x00 byte", "=?utf-8?q?=41?= word", "bidi \u202e txt \u2066x\u2069", "x" * 10_000],
)
def test_hostile_text_renders_the_same_both_ways(hostile: str) -> None:
    assert markdown_to_text(hostile, base_url=BASE) == _token_text(hostile, base_url=BASE)


def test_tree_text_renders_a_table_row_short_of_cells() -> None:
    source = "| a | b |\n|---|--:|\n| 1 |"
    tree = fast_tree(source)
    assert tree is not None
    lines = TreeText("", 72).blocks(list(tree.children), 72)
    assert lines == ["a  b", "-  -", "1"]
