"""Local images in an article body: found with their line, published beside the article's page.

A relative ``src`` in a body is written relative to the article file, and the
article's page is ``<slug>/index.html``. Copying the file to ``<slug>/<path>``
makes that same relative URL work on the page, in feeds (made absolute against
the page's URL) and in email (likewise), with no rewriting of the Markdown.
So a body image must stay inside the article's folder: ``..`` would leave it.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from publisher.content.summary import markdown_parser
from publisher.models import Article

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class BodyImage:
    """One local image of a body: its path as written (percent-decoded) and its 0-based line."""

    ref: str
    line: int


def local_ref(src: str) -> str | None:
    """The file path a rendered ``src`` names, or None for a URL, a site path or a fragment."""
    src = src.strip()
    if not src or src.startswith(("#", "/", "\\")) or _SCHEME.match(src):
        return None
    path = unquote(urlsplit(src).path)
    return path or None


def page_path(ref: str) -> str | None:
    """``ref`` normalised, relative to the article's page; None when it leaves the article's folder."""
    norm = posixpath.normpath(ref.replace("\\", "/"))
    if norm == "." or norm == ".." or norm.startswith("../"):
        return None
    return norm


@lru_cache(maxsize=256)
def body_images(body: str) -> tuple[BodyImage, ...]:
    """Every local image of a Markdown body, in order (a body without ``![`` is not parsed).

    Cached: the loader checks them and the build then copies them, in the same process,
    and parsing costs about as much as rendering the body.
    """
    if "![" not in body:
        return ()
    lines = body.split("\n")
    out: list[BodyImage] = []
    for block in markdown_parser().parse(body):
        if block.type != "inline" or not block.children:
            continue
        first, end = block.map or (0, 1)
        for token in (t for t in block.children if t.type == "image"):
            ref = local_ref(str(token.attrGet("src") or ""))
            if ref is None:
                continue
            name = ref.rsplit("/", 1)[-1]
            line = next((n for n in range(first, min(end, len(lines))) if name in lines[n]), first)
            out.append(BodyImage(ref, line))
    return tuple(out)


def body_media(article: Article) -> tuple[tuple[str, str], ...]:
    """(site path, source file) of each local body image of a loaded (so checked) article."""
    out: dict[str, str] = {}
    for image in body_images(article.body):
        rel = page_path(image.ref)
        if rel is not None:
            out.setdefault(f"{article.slug}/{rel}", str(article.source.parent / Path(rel)))
    return tuple(sorted(out.items()))


def file_problem(
    label: str,
    ref: str,
    file: Path,
    mime: str,
    names: tuple[str, ...],
    root: Path,
    shown: Callable[[Path], str],
) -> str | None:
    """What is wrong with a local image file (hero or body; ``names`` become its URL), or None."""
    unsafe = next((n for n in names if not _SAFE_FILE_NAME.match(n)), None)
    if not file.is_relative_to(root):
        return f"{label}: {ref!r} is outside {shown(root)}/; keep images inside it"
    if not file.is_file():
        return f"{label}: file not found: {ref!r} (looked for {shown(file)})"
    if not mime.startswith("image/"):
        return f"{label}: {ref!r} is not an image file (use .png, .jpg, .gif, .webp or .svg)"
    if unsafe is not None:
        return f"{label}: rename {unsafe!r} to letters, digits, '.', '-' and '_' only (it becomes a URL)"
    return None
