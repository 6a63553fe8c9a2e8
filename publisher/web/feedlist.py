"""``/feeds`` and ``/feeds.opml``: every feed the site publishes, for people and for feed readers.

The site's three feeds and each tag's three (``tags/<tag>/``), listed from the
content's tags (drafts' tags left out, as the build leaves them out). OPML 2.0
is what feed readers import to follow many feeds at once; it is built with
``xml.sax.saxutils`` escaping, so a tag or a title can never break the XML.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from publisher.config import Settings
from publisher.web.pages import page
from publisher.web.requests import web_context

router = APIRouter(include_in_schema=False)
KINDS = (("feed.xml", "RSS", "rss"), ("atom.xml", "Atom", "atom"), ("feed.json", "JSON Feed", "json"))


@dataclass(frozen=True)
class FeedGroup:
    title: str
    path: str  # '' for the site, 'tags/<tag>/' for a tag
    links: tuple[tuple[str, str, str], ...]  # (absolute URL, label, OPML type)


def feed_groups(settings: Settings, tags: tuple[str, ...]) -> list[FeedGroup]:
    base = settings.site.url.rstrip("/") + "/"
    groups = [(settings.site.title, "")] + [(f"{settings.site.title}: {t}", f"tags/{t}/") for t in tags]
    return [
        FeedGroup(title, path, tuple((base + path + name, label, kind) for name, label, kind in KINDS))
        for title, path in groups
    ]


@router.api_route("/feeds", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def feeds_page(request: Request) -> HTMLResponse:
    ctx = web_context(request)
    tags = await run_in_threadpool(lambda: ctx.topics.topics)
    return page(
        ctx.settings,
        "feeds.html",
        path="feeds",
        title=f"Feeds of {ctx.settings.site.title}",
        groups=feed_groups(ctx.settings, tags),
    )


@router.api_route("/feeds.opml", methods=["GET", "HEAD"])
async def feeds_opml(request: Request) -> Response:
    ctx = web_context(request)
    tags = await run_in_threadpool(lambda: ctx.topics.topics)
    body = opml(ctx.settings, feed_groups(ctx.settings, tags))
    return Response(body, media_type="text/x-opml; charset=utf-8", headers={"Cache-Control": "no-cache"})


def opml(settings: Settings, groups: list[FeedGroup]) -> bytes:
    """OPML 2.0 with one outline per feed (the RSS one of each group; readers want one per source)."""
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<opml version="2.0">',
        f"<head><title>{_text(settings.site.title)} feeds</title></head>",
        "<body>",
    ]
    for group in groups:
        url, _, kind = group.links[0]
        html_url = settings.site.url.rstrip("/") + "/" + group.path
        lines.append(
            f"<outline type={quoteattr(kind)} text={quoteattr(group.title)} title={quoteattr(group.title)}"
            f" xmlUrl={quoteattr(url)} htmlUrl={quoteattr(html_url)}/>"
        )
    lines += ["</body>", "</opml>", ""]
    return "\n".join(lines).encode("utf-8")


def _text(value: str) -> str:
    return quoteattr(value)[1:-1]
