"""What a web page says about its article: the author, the date and the hero image.

When a page gives several, the most deliberate statement wins:

- author: JSON-LD ``author.name`` (structured data that search engines show,
  so publishers keep it right), then ``<meta name="author">`` (page-wide, often
  the site or a CMS default), then the text of a ``rel=author`` link (a byline
  link whose text may be anything);
- date: JSON-LD ``datePublished``, then ``article:published_time`` (both name
  the publication date), then the first ``<time datetime>`` of the article,
  then of the page (a page's first time may be an update or a comment's date);
- hero image: ``og:image`` (the picture the editor chose to represent the
  page), then the first ``<figure>``'s ``<img>`` (it may be an inline chart).
  A local file next to the page is copied on import; a remote URL is kept as
  the ``image:`` URL, never downloaded.

Every value is hostile: each passes `field_text` (controls out, lengths
capped) and JSON-LD that is malformed, huge or deeply nested is skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import lxml.html

from publisher.importer_text import field_text

AUTHOR_LIMIT = 200
ALT_LIMIT = 300
URL_LIMIT = 2000
_JSON_LD_LIMIT = 256 * 1024  # bytes of one script; real ones are a few KB
_JSON_LD_NODES = 200  # nodes looked at across a page's scripts
_AUTHORS = 10  # names kept from an author list
_ARTICLE_TYPE = re.compile(r"(Article|Posting|Report|Review)$")
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg"})  # what the loader accepts


@dataclass(frozen=True)
class PageMeta:
    """The page's metadata, cleaned; empty values where the page says nothing usable."""

    author: str = ""
    published: date | datetime | None = None
    image: str = ""  # an http(s) URL
    image_file: Path | None = None  # a local file inside the page's folder
    image_alt: str = ""


def page_meta(
    doc: lxml.html.HtmlElement, root: lxml.html.HtmlElement, base: str, folder: Path | None
) -> PageMeta:
    """Read before the page is stripped: bylines and JSON-LD live in headers and scripts."""
    nodes = list(_json_ld_nodes(doc))
    image, image_file, alt = _hero_image(doc, root, base, folder)
    return PageMeta(
        author=_author(doc, nodes),
        published=_published(doc, root, nodes),
        image=image,
        image_file=image_file,
        image_alt=alt,
    )


# -- author and date -----------------------------------------------------------------------


def _author(doc: lxml.html.HtmlElement, nodes: list[dict[str, Any]]) -> str:
    by_id = {n["@id"]: n for n in nodes if isinstance(n.get("@id"), str)}
    for node in _ranked(nodes):
        names = list(dict.fromkeys(n for n in _names(node.get("author"), by_id) if n))
        if names:
            return field_text(", ".join(names[:_AUTHORS]), AUTHOR_LIMIT)
    meta = doc.xpath("//meta[translate(@name, 'AUTHOR', 'author')='author']/@content")
    for value in meta:
        if text := field_text(str(value), AUTHOR_LIMIT):
            return text
    rel = "//a[contains(concat(' ', normalize-space(translate(@rel, 'AUTHOR', 'author')), ' '), ' author ')]"
    for link in doc.xpath(rel):
        text = field_text(re.sub(r"^\s*by\s+", "", link.text_content(), flags=re.I), AUTHOR_LIMIT)
        if text:
            return text
    return ""


def _names(value: Any, by_id: dict[str, dict[str, Any]], depth: int = 0) -> Iterator[str]:
    """Author names from a string, a Person, an @id reference or a list of those."""
    if isinstance(value, str):
        yield field_text(value, AUTHOR_LIMIT)
    elif isinstance(value, list) and depth == 0:
        for item in value[:_AUTHORS]:
            yield from _names(item, by_id, depth + 1)
    elif isinstance(value, dict):
        name = value.get("name")
        if not isinstance(name, str) and isinstance(value.get("@id"), str):
            name = by_id.get(value["@id"], {}).get("name")
        if isinstance(name, str):
            yield field_text(name, AUTHOR_LIMIT)


