"""HTML pages to Markdown: the article (<article>, <main>, else the largest text block).

Page furniture (navigation, ads, share and comment blocks, a trailing "Related
news") is dropped so the import reads like the article; the page's author,
date and hero image are read first (`importer_page`), before the headers and
scripts that carry them are stripped.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin

import lxml.html
from lxml import etree
from markdownify import markdownify

from publisher.content import summarize
from publisher.importer_page import page_meta
from publisher.importer_text import TITLE_LIMIT, ImportedArticle, drop_boilerplate, field_text

# class or id words of page furniture that sits inside an article element
_FURNITURE = re.compile(
    r"(?:^|[\s_-])(?:ads?|advert\w*|promo\w*|sponsor\w*|share|sharing|social|related|comments?|"
    r"newsletter|subscribe|signup|byline|breadcrumbs?|tags|author-bio|cookie\w*)(?:$|[\s_-])",
    re.I,
)
_DROP_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "footer",
    "header",
    "aside",
    "form",
    "iframe",
    "svg",
    "button",
    "input",
    "select",
    "textarea",
    "figure",
    "img",
)


def from_html(html: str, folder: Path | None = None) -> ImportedArticle:
    """The page's article as Markdown, with its author, date and hero image (local files in ``folder``)."""
    html = re.sub(r"^\s*<\?xml[^>]*\?>", "", html)  # lxml refuses str input with an encoding declaration
    try:
        doc = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        raise ValueError("not an HTML page with any text in it") from None
    for comment in doc.xpath("//comment()"):
        _drop(comment)
    root = _content_root(doc)
    base = _base_url(doc)
    meta = page_meta(doc, root, base, folder)
    title = _title(doc, root)
    if not title:
        raise ValueError("no title found: the page has no <h1> and no <title>")
    _strip(root)
    _fix_links(root, base)
    fragment = lxml.html.tostring(root, encoding="unicode")
    markdown = markdownify(fragment, heading_style="ATX", bullets="-", newline_style="BACKSLASH")
    body = _tidy(markdown)
    return ImportedArticle(
        title,
        body,
        summarize(body),
        author=meta.author,
        published=meta.published,
        image=meta.image,
        image_file=meta.image_file,
        image_alt=meta.image_alt,
    )


def _title(doc: lxml.html.HtmlElement, root: lxml.html.HtmlElement) -> str:
    """The article's <h1> (dropped from the body), else the page's og:title or <title>."""
    heading = root.find(".//h1")
    if heading is None:
        heading = doc.find(".//h1")
    title = field_text(heading.text_content(), TITLE_LIMIT) if heading is not None else ""
    if heading is not None and _inside(heading, root):
        _drop(heading)
    return title or field_text(_page_title(doc), TITLE_LIMIT)


def _strip(root: lxml.html.HtmlElement) -> None:
    """Drop page furniture; the title is the only level-one heading."""
    for el in root.xpath(" | ".join(f".//{t}" for t in _DROP_TAGS)):
        _drop(el)
    for el in root.xpath(".//*[@role='navigation' or @role='complementary' or @aria-hidden='true']"):
        _drop(el)
    for el in root.iter("h1"):
        el.tag = "h2"
    for el in root.xpath(".//*[@class or @id]"):
        if _FURNITURE.search(f"{el.get('class', '')} {el.get('id', '')}"):
            _drop(el)


def _fix_links(root: lxml.html.HtmlElement, base: str) -> None:
    """Relative links made absolute against the page's address, or unlinked when it has none."""
    for a in root.iter("a"):
        href = (a.get("href") or "").strip()
        if not re.match(r"^(https?:|mailto:)", href, re.I):
            if base and href and not href.startswith(("#", "javascript:")):
                a.set("href", urljoin(base, href))
            else:
                a.drop_tag()


def _content_root(doc: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    for path in (".//article", ".//main", ".//*[@role='main']"):
        found = doc.findall(path) if not path.startswith(".//*") else doc.xpath(path)
        if found:
            return max(found, key=lambda el: len(el.text_content()))
    best, score = None, 0
    for el in doc.iter("div", "section", "td", "body"):
        text = sum(len(p.text_content()) for p in el if getattr(p, "tag", None) == "p")
        if text > score:
            best, score = el, text
    return best if best is not None else doc


def _page_title(doc: lxml.html.HtmlElement) -> str:
    og = doc.xpath("//meta[@property='og:title']/@content")
    if og:
        return str(og[0])
    title = doc.find(".//title")
    if title is None:
        return ""
    text = field_text(title.text_content(), TITLE_LIMIT * 5)
    return re.split(r"\s+[|–—-]\s+", text)[0] if text else ""


def _base_url(doc: lxml.html.HtmlElement) -> str:
    """Where the page lives, so relative links can be made absolute (else they are unlinked)."""
    for xpath in ("//base/@href", "//link[@rel='canonical']/@href", "//meta[@property='og:url']/@content"):
        found = doc.xpath(xpath)
        if found and re.match(r"^https?://[^/\s]+", str(found[0]).strip()):
            return str(found[0]).strip()
    return ""


def _inside(el: etree._Element, root: etree._Element) -> bool:
    return any(parent is root for parent in el.iterancestors()) or el is root


def _drop(el: etree._Element) -> None:
    """Remove an element but keep the text that follows it."""
    parent = el.getparent()
    if parent is None:
        return
    tail = el.tail
    prev = el.getprevious()
    parent.remove(el)
    if tail:
        if prev is not None:
            prev.tail = (prev.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail


def _tidy(markdown: str) -> str:
    lines = [line.rstrip() for line in markdown.replace("\r\n", "\n").split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    blocks = [b.split("\n") for b in text.split("\n\n") if b.strip()]
    kept = drop_boilerplate(blocks)
    return "\n\n".join("\n".join(b) for b in kept) + "\n" if kept else ""
