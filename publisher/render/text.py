"""Markdown to readable plain text, for the text/plain part of emails.

Written from the Markdown source rather than scraped from the HTML: a scraper
loses list numbering, link targets and table structure, and picks up layout
text. Headings are underlined, links read "text (url)", footnotes become
"[1]" with their notes at the end, tables become aligned columns (or one
record per row when too wide), code is indented; prose wraps at 72 columns.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import urljoin

from markdown_it.tree import SyntaxTreeNode
from markdown_it_pyrs import Node

from publisher.render.markdown import fast_tree, parser

WIDTH = 72
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_UNDERLINE = {1: "=", 2: "-"}


def absolute_url(url: str, base_url: str) -> str:
    """``url`` made absolute against the site (mail has no page to be relative to)."""
    url = url.strip()
    if not base_url or _SCHEME.match(url) or url.startswith("#"):
        return url
    if url.startswith("//"):
        return "https:" + url
    return urljoin(base_url.rstrip("/") + "/", url)


def display_width(text: str) -> int:
    """Columns ``text`` takes in a monospace font: wide East Asian characters count 2, marks 0."""
    if text.isascii():  # no wide character, combining mark or format character: one column each
        return len(text)
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def underline(text: str, char: str = "=") -> str:
    """A heading: ``text`` over a rule as wide as its longest line."""
    lines = text.splitlines() or [""]
    return "\n".join([*lines, char * max(display_width(line) for line in lines)])


def wrap(text: str, width: int = WIDTH, initial: str = "", subsequent: str = "") -> list[str]:
    """Wrap one paragraph; URLs and long words are never broken (they must stay clickable)."""
    out: list[str] = []
    for n, segment in enumerate(text.split("\n")):  # '\n' here is a Markdown hard break
        first = initial if n == 0 else subsequent
        if _SIMPLE.fullmatch(segment):
            lines = _wrap_words(segment, max(width, 20), first, subsequent)
        else:
            lines = textwrap.wrap(
                segment,
                width=max(width, 20),
                initial_indent=first,
                subsequent_indent=subsequent,
                break_long_words=False,
                break_on_hyphens=False,
            )
        out.extend(lines or [first.rstrip()])
    return out


# Text textwrap would only split, and drop, at spaces: no other whitespace (its own, or the
# Unicode whitespace its str.strip() drops), no leading space.
_SIMPLE = re.compile(r"(?! )[\S ]*")


def _wrap_words(text: str, width: int, initial: str, subsequent: str) -> list[str]:
    """``textwrap.wrap`` (no broken words or hyphens) for ``_SIMPLE`` text: a regex match per line.

    textwrap's greedy loop (a Python step per word) was ~15 % of an issue email; a line
    is the longest run of words that fits, or one word longer than the line.
    """
    lines: list[str] = []
    pos, end, indent = 0, len(text), initial
    while pos < end:
        m = _line_pattern(width - len(indent)).match(text, pos)
        if m is None:  # only spaces left: textwrap drops them
            break
        lines.append(indent + m[0])
        pos, indent = m.end(), subsequent
        while pos < end and text[pos] == " ":
            pos += 1
    return lines


@lru_cache(maxsize=64)
def _line_pattern(room: int) -> re.Pattern[str]:
    """Words that fit in ``room`` columns (by characters, as textwrap counts), or one longer word."""
    if room < 2:
        return re.compile(r"[^ ]+")  # a word a line, as textwrap does
    return re.compile(rf"[^ ](?:.{{0,{room - 2}}}[^ ])?(?= |\Z)|[^ ]+")


def markdown_to_text(source: str, *, base_url: str = "", width: int = WIDTH, heading_offset: int = 0) -> str:
    """Render Markdown as plain text; relative links are made absolute against ``base_url``.

    ``heading_offset`` demotes headings (an article inside a folder issue sits
    one level below the issue's own title). The tree comes from the parser that
    renders the body's HTML (``markdown.fast_tree``): markdown-it-pyrs's costs
    ~0.05 ms where a markdown-it-py parse cost ~0.5 (a quarter of an issue email).
    """
    # CommonMark turns NUL into U+FFFD, as markdown-it-py does; markdown-it-pyrs 0.4 keeps it.
    tree = fast_tree(source.replace("\x00", "\ufffd"))
    if tree is None:  # footnotes, or a body markdown-it-pyrs panics on: markdown-it-py, as for the HTML
        root = SyntaxTreeNode(parser().parse(source))
        lines = TokenText(base_url, width, heading_offset).blocks(root.children, width)
    else:
        lines = TreeText(base_url, width, heading_offset).blocks(list(tree.children), width)
    return "\n".join(line.rstrip() for line in lines).strip("\n") + "\n"


class _Layout:
    """What both renderers share: how blocks, headings, lists, tables and links are laid out."""

    def __init__(self, base_url: str, width: int, heading_offset: int = 0) -> None:
        self.base_url = base_url
        self.width = width
        self.heading_offset = heading_offset

    def each_block(self, nodes: Sequence[Any], width: int) -> Iterator[list[str]]:
        raise NotImplementedError

    def blocks(self, nodes: Sequence[Any], width: int, tight: bool = False) -> list[str]:
        out: list[str] = []
        for lines in self.each_block(nodes, width):
            if not lines:
                continue
            if out and not tight:
                out.append("")
            out.extend(lines)
        return out

    def heading(self, level: int, text: str, width: int) -> list[str]:
        level = min(level + self.heading_offset, 6)
        text = text.replace("\n", " ")
        if level in _UNDERLINE:
            return underline("\n".join(wrap(text, width)), _UNDERLINE[level]).split("\n")
        return wrap(text, width, "#" * level + " ", " " * (level + 1))

    def quote(self, nodes: Sequence[Any], width: int) -> list[str]:
        return ["> " + line if line else ">" for line in self.blocks(nodes, width - 2)]

    @staticmethod
    def code(content: str) -> list[str]:
        return ["    " + line for line in content.rstrip("\n").split("\n")]

    def items(self, items: Sequence[Any], width: int, tight: bool, start: int | None) -> list[str]:
        """List items (``start`` None for a bullet list), each a sequence of block nodes."""
        out: list[str] = []
        for n, item in enumerate(items):
            marker = "- " if start is None else f"{start + n}. "
            pad = " " * len(marker)
            body = self.blocks(item, width - len(marker), tight=tight)
            if out and not tight:
                out.append("")
            if not body:
                out.append(marker.rstrip())
            for i, line in enumerate(body):
                out.append((marker if i == 0 else pad) + line if line else "")
        return out

    def grid(self, rows: list[list[str]], aligns: list[str], width: int) -> list[str]:
        """A table as aligned columns, or one record per row when too wide."""
        if not rows:
            return []
        ncols = max(len(r) for r in rows)
        rows = [r + [""] * (ncols - len(r)) for r in rows]
        aligns = aligns + ["left"] * (ncols - len(aligns))
        widths = [max(display_width(r[c]) for r in rows) for c in range(ncols)]
        if sum(widths) + 2 * (ncols - 1) > width:
            return self.records(rows, width)
        out = [self._row(rows[0], widths, aligns), "  ".join("-" * w for w in widths)]
        out += [self._row(r, widths, aligns) for r in rows[1:]]
        return out

    @staticmethod
    def _row(cells: list[str], widths: list[int], aligns: list[str]) -> str:
        parts = []
        for text, w, align in zip(cells, widths, aligns, strict=True):
            gap = w - display_width(text)
            if align == "right":
                parts.append(" " * gap + text)
            elif align == "center":
                parts.append(" " * (gap // 2) + text + " " * (gap - gap // 2))
            else:
                parts.append(text + " " * gap)
        return "  ".join(parts).rstrip()

    @staticmethod
    def records(rows: list[list[str]], width: int) -> list[str]:
        """A table too wide for the text column: one block of 'Header: value' per row."""
        head = rows[0]
        out: list[str] = []
        for row in rows[1:]:
            if out:
                out.append("")
            for name, value in zip(head, row, strict=True):
                out.extend(wrap(f"{name}: {value}", width, "", "    "))
        return out

    def link(self, text: str, href: str) -> str:
        if not href or href.startswith("#"):
            return text
        url = absolute_url(href, self.base_url)
        bare = _BARE.sub("", url)
        return url if text in (url, bare, href) else f"{text} ({url})"

    def image(self, alt: str, src: str) -> str:
        return f"[Image: {alt.strip() or 'image'}] ({absolute_url(src, self.base_url)})"


_BARE = re.compile(r"^(mailto:|https?://)")


class TokenText(_Layout):
    """Text from markdown-it-py's tree (``SyntaxTreeNode``): the bodies with footnotes."""

    def each_block(self, nodes: Sequence[SyntaxTreeNode], width: int) -> Iterator[list[str]]:
        return (self.block(node, width) for node in nodes)

    def block(self, node: SyntaxTreeNode, width: int) -> list[str]:
        kind = node.type
        if kind in ("paragraph", "inline"):
            return wrap(self.inline(node), width)
        if kind == "heading":
            return self.heading(int(node.tag[1]), self.inline(node), width)
        if kind in ("bullet_list", "ordered_list"):
            tight = all(p.hidden for item in node.children for p in item.children if p.type == "paragraph")
            start = int(node.attrs.get("start", 1)) if kind == "ordered_list" else None
            return self.items([item.children for item in node.children], width, tight, start)
        if kind == "blockquote":
            return self.quote(node.children, width)
        if kind in ("fence", "code_block"):
            return self.code(node.content)
        if kind == "hr":
            return ["* * *"]
        if kind == "table":
            return self.table(node, width)
        if kind == "footnote_block":
            return self.footnotes(node, width)
        return self.blocks(node.children, width)

    def footnotes(self, node: SyntaxTreeNode, width: int) -> list[str]:
        notes = ["-" * 8]
        for n, fn in enumerate(node.children):
            label = f"[{int(fn.meta.get('id', n)) + 1}] "
            body = self.blocks(fn.children, width - len(label))
            notes.extend(
                (label if i == 0 else " " * len(label)) + line if line else "" for i, line in enumerate(body)
            )
        return notes

    def table(self, node: SyntaxTreeNode, width: int) -> list[str]:
        rows: list[list[str]] = []
        aligns: list[str] = []
        for section in node.children:
            for tr in section.children:
                rows.append([self.inline(cell).replace("\n", " ").strip() for cell in tr.children])
                if len(rows) == 1:
                    styles = (str(cell.attrs.get("style", "")) for cell in tr.children)
                    aligns = [style.removeprefix("text-align:") or "left" for style in styles]
        return self.grid(rows, aligns, width)

    def inline(self, node: SyntaxTreeNode) -> str:
        return "".join(self._inline(child) for child in node.children)

    def _inline(self, node: SyntaxTreeNode) -> str:
        kind = node.type
        if kind in ("text", "code_inline"):
            return node.content
        if kind == "softbreak":
            return " "
        if kind == "hardbreak":
            return "\n"
        if kind == "em":
            return "_" + self.inline(node) + "_"
        if kind == "strong":
            return "*" + self.inline(node) + "*"
        if kind == "link":
            return self.link(self.inline(node), str(node.attrs.get("href", "")))
        if kind == "image":
            return self.image(self.inline(node), str(node.attrs.get("src", "")))
        if kind == "footnote_ref":
            return f"[{int(node.meta.get('id', 0)) + 1}]"
        if kind == "footnote_anchor":
            return ""
        return self.inline(node) if node.children else node.content


# markdown-it-pyrs puts a tight list item's text straight in the item, with no paragraph around it.
_INLINE = frozenset(
    (
        "text",
        "text_special",
        "softbreak",
        "hardbreak",
        "code_inline",
        "em",
        "strong",
        "link",
        "autolink",
        "image",
    )
)


class TreeText(_Layout):
    """Text from markdown-it-pyrs's tree (``Node``): every other body, the same text for less."""

    def each_block(self, nodes: Sequence[Node], width: int) -> Iterator[list[str]]:
        run: list[Node] = []
        for node in nodes:
            if node.name in _INLINE:
                run.append(node)
                continue
            if run:
                yield wrap(self.inline(run), width)
                run = []
            yield self.block(node, width)
        if run:
            yield wrap(self.inline(run), width)

    def block(self, node: Node, width: int) -> list[str]:
        kind = node.name
        if kind == "paragraph":
            return wrap(self.inline(node.children), width)
        if kind in ("heading", "lheading"):
            return self.heading(int(node.meta["level"]), self.inline(node.children), width)
        if kind in ("bullet_list", "ordered_list"):
            items = [item.children for item in node.children]
            tight = not any(child.name == "paragraph" for item in items for child in item)
            start = int(node.meta.get("start", 1)) if kind == "ordered_list" else None
            return self.items(items, width, tight, start)
        if kind == "blockquote":
            return self.quote(node.children, width)
        if kind in ("fence", "code_block"):
            return self.code(str(node.meta["content"]))
        if kind == "hr":
            return ["* * *"]
        if kind == "table":
            rows = [
                [self.inline(cell.children).replace("\n", " ").strip() for cell in tr.children]
                for section in node.children
                for tr in section.children
            ]
            aligns = [a if a in ("right", "center") else "left" for a in node.meta.get("alignments", ())]
            return self.grid(rows, aligns, width)
        return self.blocks(node.children, width)

    def inline(self, nodes: Sequence[Node]) -> str:
        return "".join(self._inline(node) for node in nodes)

    def _inline(self, node: Node) -> str:
        kind = node.name
        if kind in ("text", "text_special"):
            return str(node.meta["content"])
        if kind == "softbreak":
            return " "
        if kind == "hardbreak":
            return "\n"
        if kind == "em":
            return "_" + self.inline(node.children) + "_"
        if kind == "strong":
            return "*" + self.inline(node.children) + "*"
        if kind == "link":
            return self.link(self.inline(node.children), str(node.meta.get("url", "")))
        if kind == "autolink":  # shown as markdown-it-py shows it: percent-escapes decoded
            return self.link(parser().normalizeLinkText(self.inline(node.children)), str(node.meta["url"]))
        if kind == "image":
            return self.image(self.inline(node.children), str(node.meta.get("url", "")))
        return self.inline(node.children) if node.children else str(node.meta.get("content", ""))