def _published(
    doc: lxml.html.HtmlElement, root: lxml.html.HtmlElement, nodes: list[dict[str, Any]]
) -> date | datetime | None:
    candidates: list[object] = [node.get("datePublished") for node in _ranked(nodes)]
    candidates += doc.xpath(
        "//meta[@property='article:published_time' or @name='article:published_time']/@content"
    )
    candidates += root.xpath(".//time/@datetime") + doc.xpath("//time/@datetime")
    for value in candidates:
        if isinstance(value, str) and (parsed := parse_date(value)) is not None:
            return parsed
    return None


def parse_date(value: str) -> date | datetime | None:
    """An ISO 8601 date, or date and time (its zone kept); None for anything else."""
    text = field_text(value, 64)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text)
        if re.match(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", text):
            return datetime.fromisoformat(text)
    except ValueError:
        return None
    return None


# -- JSON-LD --------------------------------------------------------------------------------


def _json_ld_nodes(doc: lxml.html.HtmlElement) -> Iterator[dict[str, Any]]:
    """Every object of the page's JSON-LD (top level and @graph), skipping scripts that do not parse."""
    seen = 0
    for script in doc.xpath("//script[@type]"):
        if script.get("type", "").split(";")[0].strip().lower() != "application/ld+json":
            continue
        text = script.text or ""
        if len(text) > _JSON_LD_LIMIT:
            continue
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            continue
        for node in _flatten(data):
            seen += 1
            if seen > _JSON_LD_NODES:
                return
            yield node


def _flatten(data: Any) -> Iterator[dict[str, Any]]:
    items = data if isinstance(data, list) else [data]
    for item in items[:_JSON_LD_NODES]:
        if not isinstance(item, dict):
            continue
        yield item
        graph = item.get("@graph")
        for node in graph[:_JSON_LD_NODES] if isinstance(graph, list) else [graph]:
            if isinstance(node, dict):
                yield node


def _ranked(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Article-like nodes first: a WebPage or WebSite node may carry the site's own author or date."""

    def is_article(node: dict[str, Any]) -> bool:
        kinds = node.get("@type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        return any(isinstance(k, str) and _ARTICLE_TYPE.search(k) for k in kinds)

    return sorted(nodes, key=lambda node: not is_article(node))


# -- hero image -----------------------------------------------------------------------------


def _hero_image(
    doc: lxml.html.HtmlElement, root: lxml.html.HtmlElement, base: str, folder: Path | None
) -> tuple[str, Path | None, str]:
    """(URL, local file, alt text) of the hero image; empty when there is none usable."""
    og_alt = _meta_property(doc, "og:image:alt")
    candidates = [(ref, og_alt) for ref in _meta_properties(doc, "og:image")]
    for scope in (root, doc):
        for img in scope.xpath(".//figure//img")[:1]:
            ref = img.get("src") or img.get("data-src") or ""
            candidates.append((ref, img.get("alt") or og_alt))
    for ref, alt in candidates:
        url, file = _image_ref(ref, base, folder)
        if url or file:
            return url, file, field_text(alt, ALT_LIMIT)
    return "", None, ""


def _image_ref(ref: str, base: str, folder: Path | None) -> tuple[str, Path | None]:
    """A remote image as its absolute URL, or a local one as the file next to the page."""
    ref = field_text(ref, URL_LIMIT + 1)
    if not ref or len(ref) > URL_LIMIT:
        return "", None
    if ref.startswith("//"):
        ref = "https:" + ref
    parts = urlsplit(ref)
    if parts.scheme:
        ok = parts.scheme.lower() in ("http", "https") and parts.netloc and " " not in ref
        return (ref, None) if ok else ("", None)
    if folder is not None and parts.path and not parts.path.startswith("/"):
        here = folder.resolve()
        file = (here / unquote(parts.path)).resolve()
        if file.is_relative_to(here) and file.suffix.lower() in _IMAGE_SUFFIXES and file.is_file():
            return "", file
    if base:
        joined = urljoin(base, ref)
        if urlsplit(joined).scheme in ("http", "https") and " " not in joined:
            return joined, None
    return "", None


def _meta_properties(doc: lxml.html.HtmlElement, name: str) -> list[str]:
    return [str(v) for v in doc.xpath(f"//meta[@property='{name}' or @name='{name}']/@content")]


def _meta_property(doc: lxml.html.HtmlElement, name: str) -> str:
    found = _meta_properties(doc, name)
    return found[0] if found else ""
