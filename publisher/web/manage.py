"""``/unsubscribe/{token}`` and ``/preferences/{token}``: the links in every mail.

A GET of the unsubscribe link only shows a button: mail scanners and link
previews fetch links, and must not unsubscribe anyone. The POST is RFC 8058's
one-click: whatever the body (``List-Unsubscribe=One-Click`` as urlencoded or
multipart, or our own button), no cookie, no CSRF token, 200 with a short page
and no redirect, idempotent, and the same answer for an address we no longer
have. The preferences form is CSRF-protected (see ``security``).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse

from publisher.errors import NotFoundError
from publisher.models import Frequency, Subscriber
from publisher.ops.sunset import resume
from publisher.store import Store
from publisher.store.engagement import Engagement
from publisher.tokens import Purpose, make_token
from publisher.web.context import WebContext
from publisher.web.forms import FieldProblem, FormError, check_choices, echo, one, timezones
from publisher.web.group_commit import GroupWriter
from publisher.web.pages import page, site_root
from publisher.web.requests import read_form, web_context
from publisher.web.security import button_page, check_csrf, check_same_origin, make_csrf, read_link_token

if TYPE_CHECKING:
    pass

router = APIRouter(include_in_schema=False)


def unsubscribe(store: Store, address: str, now: datetime) -> None:
    """Stop mail to ``address`` (a no-op if it is gone or already stopped)."""
    store.subscribers.unsubscribe_many([(address, now)])


class OneClickWriter(GroupWriter[tuple[str, datetime]]):
    """One-click unsubscribes, committed in groups (``group_commit``): each answered after its commit."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, store.subscribers.unsubscribe_many)

    async def unsubscribe(self, address: str, now: datetime) -> None:
        """Return once ``address`` is unsubscribed and committed (or raise what the write raised)."""
        await self.record((address, now))


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
        sunset_state=Engagement(ctx.store).state(sub.id) if sub.id is not None else None,
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
        saved = ctx.store.subscribers.update_preferences(
            address,
            now=now,
            **asdict(choices),
        )
        if saved.id is not None:
            resume(
                ctx.store, saved.id, now=now
            )  # sunsetting: saving here is the reader saying "keep sending"
        return saved

    updated = await run_in_threadpool(save)
    return await run_in_threadpool(_preferences_page, ctx, token, updated, saved=True)
