"""``GET /r/<token>``: count a click, then send the reader where the mail's link went (302).

The token names a send and a link number (``tokens.click_token``); the URL
comes from what the send recorded (``store.clicks``), so no token, forged or
not, can redirect anywhere a mail did not link to. A bad token, or one for a
link no send recorded, is answered 400 and nothing is written.

Clicks are written like one-click unsubscribes (``manage.OneClickWriter``):
by one group-commit writer, on SQLite on the event loop with a connection held
for the burst and never waiting for the lock, so a burst of clicks after a send
costs one transaction, not one per request. The redirect is answered after its
click is committed. Looked-up links are kept in memory (a link's URL never
changes once recorded; a send's start is cached only once it is known).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from publisher.ops.clicks import classify
from publisher.store import Store
from publisher.store.clicks import Click, LinkTarget
from publisher.store.engine import BUSY_TIMEOUT_MS, WriteBusyError
from publisher.tokens import TokenError, read_click_token
from publisher.web.requests import web_context

if TYPE_CHECKING:
    from sqlalchemy import Connection

router = APIRouter()
BUSY_RETRY_SECONDS = 0.001
MAX_CACHED_LINKS = 10_000
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"  # what stays as written; spaces, controls, non-ASCII get %-encoded
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


class ClickWriter:
    """Group commit for click events: one writer, one transaction per burst (see the module doc)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._waiting: list[tuple[Click, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._conn: Connection | None = None
        self.links: dict[tuple[str, int], LinkTarget] = {}

    async def record(self, click: Click) -> None:
        """Return once ``click`` is committed (or raise what the write raised)."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((click, done))
        if self._task is None:
            self._task = asyncio.create_task(self._write_all())
        await done

    async def _write_all(self) -> None:
        batch: list[tuple[Click, asyncio.Future[None]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await self._write([c for c, _ in batch])
                except Exception as exc:
                    _settle(batch, exc)
                else:
                    _settle(batch, None)
                batch = []
                await asyncio.sleep(0)  # let requests arriving meanwhile join the next write
        finally:
            self._task = None
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            for _, done in batch + self._waiting:  # only when cancelled (shutdown)
                done.cancel()
            self._waiting = []

    async def _write(self, clicks: list[Click]) -> None:
        record = self._store.clicks.record
        if self._store.dialect != "sqlite":
            await run_in_threadpool(record, clicks)
            return
        if self._conn is None:
            self._conn = await run_in_threadpool(self._store.connect)
        give_up = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while time.monotonic() < give_up:
            try:
                record(clicks, conn=self._conn)
                return
            except WriteBusyError:
                await asyncio.sleep(BUSY_RETRY_SECONDS)
        await run_in_threadpool(record, clicks)

    async def target(self, send_key: str, link_no: int) -> LinkTarget | None:
        """The recorded link (from memory once its send's start is known)."""
        found = self.links.get((send_key, link_no))
        if found is None:
            found = await run_in_threadpool(self._store.clicks.target, send_key, link_no)
            if found is not None and found.send_started is not None:
                if len(self.links) >= MAX_CACHED_LINKS:
                    self.links.clear()
                self.links[(send_key, link_no)] = found
        return found


def _settle(batch: list[tuple[Click, asyncio.Future[None]]], exc: Exception | None) -> None:
    for _, done in batch:
        if not done.done():
            if exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)


def click_writer(request: Request) -> ClickWriter:
    """The app's writer, made on first use."""
    writer: ClickWriter | None = getattr(request.app.state, "click_writer", None)
    if writer is None:
        writer = ClickWriter(web_context(request).store)
        request.app.state.click_writer = writer
    return writer


@router.api_route("/r/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def follow(request: Request, token: str) -> Response:
    ctx = web_context(request)
    send_key, link_no = read_click_token(ctx.secret, token)
    writer = click_writer(request)
    target = await writer.target(send_key, link_no)
    if target is None:
        raise TokenError("this link is not valid")
    now = ctx.now()
    kind = classify(
        request.method,
        request.headers.get("user-agent", ""),
        now,
        target.send_started,
        ctx.settings.analytics.prefetch_seconds,
    )
    await writer.record(Click(target.link_id, now, kind))
    return Response(status_code=302, headers={"Location": quote(target.url, safe=_URL_SAFE), **_HEADERS})
