"""Markdown files imported as they are: front matter completed, the body never touched.

Running a Markdown file through the plain-text reader made `# publisher` a
title and escaped every `##`; a Markdown file is already an issue body, so
the only work is the front matter. Keys the author wrote are kept as written
(comments and all): the missing ones (title from the first `# heading`, date,
tags) are appended in the file's own line ending. When appending cannot work
(flow-style or indented YAML, or a key present but empty) the front matter is
written anew with yaml.safe_dump, never by string formatting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from publisher.content.frontmatter import parse_document
from publisher.errors import Problem
from publisher.importer_text import TITLE_LIMIT, field_text

MARKDOWN_SUFFIXES = (".md", ".markdown")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_DELIMITERS = ("---", "...")


class SourceError(ValueError):
    """A problem in the imported file itself, at a line of it."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class MarkdownSource:
    """A Markdown file split where its front matter ends; ``head + rest`` is the file."""

    title: str  # from the front matter, else the first '# heading'
    meta: Mapping[str, Any]  # the front matter as parsed ({} when there is none)
    head: str  # '---' line and YAML lines as written ('' when there is no front matter)
    rest: str  # the closing '---' line and the body, byte for byte (the whole file without one)
    newline: str


def looks_like_markdown(name: str, text: str) -> bool:
    """By extension, or by front matter or an ATX heading first (or two anywhere) in the text."""
    if name.lower().endswith(MARKDOWN_SUFFIXES):
        return True
    lines = text.split("\n", 2000)[:2000]
    if _front_matter_end(lines) is not None:
        return True
    first = next((line for line in lines if line.strip()), "")
    headings = sum(1 for line in lines if _heading(line))
    return bool(_heading(first)) or headings >= 2


def from_markdown(text: str) -> MarkdownSource:
    """Split off the front matter (raising SourceError when it is not a YAML mapping)."""
    lines = text.split("\n")
    newline = "\r\n" if lines[0].endswith("\r") else "\n"
    end = _front_matter_end(lines)
    meta: Mapping[str, Any] = {}
    head, rest = "", text
    if end is not None:
        head, rest = "\n".join(lines[:end]) + "\n", "\n".join(lines[end:])
        problems: list[Problem] = []
        doc = parse_document(text, "", problems)
        if doc is None:
            raise SourceError(problems[0].message, problems[0].line)
        meta = doc.meta
    title = meta.get("title")
    if isinstance(title, str | int | float) and not isinstance(title, bool):
        title = field_text(str(title), TITLE_LIMIT)
    else:
        title = ""
    title = title or _first_heading(rest)
    if not title:
        raise SourceError("no title: add 'title:' to the front matter or start the text with a '# heading'")
    return MarkdownSource(title, meta, head, rest, newline)


def complete(source: MarkdownSource, missing: Mapping[str, Any]) -> str:
    """The file with ``missing`` keys added to its front matter; everything else as it was."""
    nl = source.newline
    if not missing:
        return source.head + source.rest
    if not source.head:
        return _front(dict(missing), nl) + source.rest
    if not any(key in source.meta for key in missing):
        text = source.head + _dump(dict(missing), nl) + source.rest
        if _reparses(text, missing):
            return text
    after_closing = source.rest.split("\n", 1)[1] if "\n" in source.rest else ""
    return _front({**source.meta, **missing}, nl) + after_closing


def _reparses(text: str, missing: Mapping[str, Any]) -> bool:
    """Appending keys is safe only if the YAML still reads as the old mapping plus them."""
    problems: list[Problem] = []
    doc = parse_document(text, "", problems)
    return doc is not None and all(key in doc.meta for key in missing)


def _front(meta: dict[str, Any], nl: str) -> str:
    return f"---{nl}{_dump(meta, nl)}---{nl}"


def _dump(meta: dict[str, Any], nl: str) -> str:
    text = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1_000_000)
    return text.replace("\n", nl)


def _front_matter_end(lines: list[str]) -> int | None:
    """Index of the line that closes a front matter block opened on the first line."""
    if not lines or lines[0].removeprefix("\ufeff").rstrip() != "---":
        return None
    return next((i for i in range(1, len(lines)) if lines[i].rstrip() in _DELIMITERS), None)


def _heading(line: str) -> str | None:
    match = _ATX.match(line)
    return match.group(1) if match and match.group(2) else None


def _first_heading(body: str) -> str:
    """Text of the first level-one ATX heading outside fenced code."""
    fence = ""
    for line in body.splitlines():
        opened = _FENCE.match(line)
        if fence:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = ""
            continue
        if opened:
            fence = opened.group(1)
            continue
        match = _ATX.match(line)
        if match and match.group(1) == "#" and match.group(2):
            return field_text(match.group(2), TITLE_LIMIT)
    return ""
