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
from urllib.parse import urljoin

from markupsafe import Markup

from publisher.config import Settings
from publisher.models import Article
from publisher.render.templates import environment

PAGE_TEMPLATES = ("base.html", "archive.html", "article.html", "tag.html")
STATIC_DIR = "static"  # under templates/, copied as-is to <out>/static/
LATEST = 5  # "Latest news" on an article page
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


def human_date(d: datetime, settings: Settings) -> str:
    local = d.astimezone(settings.site.tz)
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


def _common(settings: Settings, path: str, feeds: list[dict[str, str]]) -> dict[str, object]:
    depth = path.count("/")
    site_url = settings.site.url.rstrip("/") + "/"
    return {
        "site": settings.site,
        "root": "../" * depth,
        "page_url": site_url + path,
        "subscribe_url": site_url + "subscribe",
        "feeds": feeds,
    }


def _render(settings: Settings, name: str, context: dict[str, object]) -> bytes:
    # "replace": a lone surrogate (a YAML "\\ud83c" escape) must not crash the whole build
    return environment(settings.paths.templates).get_template(name).render(context).encode("utf-8", "replace")


def archive_page(settings: Settings, articles: Sequence[Article]) -> bytes:
    """index.html: every published article, newest first, with its summary."""
    site_feeds = _feeds(settings, settings.site.title, "")
    ctx = _common(settings, "", site_feeds)
    ctx.update(
        heading=settings.site.title,
        intro=settings.site.description,
        entries=[entry(a, settings) for a in articles],
    )
    return _render(settings, "archive.html", ctx)


def tag_page(settings: Settings, tag: str, articles: Sequence[Article]) -> bytes:
    """tags/<tag>/index.html, advertising both the tag's feeds and the site's."""
    path = tag_path(tag)
    feeds = _feeds(settings, f"{settings.site.title}: {tag}", path) + _feeds(
        settings, settings.site.title, ""
    )
    ctx = _common(settings, path, feeds)
    ctx.update(
        heading=f"Tagged “{tag}”",
        intro=f"{len(articles)} article{'s' if len(articles) != 1 else ''} tagged {tag}.",
        entries=[entry(a, settings) for a in articles],
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
        image = article.image if re.match(r"^https?://", article.image) else ctx["root"] + article.image
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
