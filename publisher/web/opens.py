"""``GET /o/<token>``: a send's 1x1 image, counted as an open when ``analytics.opens`` is on.

The token names a send only (``render.pixel``), so what is counted is a load
of that send's image, classified from the user agent and the timing
(``ops.opens``) and stored as its class alone: no IP, no user agent, nobody.

With opens off the path answers 404 and records nothing, whatever the token.
With opens on, a forged, altered or foreign token, or one naming no send we
have, is answered 400 and records nothing, but still with the transparent GIF
as its body: a mail client shows no broken-image box even if a gateway mangled
the URL, while the status tells anything watching that it did not count.
Loads are written by a group-commit writer (``web.group_commit``), and the
image is answered after its load is committed.
"""

from __future__ import annotations

import base64

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from publisher.errors import NotFoundError
from publisher.ops.opens import classify_open
from publisher.store import Store
from publisher.store.opens import Open, OpenTarget
from publisher.tokens import Purpose, TokenError, read_token
from publisher.web.group_commit import GroupWriter
from publisher.web.requests import web_context

router = APIRouter()
MAX_CACHED_SENDS = 1_000
# The smallest transparent 1x1 GIF (GIF89a, one transparent colour), 43 bytes.
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_HEADERS = {
    "Cache-Control": "no-store, no-cache, must-revalidate, private, max-age=0",  # every open asks again
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Cross-Origin-Resource-Policy": "cross-origin",  # loaded from inside webmail pages
}


class OpenWriter(GroupWriter[Open]):
    """The app's writer of open events, and the started sends it has looked up (their start is fixed)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, store.opens.record)
        self._lookup = store.opens.target
        self.sends: dict[str, OpenTarget] = {}

    async def target(self, send_key: str) -> OpenTarget | None:
        found = self.sends.get(send_key)
        if found is None:
            found = await run_in_threadpool(self._lookup, send_key)
            if found is not None and found.started:
                if len(self.sends) >= MAX_CACHED_SENDS:
                    self.sends.clear()
                self.sends[send_key] = found
        return found


def open_writer(request: Request) -> OpenWriter:
    """The app's writer, made on first use."""
    writer: OpenWriter | None = getattr(request.app.state, "open_writer", None)
    if writer is None:
        writer = OpenWriter(web_context(request).store)
        request.app.state.open_writer = writer
    return writer


def _image(status: int) -> Response:
    return Response(content=GIF, status_code=status, media_type="image/gif", headers=_HEADERS)


@router.api_route("/o/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def image(request: Request, token: str) -> Response:
    ctx = web_context(request)
    settings = ctx.settings
    if not settings.analytics.opens:
        raise NotFoundError("nothing here", hint="opens are not counted on this site")
    try:
        send_key = read_token(ctx.secret, Purpose.OPEN, token)
    except TokenError:
        return _image(400)
    writer = open_writer(request)
    target = await writer.target(send_key)
    if target is None:
        return _image(400)
    now = ctx.now()
    kind = classify_open(
        request.method,
        request.headers.get("user-agent", ""),
        now,
        target.send_started,
        settings.analytics.prefetch_seconds,
    )
    await writer.record(Open(target.send_id, now, kind))
    return _image(200)
