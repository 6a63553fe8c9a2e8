"""``GET /r/<token>``: count a click, then send the reader where the mail's link went (302).

The token names a send and a link number (``tokens.click_token``); the URL
comes from what the send recorded (``store.clicks``), so no token, forged or
not, can redirect anywhere a mail did not link to. A bad token, or one for a
link no send recorded, is answered 400 and nothing is written.

Served by ``RedirectMiddleware``, a plain ASGI layer installed *inside*
``GuardMiddleware`` (so the security headers, the size limits and the
control-character check apply exactly as to every route) but in front of
FastAPI's router: routing through every route, building a ``Request`` and
solving dependencies cost about as much as the rest of a redirect (measured
with py-spy, ``docs/performance.md``). Errors are answered by the app's own
handlers (``handlers.publisher_error``), so a bad link shows the same page as
anywhere else.

Clicks are written by a group-commit writer (``group_commit.GroupWriter``,
shared with opens and one-click unsubscribes), so a burst of clicks after a
send costs one transaction, not one per request. The redirect is answered
after its click is committed. Looked-up links are kept in memory (a link's URL never
changes once recorded; a send's start is cached only once it is known).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from publisher.errors import PublisherError
from publisher.ops.clicks import classify
from publisher.store import Store
from publisher.store.clicks import Click, LinkTarget
from publisher.tokens import TokenError, read_click_token, read_reader_token
from publisher.web import handlers
from publisher.web.context import WebContext
from publisher.web.group_commit import GroupWriter

PREFIX = "/r/"
METHODS = ("GET", "HEAD")
MAX_CACHED_LINKS = 10_000
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"  # what stays as written; spaces, controls, non-ASCII get %-encoded
_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-robots-tag", b"noindex"),
    (b"content-length", b"0"),
]


class ClickWriter(GroupWriter[Click]):
    """The app's writer of click events, and the links it has looked up (a recorded URL never changes)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, store.clicks.record)
        self._lookup = store.clicks.target
        self.links: dict[tuple[str, int], LinkTarget] = {}

    async def target(self, send_key: str, link_no: int) -> LinkTarget | None:
        """The recorded link (from memory once its send's start is known)."""
        found = self.links.get((send_key, link_no))
        if found is None:
            found = await run_in_threadpool(self._lookup, send_key, link_no)
            if found is not None and found.send_started is not None:
                if len(self.links) >= MAX_CACHED_LINKS:
                    self.links.clear()
                self.links[(send_key, link_no)] = found
        return found


def click_writer(app: FastAPI) -> ClickWriter:
    """The app's writer, made on first use (kept on ``app.state``: one per app, whatever serves it)."""
    writer: ClickWriter | None = getattr(app.state, "click_writer", None)
    if writer is None:
        writer = ClickWriter(_context(app).store)
        app.state.click_writer = writer
    return writer


def _context(app: FastAPI) -> WebContext:
    ctx: WebContext = app.state.web
    return ctx


def _user_agent(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"user-agent":
            return value.decode("latin-1")
    return ""


async def follow(app: FastAPI, method: str, token: str, user_agent: str) -> bytes:
    """Count the click of ``token`` and return the ``Location`` to send the reader to.

    Raises ``TokenError`` (400) for a bad token or a link no send recorded.
    """
    ctx = _context(app)
    link, _, reader = token.partition(".")  # per-subscriber links: <click token>.<reader token>
    send_key, link_no = read_click_token(ctx.secret, link)
    reader_id = read_reader_token(ctx.secret, send_key, reader) if reader else None  # altered: 400
    writer = click_writer(app)
    target = await writer.target(send_key, link_no)
    if target is None:
        raise TokenError("this link is not valid")
    now = ctx.now()
    kind = classify(method, user_agent, now, target.send_started, ctx.settings.analytics.prefetch_seconds)
    who = reader_id if ctx.settings.analytics.per_subscriber else None  # off: nothing names the reader
    await writer.record(Click(target.link_id, now, kind, who))
    return quote(target.url, safe=_URL_SAFE).encode("ascii")


class RedirectMiddleware:
    """Answers ``/r/<token>`` (one path segment) itself; passes every other request on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root + "/"):  # the app mounted under a path (as ``is_api`` reads it)
            path = path[len(root) :]
        token = path[len(PREFIX) :]
        if not path.startswith(PREFIX) or not token or "/" in token:
            await self.app(scope, receive, send)
            return
        app: FastAPI = scope["app"]
        method = scope["method"]
        try:
            if method not in METHODS:
                raise HTTPException(405, headers={"Allow": ", ".join(METHODS)})
            location = await follow(app, method, token, _user_agent(scope))
        except PublisherError as exc:
            await (await handlers.publisher_error(Request(scope), exc))(scope, receive, send)
            return
        except HTTPException as exc:
            await (await handlers.http_error(Request(scope), exc))(scope, receive, send)
            return
        except Exception as exc:
            response: Response = await handlers.unexpected(Request(scope), exc)
            await response(scope, receive, send)
            return
        headers = [(b"location", location), *_HEADERS]
        await send({"type": "http.response.start", "status": 302, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def install(app: FastAPI) -> None:
    """Serve ``/r/<token>``: call before adding ``GuardMiddleware``, so the guard wraps it."""
    app.add_middleware(RedirectMiddleware)
