"""Feeds: RSS 2.0, Atom 1.0 and JSON Feed 1.1 from published articles (pure, no I/O).

The orchestrator passes the rendered HTML of each article (slug -> HTML), so
feeds never import ``render``; dates come from the content, never the clock,
so the same content always gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from publisher.config import Settings
from publisher.feeds.common import (
    FeedInfo,
    Item,
    absolutize,
    article_url,
    clean,
    make_items,
    site_feed_info,
    tag_feed_info,
)
from publisher.feeds.jsonfeed import json_bytes
from publisher.feeds.xml import atom_bytes, rss_bytes
from publisher.models import Article

FEED_FILES = ("feed.xml", "atom.xml", "feed.json")
MEDIA_TYPES = {
    "feed.xml": "application/rss+xml",
    "atom.xml": "application/atom+xml",
    "feed.json": "application/feed+json",
}

__all__ = [
    "FEED_FILES",
    "MEDIA_TYPES",
    "FeedInfo",
    "Item",
    "absolutize",
    "article_url",
    "atom_bytes",
    "clean",
    "feed_files",
    "json_bytes",
    "make_items",
    "rss_bytes",
    "site_feed_info",
    "site_feeds",
    "tag_feed_info",
    "tag_feeds",
]


def feed_files(
    settings: Settings,
    info: FeedInfo,
    articles: Sequence[Article],
    html_by_slug: Mapping[str, str],
) -> dict[str, bytes]:
    """The three feeds for ``articles`` (newest ``feeds.max_items``), keyed by file name."""
    items = make_items(settings.site, articles, html_by_slug, settings.feeds.max_items)
    return {
        "feed.xml": rss_bytes(info, items),
        "atom.xml": atom_bytes(info, items),
        "feed.json": json_bytes(info, items),
    }


def site_feeds(
    settings: Settings, articles: Sequence[Article], html_by_slug: Mapping[str, str]
) -> dict[str, bytes]:
    """feed.xml, atom.xml and feed.json for the whole site."""
    return feed_files(settings, site_feed_info(settings.site), articles, html_by_slug)


def tag_feeds(
    settings: Settings,
    tag: str,
    path: str,
    articles: Sequence[Article],
    html_by_slug: Mapping[str, str],
) -> dict[str, bytes]:
    """The same three feeds for one tag, served from ``path`` (e.g. ``tags/science/``)."""
    return feed_files(settings, tag_feed_info(settings.site, tag, path), articles, html_by_slug)
