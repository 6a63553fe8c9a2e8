"""``/unsubscribe/{token}`` and ``/preferences/{token}``: the links in every mail.

A GET of the unsubscribe link only shows a button: mail scanners and link
previews fetch links, and must not unsubscribe anyone. The POST is RFC 8058's
one-click: whatever the body (``List-Unsubscribe=One-Click`` as urlencoded or
multipart, or our own button), no cookie, no CSRF token, 200 with a short page
and no redirect, idempotent, and the same answer for an address we no longer
have. The preferences form is CSRF-protected (see ``security``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse

from publisher.errors import NotFoundError
from publisher.models import Frequency, Subscriber
from publisher.store import Store
from publisher.store.engine import BUSY_TIMEOUT_MS, WriteBusyError
from publisher.tokens import Purpose, make_token
from publisher.web.context import WebContext
from publisher.web.forms import FieldProblem, FormError, check_choices, echo, one, timezones
from publisher.web.pages import page, site_root
from publisher.web.requests import read_form, web_context
from publisher.web.security import button_page, check_csrf, check_same_origin, make_csrf, read_link_token

if TYPE_CHECKING:
    from sqlalchemy import Connection

router = APIRouter(include_in_schema=False)
BUSY_RETRY_SECONDS = 0.001  # another process holds SQLite's write lock: look again this soon


def unsubscribe(store: Store, address: str, now: datetime) -> None:
    """Stop mail to ``address`` (a no-op if it is gone or already stopped)."""
    store.subscribers.unsubscribe_many([(address, now)])


class OneClickWriter:
    """Group commit for one-click unsubscribes: one writer, one transaction per burst.

    Mailbox providers post these links in bursts right after a send, while the
    drain takes SQLite's write lock every few milliseconds. A read and a write
    per request from the threadpool made 40 threads queue for 15 pooled
    connections and sleep in SQLite's busy handler (1, 2, 5 ... 100 ms steps):
    315-660 req/s, p99 0.8-1.7 s in bench/web.py, and the drain fell to
    150-300 msg/s. Batching through the threadpool still paid ~7 ms (p99 60 ms)
    per hop on a busy event loop, for a 1 ms write. So on SQLite the batch is
    written on the loop itself, on a connection held for the burst, never
    waiting for the lock (``Store.write_now``): while another process writes,
    the loop serves requests and retries a millisecond later. Each request is
    answered only after the transaction holding its row has committed.
    PostgreSQL writes go through the threadpool (a network round trip).
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._waiting: list[tuple[str, datetime, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._conn: Connection | None = None

    async def unsubscribe(self, address: str, now: datetime) -> None:
        """Return once ``address`` is unsubscribed and committed (or raise what the write raised)."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((address, now, done))
        if self._task is None:
            self._task = asyncio.create_task(self._write_all())
        await done

    async def _write_all(self) -> None:
        batch: list[tuple[str, datetime, asyncio.Future[None]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await self._write([(address, now) for address, now, _ in batch])
                except Exception as exc:
                    for *_, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                else:
                    for *_, done in batch:
                        if not done.done():
                            done.set_result(None)
                batch = []
                await asyncio.sleep(0)  # let the requests read meanwhile join the next write
        finally:
            self._task = None
            if self._conn is not None:
                self._conn.close()  # back to the pool between bursts
                self._conn = None
            for *_, done in batch + self._waiting:  # only when cancelled (shutdown): never a false 200
                done.cancel()
            self._waiting = []

    async def _write(self, rows: list[tuple[str, datetime]]) -> None:
        subscribers = self._store.subscribers
        if self._store.dialect != "sqlite":
            await run_in_threadpool(subscribers.unsubscribe_many, rows)
            return
        if self._conn is None:  # the pool may make us wait: not on the loop
            self._conn = await run_in_threadpool(self._store.connect)
        give_up = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while time.monotonic() < give_up:
            try:
                subscribers.unsubscribe_many(rows, conn=self._conn)
                return
            except WriteBusyError:
                await asyncio.sleep(BUSY_RETRY_SECONDS)
        await run_in_threadpool(subscribers.unsubscribe_many, rows)  # wait as every writer does, or fail


def one_click_writer(request: Request) -> OneClickWriter:
    """The app's writer, made on first use (a store handed to ``create_app`` is used as is)."""
    writer: OneClickWriter | None = getattr(request.app.state, "one_click_writer", None)
    if writer is None:
        writer = OneClickWriter(web_context(request).store)
        request.app.state.one_click_writer = writer
    return writer


@router.api_route("/unsubscribe/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    title = f"Unsubscribe from {web_context(request).settings.site.title}"
    return await button_page(request, Purpose.UNSUBSCRIBE, token, "unsubscribe.html", title)


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
async def unsubscribe_post(request: Request, token: str) -> HTMLResponse:
    ctx = web_context(request)
    now = ctx.now()
    address, _ = read_link_token(ctx.secret, Purpose.UNSUBSCRIBE, token, now)
    await request.body()  # read (and size-check) whatever the client sent; its content does not matter
    await one_click_writer(request).unsubscribe(address, now)
    return page(
        ctx.settings,
        "unsubscribed.html",
        path="unsubscribe",
        title="You are unsubscribed",
        email=address,
        subscribe_url=site_root(ctx.settings) + "subscribe",
    )


def _preferences_page(
    ctx: WebContext,
    token: str,
    sub: Subscriber,
    *,
    status: int = 200,
    saved: bool = False,
    problems: list[FieldProblem] | None = None,
    values: dict[str, object] | None = None,
) -> HTMLResponse:
    root = site_root(ctx.settings)
    return page(
        ctx.settings,
        "preferences.html",
        status=status,
        path="preferences",
        title="Your subscription",
        email=sub.email,
        subscriber_status=sub.status.value,
        saved=saved,
        problems=problems or [],
        values=values
        or {
            "name": sub.name,
            "frequency": sub.frequency.value,
            "topics": list(sub.topics),
            "timezone": sub.timezone,
        },
        frequencies=[f.value for f in Frequency],
        topics=sorted(set(ctx.topics.topics) | set(sub.topics)),
        timezones=timezones(),
        csrf=make_csrf(ctx.secret, token),
        action=root + "preferences/" + token,
        unsubscribe_url=root + "unsubscribe/" + _unsubscribe_token(ctx, sub.email),
    )


def _unsubscribe_token(ctx: WebContext, address: str) -> str:
    return make_token(ctx.secret, Purpose.UNSUBSCRIBE, address)


def _current(store: Store, address: str) -> Subscriber:
    sub = store.subscribers.get(address)
    if sub is None:
        raise NotFoundError(
            "there is no subscription for this link any more", hint="subscribe again from the sign-up page"
        )
    return sub


@router.api_route("/preferences/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def preferences_form(request: Request, token: str) -> HTMLResponse:
    ctx = web_context(request)
    address, _ = read_link_token(ctx.secret, Purpose.PREFERENCES, token, ctx.now())
    sub = await run_in_threadpool(_current, ctx.store, address)
    return await run_in_threadpool(_preferences_page, ctx, token, sub)


@router.post("/preferences/{token}", response_class=HTMLResponse)
async def preferences_save(request: Request, token: str) -> HTMLResponse:
    ctx = web_context(request)
    now = ctx.now()
    check_same_origin(request, ctx.settings.site.url)
    address, _ = read_link_token(ctx.secret, Purpose.PREFERENCES, token, now)
    form = await read_form(request)
    check_csrf(ctx.secret, token, one(form, "csrf"))
    sub = await run_in_threadpool(_current, ctx.store, address)
    known = await run_in_threadpool(lambda: ctx.topics.topics)
    problems: list[FieldProblem] = []
    # topics already stored stay choosable even if no current article carries them
    choices = check_choices(form, sorted(set(known) | set(sub.topics)), problems)
    if problems:
        values: dict[str, object] = {
            "name": echo(one(form, "name")),
            "frequency": choices.frequency.value,
            "topics": list(choices.topics),
            "timezone": echo(one(form, "timezone"), 64),
        }
        return await run_in_threadpool(
            lambda: _preferences_page(
                ctx, token, sub, status=FormError.status, problems=problems, values=values
            )
        )

    def save() -> Subscriber:
        return ctx.store.subscribers.update_preferences(
            address,
            now=now,
            **asdict(choices),
        )

    updated = await run_in_threadpool(save)
    return await run_in_threadpool(_preferences_page, ctx, token, updated, saved=True)
