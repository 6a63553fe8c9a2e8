"""What the three feed formats share: feed metadata, cleaned items, absolute URLs.

Everything here is pure string work: feeds receive rendered HTML from the
orchestrator and never import ``render``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

from publisher.config import SiteConfig
from publisher.models import Article

# XML 1.0 forbids C0 controls other than tab/CR/LF, lone surrogates and U+FFFE/U+FFFF;
# C1 controls are legal but the W3C validator flags them (they are nearly always
# mojibake), so they go too. lxml refuses such strings outright.
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# markdown-it writes every attribute double-quoted and escaped, so a regex is exact here.
_URL_ATTR = re.compile(r'(\s(?:href|src)=")([^"]*)(")')
_ABSOLUTE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*:")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def clean(text: str) -> str:
    """Drop characters XML cannot carry (a stray control character must not break a feed)."""
    return _ILLEGAL_XML.sub("", text)


def absolutize(fragment: str, base_url: str) -> str:
    """Make every href/src in an HTML fragment absolute against ``base_url``.

    Feed readers show content out of the page's context, so a relative link or
    image would point at the reader's own host (and the W3C validator warns).
    """

    def fix(m: re.Match[str]) -> str:
        url = html.unescape(m.group(2))
        if _ABSOLUTE.match(url):
            return m.group(0)
        return m.group(1) + html.escape(urljoin(base_url, url), quote=True) + m.group(3)

    return _URL_ATTR.sub(fix, fragment)


@dataclass(frozen=True)
class FeedInfo:
    """What a feed says about itself; ``base_url`` is the folder holding its three files."""

    title: str
    description: str
    home_url: str  # the HTML page this feed mirrors (absolute, ends with /)
    base_url: str  # absolute folder URL of feed.xml / atom.xml / feed.json (ends with /)
    language: str
    author_name: str
    author_email: str

    @property
    def id(self) -> str:
        """The Atom feed id: the page it mirrors, stable as long as the URL is."""
        return canonical(self.home_url)


def canonical(url: str) -> str:
    """Lower-case scheme and host (the validator warns on non-canonical ids)."""
    parts = urlsplit(url)
    return parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower()).geturl()


def site_feed_info(site: SiteConfig) -> FeedInfo:
    root = site.url.rstrip("/") + "/"
    return FeedInfo(
        title=clean(site.title),
        description=clean(site.description or site.title),
        home_url=root,
        base_url=root,
        language=site.language,
        author_name=clean(site.author.name),
        author_email=site.author.email,
    )


def tag_feed_info(site: SiteConfig, tag: str, path: str) -> FeedInfo:
    """Feeds of one tag, living at ``path`` (e.g. ``tags/climate/``) beside its page."""
    url = site.url.rstrip("/") + "/" + path.strip("/") + "/"
    return FeedInfo(
        title=clean(f"{site.title}: {tag}"),
        description=clean(f"Articles tagged {tag} in {site.title}"),
        home_url=url,
        base_url=url,
        language=site.language,
        author_name=clean(site.author.name),
        author_email=site.author.email,
    )


@dataclass(frozen=True)
class Item:
    """One article as every feed format needs it: cleaned text, absolute URLs, UTC date."""

    id: str
    url: str
    title: str
    summary: str  # plain text
    content_html: str
    date: datetime  # UTC
    author: str
    tags: tuple[str, ...]
    image_url: str | None
    image_type: str
    image_length: int

    @property
    def has_enclosure(self) -> bool:
        """RSS/Atom enclosures need a type and a positive length (the validator rejects 0)."""
        return bool(self.image_url and self.image_type and self.image_length > 0)


def article_url(site_url: str, slug: str) -> str:
    return f"{site_url.rstrip('/')}/{slug}/"


def make_items(
    site: SiteConfig, articles: Sequence[Article], html_by_slug: Mapping[str, str], max_items: int
) -> list[Item]:
    """The newest ``max_items`` published articles, newest first, ready for any format."""
    chosen = sorted((a for a in articles if not a.draft), key=lambda a: (-a.date.timestamp(), a.slug))
    items = []
    for a in chosen[:max_items]:
        url = article_url(site.url, a.slug)
        image = urljoin(site.url.rstrip("/") + "/", a.image) if a.image else None
        title = clean(a.title).strip() or a.slug
        items.append(
            Item(
                id=a.id or url,
                url=url,
                title=title,
                summary=clean(a.summary).strip() or title,
                content_html=clean(absolutize(html_by_slug.get(a.slug, ""), url)),
                date=a.date.astimezone(UTC),
                author=clean(a.author or site.author.name),
                tags=tuple(clean(t) for t in a.tags if clean(t).strip()),
                image_url=image,
                image_type=a.image_type,
                image_length=a.image_length,
            )
        )
    return items


def newest_date(items: Sequence[Item]) -> datetime:
    """Feed-level updated: the newest item's date, never the build time (stable bytes)."""
    return max((i.date for i in items), default=EPOCH)
