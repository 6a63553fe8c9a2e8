"""Plain-text articles to Markdown, and the cleaning every imported field goes through.

A web page's trailing boilerplate ("Latest news", comment prompts, share
buttons) is dropped here for both readers, so an imported article reads like
the article. Every value that ends up in front matter passes `field_text`: a
page is hostile input, and a control character, a lone surrogate or a 10 KB
title must not reach YAML, a mail header or the file system.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from publisher.content import clean_line, summarize

_WS = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_END_PUNCT = ".,;:!?…"
_CLOSERS = "\"'”’»)]"
_URL = re.compile(r"^(https?://|www\.)\S+$", re.I)
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_BOILERPLATE = re.compile(
    r"""^(?:
      (?:latest|related|recent|more|top|popular|trending|recommended)
        (?:\s+(?:news|stories|posts|articles|reads|reading|content|from\s.+|for\s+you|now))?
    | read\s+(?:more|next|also)(?:\s.*)?
    | you\s+(?:may|might)\s+also\s+(?:like|enjoy)
    | sources?|references|further\s+reading
    | share(?:\s+(?:this|it|on|via|the)\b.*)?
    | (?:tweet|email|print)(?:\s+this)?(?:\s+(?:article|story|page))?
    | follow\s+us(?:\s.*)?|subscribe(?:\s.*)?|sign\s+up(?:\s.*)?|newsletter
    | (?:leave|post|add|write)\s+a\s+(?:comment|reply)(?:\s.*)?|comments?|\d+\s+comments?|reply
    | (?:please\s+)?enter\s+your\s+(?:comment|name|e-?mail|website).*
    | you\s+have\s+entered\s+an\s+incorrect\s+email.*|save\s+my\s+name.*
    | have\s+an\s+opinion\s+on\s+this\s+(?:story|article).*|what\s+do\s+you\s+think.*
    | advertisement|tags?:.*|filed\s+under.*|copyright\b.*|©.*|all\s+rights\s+reserved.*
    )$""",
    re.I | re.X,
)

TITLE_LIMIT = 200  # characters; a subject line past this is cut by every mail client anyway
_DROPPED_CATEGORIES = frozenset({"Cc", "Cs", "Co"})  # controls, lone surrogates, private use
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")  # would reorder the text around a name


@dataclass(frozen=True)
class ImportedArticle:
    """An article read from a foreign format: a title, a Markdown body, a plain summary, page metadata."""

    title: str
    body: str
    summary: str
    author: str = ""
    published: date | datetime | None = None  # the page's own date (a zone is kept)
    image: str = ""  # an http(s) URL of the hero image
    image_file: Path | None = None  # or a local hero image next to the source (copied on import)
    image_alt: str = ""


def field_text(text: str, limit: int) -> str:
    """One clean line of at most ``limit`` characters, safe for YAML, mail headers and file names.

    Control characters and line breaks become spaces (a CR/LF in an author
    would start a mail header); lone surrogates, private-use and bidi-override
    code points are dropped (they cannot be encoded, or only disguise the text).
    """
    line = _BIDI_CONTROLS.sub("", clean_line(text))
    kept = "".join(c for c in line if unicodedata.category(c) not in _DROPPED_CATEGORIES)
    kept = " ".join(kept.split())
    if len(kept) <= limit:
        return kept
    cut = kept[: limit - 1]
    cut = cut.rsplit(" ", 1)[0] if " " in cut[limit // 2 :] else cut
    return cut.rstrip(" ,;:-–—") + "…"


# -- plain text ------------------------------------------------------------------------


def from_text(text: str) -> ImportedArticle:
    """First non-empty line the title, short unpunctuated lines headings, blank-line paragraphs."""
    blocks = _blocks(text.removeprefix("\ufeff"))
    if not blocks:
        raise ValueError("the file is empty")
    title = field_text(blocks[0][0], TITLE_LIMIT)
    rest = ([blocks[0][1:]] if len(blocks[0]) > 1 else []) + blocks[1:]
    rest = drop_boilerplate(rest)
    parts: list[str] = []
    for i, block in enumerate(rest):
        if len(block) == 1 and i + 1 < len(rest) and _is_heading(block[0]):
            parts.append("## " + escape_markdown(block[0]))
        else:
            parts.append(escape_markdown(" ".join(block)))
    body = "\n\n".join(parts) + "\n" if parts else ""
    return ImportedArticle(title, body, summarize(body))


def _blocks(text: str) -> list[list[str]]:
    """Paragraphs as lists of whitespace-normalised lines (blank lines separate them)."""
    blocks: list[list[str]] = [[]]
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = _WS.sub(" ", raw).strip()
        if line:
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    return [b for b in blocks if b]


def _is_heading(line: str) -> bool:
    words = line.split()
    bare = line.rstrip(_CLOSERS)
    return (
        len(line) <= 100
        and 1 <= len(words) <= 15
        and bool(bare)
        and bare[-1] not in _END_PUNCT
        and (line[0].isupper() or line[0].isdigit())
        and not _URL.match(line)
    )


def _is_boilerplate(line: str) -> bool:
    return bool(_BOILERPLATE.match(line.strip(" #*_>-|:").rstrip(_END_PUNCT + " ")))


def _is_debris(line: str) -> bool:
    """Short link-ish lines that trail a page (bylines, dates, links), not prose."""
    visible = _MD_LINK.sub(r"\1", line).strip(" -*+#>")
    bare = visible.rstrip(_CLOSERS)
    return bool(_URL.match(visible)) or (len(visible) <= 60 and (not bare or bare[-1] not in ".?"))


def drop_boilerplate(blocks: list[list[str]]) -> list[list[str]]:
    """Cut the tail from the first boilerplate marker on, if nothing but debris follows it."""
    cut = None
    i = len(blocks)
    while i > 0:
        block = blocks[i - 1]
        markers = [_is_boilerplate(line) for line in block]
        if any(markers) and all(m or _is_debris(line) for m, line in zip(markers, block, strict=True)):
            cut = i - 1
        elif not all(_is_debris(line) for line in block):
            break
        i -= 1
    return blocks if cut is None else blocks[:cut]


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>])")
_LINE_START = re.compile(r"^(?:#{1,6}(?=\s|$)|[-+=]+(?=\s|$)|~{3,}|(\d+)([.)])(?=\s|$))")


def escape_markdown(text: str) -> str:
    """Plain text as Markdown that renders back to the same text."""
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = re.sub(r"&(?=#?\w+;)", r"\\&", text)
    m = _LINE_START.match(text)
    if m is None:
        return text
    if m.group(1):  # "1. " would start an ordered list
        return m.group(1) + "\\" + text[len(m.group(1)) :]
    return "\\" + text
