"""Web archive pages: the archive index, one page per article, one per tag.

Pure rendering through the shared jinja2 environment (autoescaped, so titles
are escaped everywhere). Links between pages are relative, so the site works
under any base path; feed autodiscovery and canonical links are absolute
because readers and crawlers use them out of context.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

from markupsafe import Markup

from publisher.config import Settings
from publisher.models import Article
from publisher.render.templates import environment

PAGE_TEMPLATES = ("base.html", "archive.html", "article.html", "tag.html")
STATIC_DIR = "static"  # under templates/, copied as-is to <out>/static/
LATEST = 5  # "Latest news" on an article page
PER_PAGE = 50  # entries per archive or tag page
FEED_TYPES = (
    ("feed.xml", "application/rss+xml", "RSS"),
    ("atom.xml", "application/atom+xml", "Atom"),
    ("feed.json", "application/feed+json", "JSON Feed"),
)
_HEADING = re.compile(r"<(/?)h([1-6])>")


def tag_path(tag: str) -> str:
    """Where a tag's page and feeds live (tags are already URL-safe slugs)."""
    return f"tags/{tag}/"


def article_path(slug: str) -> str:
    return f"{slug}/"


@dataclass(frozen=True)
class Entry:
    """An article as lists show it."""

    slug: str
    title: str
    when: str
    iso: str
    author: str
    summary: str


@dataclass(frozen=True)
class Pager:
    """Where a list page sits among its siblings (links are relative to the page)."""

    label: str  # e.g. "Articles 51-100", "" on the first page
    newer: str | None  # link to the page of newer entries (rel=prev)
    older: str | None  # link to the page of older entries (rel=next)
    start: int  # number of the page's first (newest) entry, counting from the oldest


