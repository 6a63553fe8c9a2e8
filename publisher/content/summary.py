"""The fallback summary: the body's first paragraph as plain text.

Feeds, digests and the preheader all show it, so it must carry no Markdown
syntax and stay short; it is cut at a sentence end when one is near enough,
else at a word, never in the middle of a word.
"""

from __future__ import annotations

import re
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.footnote import footnote_plugin

from publisher.content.fields import clean_line

SUMMARY_LIMIT = 240
_PREFIX = 3000
_REFERENCE = re.compile(r"^ {0,3}\[[^\]\n]+\]:.*$", re.M)


@lru_cache(maxsize=1)
def markdown_parser() -> MarkdownIt:
    """The body's token tree (body images, summaries)."""
    # Same dialect as render.markdown (which this stage may not import).
    return MarkdownIt("commonmark", {"html": False}).enable("table").use(footnote_plugin)


def first_paragraph(markdown: str) -> str:
    """Plain text of the first top-level paragraph (any paragraph if none is top-level).

    Only the opening blocks are parsed when they hold a top-level paragraph
    (first the first block, then the first ~3000 characters): the summary of
    an article costs a fraction of rendering it, however long it is. A
    top-level paragraph that ends at a blank line is final, and the only
    things later text can change in it (link and footnote definitions) are
    carried along.
    """
    plain = _plain_first_block(markdown)
    if plain is not None:
        return plain
    cuts = [markdown.find("\n\n")]
    if len(markdown) > _PREFIX:
        cuts.append(markdown.find("\n\n", _PREFIX))
    for cut in cuts:
        if cut == -1:
            continue
        refs = "\n".join(_REFERENCE.findall(markdown[cut:]))  # link definitions may come last
        found, top = _first(markdown[:cut] + "\n\n" + refs)
        if top:
            return found
    return _first(markdown)[0]


# A line that can only be paragraph text: it starts with a letter, a digit that is not a list
# number, or an opening quote, parenthesis or currency sign (no list, heading, quote, fence,
# code or table can start so), and holds no character that inline Markdown reads: no "&" that
# may start an entity, and no "[" (so no "![" either).
_PLAIN = re.compile(
    r"(?!\d{1,9}[.)](?:[ \t]|$))(?:[^\W_]|[\"'(\u201c\u2018$\u00a3\u20ac])"
    r"[^*_`\[\]<>&\\#|~\n]*(?:&(?!#?[0-9A-Za-z]+;)[^*_`\[\]<>&\\#|~\n]*)*"
)


def _plain_first_block(markdown: str) -> str | None:
    """The first block's text when it is a paragraph without any markup (most news prose), else None.

    Its plain text is then its lines joined by spaces, which is what a parse gives, at a
    hundredth of the cost.
    """
    end = markdown.find("\n\n")
    block = markdown if end == -1 else markdown[:end]
    lines = block.split("\n")
    if not block or not all(_PLAIN.fullmatch(line) for line in lines):
        return None
    return clean_line(" ".join(line.strip() for line in lines))


def _first(markdown: str) -> tuple[str, bool]:
    tokens = markdown_parser().parse(markdown)
    fallback = ""
    for i, tok in enumerate(tokens):
        if tok.type != "paragraph_open" or i + 1 >= len(tokens):
            continue
        text = clean_line(_plain(tokens[i + 1].children or []))
        if not text:
            continue
        if tok.level == 0:
            return text, True
        fallback = fallback or text
    return fallback, False


def _plain(children: list[Token]) -> str:
    parts: list[str] = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        # images, footnote references and raw HTML carry no prose
    return "".join(parts)


def truncate(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """Shorten to at most ``limit`` characters, preferring a sentence end, else a word + '…'."""
    text = clean_line(text)
    if len(text) <= limit:
        return text
    window = text[:limit]
    ends = [window.rfind(p) for p in (". ", "! ", "? ")]
    end = max(ends)
    if end >= limit // 3:
        return window[: end + 1]
    cut = window[: limit - 1].rsplit(" ", 1)[0] if " " in window else window[: limit - 1]
    return cut.rstrip(" ,;:-–—") + "…"


def summarize(markdown: str, limit: int = SUMMARY_LIMIT) -> str:
    return truncate(first_paragraph(markdown), limit)
