"""Markdown (CommonMark + tables + footnotes) to HTML, one configured parser.

Raw HTML in the source is escaped, not passed through: the same body goes into
emails, feeds and pages, and none of them should carry an editor's stray
<script> or broken tag.
"""

from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt
from mdit_py_plugins.footnote import footnote_plugin


@lru_cache(maxsize=1)
def parser() -> MarkdownIt:
    """The shared parser (building one costs more than rendering a short article)."""
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table").use(footnote_plugin)
    return md


def markdown_to_html(source: str) -> str:
    """Render Markdown to an HTML fragment."""
    return parser().render(source)
