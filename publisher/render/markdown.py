"""Markdown (CommonMark + tables + footnotes) to HTML.

Article HTML comes from markdown-it-pyrs, the Rust port of markdown-it: about
13x faster than markdown-it-py here (0.026 ms against 0.33 ms for a
300-word news article), and rendering was the largest single cost of a cold
build. ``render.text`` writes the text part from markdown-it-pyrs's tree
(``fast_tree``) too. ``parser()`` stays markdown-it-py (commonmark preset,
tables, mdit_py_plugins footnotes), for the HTML and text of the bodies that
markdown-it-pyrs 0.4 gets wrong:

- any body with footnote syntax (``[^`` or ``^[``). The Rust footnote plugin
  ignores a definition written right under a paragraph, turns a definition
  indented by two spaces into text starting with ``]:``, and nests a
  definition that starts with another into invalid HTML. markdown-it-py's
  rendering is the one footnotes always had.
- any body on which it panics (markdown-it 0.6.0 indexes out of bounds on an
  unclosed ``[`` followed by a backtick, e.g. ``[`a``). The panic is caught
  and the body rendered again; Rust prints it on stderr.

Elsewhere the two agree byte for byte on the news corpus; on random Markdown
they differ only in edge cases (an empty list item after a paragraph, a table
whose header has no pipe, a code span against an autolink, an unclosed fence's
last newline), and both escape raw HTML.

Raw HTML in the source is escaped, not passed through: the same body goes into
emails, feeds and pages, and none of them should carry an editor's stray
<script> or broken tag. Neither parser has its HTML rules on (``html_block``
and ``html_inline`` are left out of ``_RULES``; markdown-it-py has
``html=False``), so a tag is text and comes out as ``&lt;tag&gt;``.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import version

import markdown_it
import markdown_it_pyrs
from markdown_it import MarkdownIt
from mdit_py_plugins.footnote import footnote_plugin

# CommonMark without raw HTML, plus GFM tables: markdown-it-py's "commonmark" preset
# with html=False and "table" enabled, named rule by rule ("zero" has none).
_RULES = (
    "blockquote",
    "code",
    "fence",
    "heading",
    "hr",
    "lheading",
    "list",
    "paragraph",
    "reference",
    "autolink",
    "backticks",
    "emphasis",
    "entity",
    "escape",
    "image",
    "link",
    "newline",
    "table",
)
_FOOTNOTE_MARKS = ("[^", "^[")


@lru_cache(maxsize=1)
def parser() -> MarkdownIt:
    """markdown-it-py, configured (building one costs more than rendering a short article)."""
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table").use(footnote_plugin)
    return md


@lru_cache(maxsize=1)
def fast_parser() -> markdown_it_pyrs.MarkdownIt:
    """markdown-it-pyrs with the same rules, without footnotes (see the module docstring)."""
    md = markdown_it_pyrs.MarkdownIt("zero")
    md.enable_many(list(_RULES))  # type: ignore[arg-type]  # stubs spell rule names as a Literal union
    return md


def markdown_to_html(source: str) -> str:
    """Render Markdown to an HTML fragment."""
    if any(mark in source for mark in _FOOTNOTE_MARKS):
        return parser().render(source)
    try:
        return fast_parser().render(source, xhtml=True)
    except BaseException as exc:  # pyo3's PanicException derives from BaseException
        if type(exc).__name__ != "PanicException":
            raise
        return parser().render(source)


def fast_tree(source: str) -> markdown_it_pyrs.Node | None:
    """markdown-it-pyrs's syntax tree, or None for a body ``markdown_to_html`` gives markdown-it-py.

    The text part (``render.text``) is written from it, so a body's text and HTML
    come from the same parser.
    """
    if any(mark in source for mark in _FOOTNOTE_MARKS):
        return None
    try:
        return fast_parser().tree(source)
    except BaseException as exc:  # pyo3's PanicException derives from BaseException
        if type(exc).__name__ != "PanicException":
            raise
        return None


def renderers() -> str:
    """Which parsers render article HTML, with their versions (bench/build.py prints it)."""
    return (
        f"markdown-it-pyrs {version('markdown-it-pyrs')}, "
        f"markdown-it-py {markdown_it.__version__} for bodies with footnotes"
    )
