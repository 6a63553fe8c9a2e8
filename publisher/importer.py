"""`publisher import`: plain-text or HTML articles to Markdown issues.

Pure conversion (text in, Markdown out) plus a plan that says which file each
import would write; only the CLI writes. A web page's trailing boilerplate
("Latest news", comment prompts, share buttons) is dropped so an imported
article reads like the article, and nothing is overwritten without --force.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date as date_type
from datetime import datetime
from pathlib import Path
from urllib.parse import urljoin

import lxml.html
import yaml
from lxml import etree
from markdownify import markdownify

from publisher.config import Settings
from publisher.content import DATE_HINT, clean_line, known_slugs, slugify, summarize, when_value
from publisher.errors import ContentError, Problem, relpath

_WS = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_END_PUNCT = ".,;:!?…"
_CLOSERS = "\"'”’»)]"
_URL = re.compile(r"^(https?://|www\.)\S+$", re.I)
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
# class or id words of page furniture that sits inside an article element
_FURNITURE = re.compile(
    r"(?:^|[\s_-])(?:ads?|advert\w*|promo\w*|sponsor\w*|share|sharing|social|related|comments?|"
    r"newsletter|subscribe|signup|byline|breadcrumbs?|tags|author-bio|cookie\w*)(?:$|[\s_-])",
    re.I,
)
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


@dataclass(frozen=True)
class ImportedArticle:
    """An article read from a foreign format: a title, a Markdown body and a plain summary."""

    title: str
    body: str
    summary: str


@dataclass(frozen=True)
class ImportPlan:
    """What one import would write (the CLI writes it)."""

    source: Path
    path: Path  # <out>/<slug>.md
    slug: str
    title: str
    text: str
    unchanged: bool  # the file is already there with exactly this text


# -- plain text ------------------------------------------------------------------------


def from_text(text: str) -> ImportedArticle:
    """First non-empty line the title, short unpunctuated lines headings, blank-line paragraphs."""
    blocks = _blocks(text.removeprefix("\ufeff"))
    if not blocks:
        raise ValueError("the file is empty")
    title = clean_line(blocks[0][0])
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


# -- HTML --------------------------------------------------------------------------------


def from_html(html: str) -> ImportedArticle:
    """The page's article (<article>, <main>, else the largest text block) as Markdown."""
    html = re.sub(r"^\s*<\?xml[^>]*\?>", "", html)  # lxml refuses str input with an encoding declaration
    try:
        doc = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        raise ValueError("not an HTML page with any text in it") from None
    for comment in doc.xpath("//comment()"):
        _drop(comment)
    root = _content_root(doc)
    heading = root.find(".//h1")
    if heading is None:
        heading = doc.find(".//h1")
    title = clean_line(heading.text_content()) if heading is not None else ""
    if not title:
        title = _page_title(doc)
    if heading is not None and _inside(heading, root):
        _drop(heading)
    for el in root.xpath(" | ".join(f".//{t}" for t in _DROP_TAGS)):
        _drop(el)
    for el in root.xpath(".//*[@role='navigation' or @role='complementary' or @aria-hidden='true']"):
        _drop(el)
    for el in root.iter("h1"):
        el.tag = "h2"  # the title is the only level-one heading
    for el in root.xpath(".//*[@class or @id]"):
        if _FURNITURE.search(f"{el.get('class', '')} {el.get('id', '')}"):
            _drop(el)
    base = _base_url(doc)
    for a in root.iter("a"):
        href = (a.get("href") or "").strip()
        if not re.match(r"^(https?:|mailto:)", href, re.I):
            if base and href and not href.startswith(("#", "javascript:")):
                a.set("href", urljoin(base, href))
            else:
                a.drop_tag()
    fragment = lxml.html.tostring(root, encoding="unicode")
    markdown = markdownify(fragment, heading_style="ATX", bullets="-", newline_style="BACKSLASH")
    body = _tidy(markdown)
    if not title:
        raise ValueError("no title found: the page has no <h1> and no <title>")
    return ImportedArticle(title, body, summarize(body))


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
        return clean_line(str(og[0]))
    title = doc.find(".//title")
    if title is None:
        return ""
    text = clean_line(title.text_content())
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


# -- the issue file ----------------------------------------------------------------------


def convert(name: str, data: bytes) -> ImportedArticle:
    """Pick the reader by extension (or by sniffing for an <html> tag)."""
    text = _decode(data)
    head = text[:2048].lower()
    if name.lower().endswith((".html", ".htm", ".xhtml")) or "<html" in head or "<!doctype html" in head:
        return from_html(text)
    return from_text(text)


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def issue_markdown(article: ImportedArticle, when: date_type | datetime, tags: Sequence[str]) -> str:
    """The .md file: front matter (title, date, tags, summary) then the body."""
    meta: dict[str, object] = {"title": article.title, "date": when}
    if tags:
        meta["tags"] = list(tags)
    if article.summary:
        meta["summary"] = article.summary
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1_000_000)
    return f"---\n{front}---\n\n{article.body}"


def plan_imports(
    settings: Settings,
    sources: Sequence[tuple[Path, bytes]],
    out: Path,
    *,
    now: datetime,
    date: str | None = None,
    tags: Sequence[str] = (),
    force: bool = False,
) -> list[ImportPlan]:
    """Convert every source and decide its target; raise every problem at once, write nothing."""
    problems: list[Problem] = []
    when: date_type | datetime = now.date()
    if date is not None:
        try:
            parsed = when_value(date, settings.site.tz)
            when = parsed.date() if re.fullmatch(r"\d{4}-\d{2}-\d{2}", date.strip()) else parsed
        except ValueError as exc:
            problems.append(Problem("--date", str(exc)))
    tag_slugs = list(dict.fromkeys(s for s in (slugify(t) for t in tags) if s))
    for t in tags:
        if not slugify(t):
            problems.append(Problem("--tag", f"{t!r} is not a tag (use words, letters or digits)"))
    taken = known_slugs(settings) if out.resolve() == settings.paths.issues.resolve() else {}
    plans: list[ImportPlan] = []
    planned: dict[str, Path] = {}
    for source, data in sources:
        where = relpath(source)
        try:
            article = convert(source.name, data)
        except ValueError as exc:
            problems.append(Problem(where, str(exc)))
            continue
        slug = slugify(article.title) or slugify(source.stem) or "article"
        path = out / f"{slug}.md"
        text = issue_markdown(article, when, tag_slugs)
        if slug in planned:
            problems.append(Problem(where, f"has the same title (slug {slug!r}) as {relpath(planned[slug])}"))
            continue
        planned[slug] = source
        owner = taken.get(slug)
        unchanged = path.is_file() and path.read_bytes() == text.encode("utf-8")
        if owner is not None and Path(settings.base_dir / owner).resolve() != path.resolve():
            problems.append(
                Problem(where, f"slug {slug!r} is already used by {owner}; rename that file first")
            )
        elif (out / slug).is_dir():
            problems.append(Problem(where, f"{relpath(out / slug)}/ is already an issue with slug {slug!r}"))
        elif path.exists() and not unchanged and not force:
            problems.append(Problem(where, f"{relpath(path)} exists and differs; pass --force to replace it"))
        plans.append(ImportPlan(source, path, slug, article.title, text, unchanged))
    if problems:
        hint = DATE_HINT if any(p.where == "--date" for p in problems) else None
        raise ContentError(problems, hint=hint)
    return plans
