"""JSON Feed 1.1 (https://jsonfeed.org/version/1.1) with the stdlib json module.

feedgen has no JSON Feed, and the format is small enough that a library would
add nothing; key order is fixed so the bytes are stable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from publisher.feeds.common import FeedInfo, Item

VERSION = "https://jsonfeed.org/version/1.1"


def _rfc3339(d: datetime) -> str:
    return d.isoformat().replace("+00:00", "Z")


def json_bytes(info: FeedInfo, items: Sequence[Item]) -> bytes:
    feed: dict[str, Any] = {
        "version": VERSION,
        "title": info.title,
        "home_page_url": info.home_url,
        "feed_url": info.base_url + "feed.json",
        "description": info.description,
        "language": info.language,
        "authors": [{"name": info.author_name}],
        "items": [_item(i) for i in items],
    }
    return (json.dumps(feed, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _item(item: Item) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": item.id,
        "url": item.url,
        "title": item.title,
        "content_html": item.content_html,
        "summary": item.summary,
        "date_published": _rfc3339(item.date),
        "date_modified": _rfc3339(item.date),
        "authors": [{"name": item.author}],
    }
    if item.tags:
        out["tags"] = list(item.tags)
    if item.image_url:
        out["image"] = item.image_url
        if item.image_type:
            attachment: dict[str, Any] = {"url": item.image_url, "mime_type": item.image_type}
            if item.image_length > 0:
                attachment["size_in_bytes"] = item.image_length
            out["attachments"] = [attachment]
    return out