def page_chunks(n: int, per_page: int = PER_PAGE) -> list[tuple[int, int, int]]:
    """(page number, first, end) over ``n`` entries newest first; page 0 is the index page.

    Pages are counted from the oldest entry, so a new article only changes the index
    page (which holds the newest ``per_page`` to ``2 * per_page - 1`` entries) and
    page N always shows the same articles: a rebuild rewrites few pages and links
    to older pages never go stale.
    """
    count = max(1, n // per_page)  # pages including the index
    top = n - (count - 1) * per_page
    out = [(0, 0, top)]
    for c in range(count - 1, 0, -1):
        first = n - c * per_page
        out.append((c, first, first + per_page))
    return out


def list_page_path(folder: str, page: int) -> str:
    """``folder`` + index.html for page 0, else ``folder`` + page/<n>/index.html."""
    return f"{folder}index.html" if page == 0 else f"{folder}page/{page}/index.html"


def pager_for(page: int, count: int, n: int, per_page: int = PER_PAGE) -> Pager | None:
    """The pager of page ``page`` of a list of ``count`` pages over ``n`` entries (None if one page)."""
    if count <= 1:
        return None
    if page == 0:
        return Pager("", None, f"page/{count - 1}/", n)
    newer = "../../" if page == count - 1 else f"../../page/{page + 1}/"
    older = f"../../page/{page - 1}/" if page > 1 else None
    lo = (page - 1) * per_page + 1
    return Pager(f"Articles {lo}–{lo + per_page - 1}", newer, older, lo + per_page - 1)


def human_date(d: datetime, settings: Settings) -> str:
    return _human_date(d, settings.site.timezone)


@lru_cache(maxsize=1 << 15)
def _human_date(d: datetime, timezone: str) -> str:
    """Cached: an article is shown in a dozen lists (the newest ones on every article page).

    Keyed by the instant, which is all the local date depends on.
    """
    local = d.astimezone(ZoneInfo(timezone))
    return f"{local.day} {local:%B %Y}"


def entry(a: Article, settings: Settings) -> Entry:
    return Entry(
        slug=a.slug,
        title=a.title,
        when=human_date(a.date, settings),
        iso=a.date.isoformat(),
        author=a.author or "",
        summary=a.summary,
    )


def demote_headings(html: str) -> str:
    """Map the body's heading levels onto h2, h3, ... in order.

    The page's h1 is the article title, so a body '# Heading' must not be a
    second h1, and levels the body skips (h1 then h3) must not leave a gap.
    """
    used = sorted({int(level) for _, level in _HEADING.findall(html)})
    if not used:
        return html
    new = {level: min(6, 2 + i) for i, level in enumerate(used)}
    return _HEADING.sub(lambda m: f"<{m.group(1)}h{new[int(m.group(2))]}>", html)


def _feeds(settings: Settings, title: str, path: str) -> list[dict[str, str]]:
    base = settings.site.url.rstrip("/") + "/" + path
    return [
        {"href": base + name, "type": kind, "title": f"{title} ({label})"} for name, kind, label in FEED_TYPES
    ]


def _common(
    settings: Settings, path: str, feeds: list[dict[str, str]], pager: Pager | None = None
) -> dict[str, object]:
    depth = path.count("/")
    site_url = settings.site.url.rstrip("/") + "/"
    return {
        "site": settings.site,
        "root": "../" * depth,
        "page_url": site_url + path,
        "subscribe_url": site_url + "subscribe",
        "feeds": feeds,
        "pager": pager,
    }


def _render(settings: Settings, name: str, context: dict[str, object]) -> bytes:
    # "replace": a lone surrogate (a YAML "\\ud83c" escape) must not crash the whole build
    return environment(settings.paths.templates).get_template(name).render(context).encode("utf-8", "replace")


def archive_page(
    settings: Settings, articles: Sequence[Article], pager: Pager | None = None, page: int = 0
) -> bytes:
    """index.html (or page/<n>/index.html): published articles, newest first, with summaries."""
    path = list_page_path("", page).removesuffix("index.html")
    ctx = _common(settings, path, _feeds(settings, settings.site.title, ""), pager)
    ctx.update(
        heading=settings.site.title,
        intro=settings.site.description if page == 0 else (pager.label if pager else ""),
        entries=[entry(a, settings) for a in articles],
    )
    return _render(settings, "archive.html", ctx)


def tag_page(
    settings: Settings,
    tag: str,
    articles: Sequence[Article],
    pager: Pager | None = None,
    page: int = 0,
    total: int | None = None,
) -> bytes:
    """tags/<tag>/index.html (or its page/<n>/), advertising both the tag's feeds and the site's."""
    folder = tag_path(tag)
    path = list_page_path(folder, page).removesuffix("index.html")
    feeds = _feeds(settings, f"{settings.site.title}: {tag}", folder) + _feeds(
        settings, settings.site.title, ""
    )
    ctx = _common(settings, path, feeds, pager)
    n = len(articles) if total is None else total
    ctx.update(
        heading=f"Tagged “{tag}”",
        intro=f"{n} article{'s' if n != 1 else ''} tagged {tag}."
        if page == 0
        else pager.label
        if pager
        else "",
        entries=[entry(a, settings) for a in articles],
        tag_feeds=[{**f, "label": label} for f, (_, _, label) in zip(feeds, FEED_TYPES, strict=False)],
    )
    return _render(settings, "tag.html", ctx)


def article_page(
    settings: Settings,
    article: Article,
    html: str,
    latest: Sequence[Article],
    related: Sequence[Article],
) -> bytes:
    """<slug>/index.html: the article, then "Related news" and "Latest news"."""
    path = article_path(article.slug)
    ctx = _common(settings, path, _feeds(settings, settings.site.title, ""))
    image = None
    if article.image:
        image = article.image if re.match(r"^https?://", article.image) else f"{ctx['root']}{article.image}"
    ctx.update(
        article={
            "title": article.title,
            "summary": article.summary,
            "author": article.author or "",
            "when": human_date(article.date, settings),
            "iso": article.date.isoformat(),
            "tags": article.tags,
            "image": image,
            "image_alt": article.image_alt,
        },
        body=Markup(demote_headings(html)),  # markdown-it output: raw HTML in the source is escaped
        latest=[entry(a, settings) for a in latest],
        related=[entry(a, settings) for a in related],
    )
    return _render(settings, "article.html", ctx)


def latest_for(article: Article, newest: Sequence[Article], n: int = LATEST) -> list[Article]:
    """The newest articles other than ``article`` (``newest`` is newest first)."""
    return [a for a in newest[: n + 1] if a.slug != article.slug][:n]


def absolute(settings: Settings, path: str) -> str:
    return urljoin(settings.site.url.rstrip("/") + "/", path)
