"""``GET/POST /subscribe`` and ``GET/POST /confirm/{token}``: double opt-in.

A sign-up never tells the visitor whether the address was known: the page is
the same and is answered *before* the store is touched (the registration and
its mail, confirm or "you are already subscribed", run after the response),
so neither content nor timing depends on the address's state. A confirmed
subscriber is never put back to pending, an existing row's choices are only
replaced while it is not confirmed (a stranger cannot change someone's
subscription by typing their address), and an address that bounced or
complained gets no mail at all (a sign-up form must not become a way to mail
someone who reported us).

A GET of the confirm link only shows a button: link scanners and mail
prefetchers fetch links, and must not confirm a sign-up a third party
started. Only the button's POST (same-origin; the link itself is the secret,
no cookie needed) confirms.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime

from fastapi import APIRouter, BackgroundTasks, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse

from publisher.errors import PublisherError
from publisher.models import Frequency, Subscriber, SubscriberStatus
from publisher.ops.confirm import send_confirmation
from publisher.ops.feedback import unsuppress
from publisher.ops.welcome import welcome_confirmed
from publisher.store import Store, SubscriberExistsError
from publisher.store.values import mailbox_key
from publisher.tokens import Purpose, TokenError, make_token
from publisher.web.context import WebContext
from publisher.web.forms import (
    Choices,
    FieldProblem,
    FormError,
    check_choices,
    check_email,
    echo,
    one,
    timezones,
    zone_aliases,
)
from publisher.web.pages import error_page, page, public_url, site_root
from publisher.web.requests import read_form, web_context
from publisher.web.security import button_page, check_same_origin, read_link_token

log = logging.getLogger("publisher.web")
router = APIRouter(include_in_schema=False)
NO_MAIL = (SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED)


@dataclass(frozen=True)
class Registration:
    address: str
    name: str
    already: bool  # confirmed before: send "already subscribed", not a confirm link
    mail: bool = True  # False: the address bounced or complained, it gets nothing


def register(store: Store, address: str, choices: Choices, now: datetime) -> Registration:
    """Add the address as pending, or refresh a not-yet-confirmed row's choices."""
    current = store.subscribers.get(address)
    if current is None:
        try:
            store.subscribers.add(
                address,
                now=now,
                status=SubscriberStatus.PENDING,
                **asdict(choices),
            )
            return Registration(address, choices.name, already=False)
        except SubscriberExistsError:  # a second sign-up won the race
            current = store.subscribers.get(address)
            assert current is not None
    if current.status in NO_MAIL:
        return Registration(address, current.name, already=False, mail=False)
    if current.status is SubscriberStatus.CONFIRMED:
        return Registration(address, current.name, already=True)
    store.subscribers.update_preferences(
        address,
        now=now,
        **asdict(choices),
    )
    return Registration(address, choices.name, already=False)


def register_and_mail(ctx: WebContext, address: str, choices: Choices, now: datetime) -> None:
    """The sign-up's work, run after the answer has gone out (so it cannot be timed)."""
    try:
        reg = register(ctx.store, address, choices, now)
    except PublisherError as exc:
        log.error("sign-up of %s not recorded: %s", address, exc.message)
        return
    if reg.mail:
        send_confirmation(
            ctx.settings,
            ctx.secret,
            reg.address,
            reg.name,
            already=reg.already,
            now=now,
            base_url=public_url(ctx.settings),  # the links lead to this app, wherever it is reached
            stop=ctx.stopping,
        )


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def confirm(ctx: WebContext, address: str, issued_us: int, now: datetime) -> Subscriber | None:
    """Confirm (idempotent). None when there is no such row, or the link predates the row's leaving.

    A confirm link mailed before the subscriber unsubscribed (or bounced, or
    complained) must not bring them back, so it counts only if it was issued
    strictly after the moment mail last stopped, compared to the microsecond:
    a tie is refused. A confirmation is proof of intent: it takes the address
    off the suppression list (an erased or unsubscribed address that signs up again).
    """
    store = ctx.store
    current = store.subscribers.get(address)
    if current is None:
        return None
    if current.status is SubscriberStatus.CONFIRMED:
        return current
    if current.status in NO_MAIL:
        return None
    left = current.unsubscribed_at
    if left is not None and issued_us <= _micros(left):
        return None
    confirmed = store.subscribers.set_status(address, SubscriberStatus.CONFIRMED, now=now)
    unsuppress(store, ctx.settings, address)
    return confirmed


def _form_values(ctx: WebContext, **given: object) -> dict[str, object]:
    values: dict[str, object] = {
        "email": "",
        "name": "",
        "frequency": Frequency.INSTANT.value,
        "topics": [],
        "timezone": ctx.settings.site.timezone,
    }
    values.update(given)
    return values


def _subscribe_page(
    ctx: WebContext,
    *,
    status: int = 200,
    problems: list[FieldProblem] | None = None,
    values: dict[str, object] | None = None,
) -> HTMLResponse:
    return page(
        ctx.settings,
        "subscribe.html",
        status=status,
        path="subscribe",
        title=f"Subscribe to {ctx.settings.site.title}",
        problems=problems or [],
        values=values or _form_values(ctx),
        frequencies=[f.value for f in Frequency],
        topics=ctx.topics.topics,
        timezones=timezones(),
        zone_aliases=zone_aliases(),
    )


@router.api_route("/subscribe", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def subscribe_form(request: Request) -> HTMLResponse:
    ctx = web_context(request)
    return await run_in_threadpool(_subscribe_page, ctx)


@router.post("/subscribe", response_class=HTMLResponse)
async def subscribe(request: Request, background: BackgroundTasks) -> HTMLResponse:
    ctx = web_context(request)
    now = ctx.now()
    client = request.client.host if request.client else "unknown"
    if not await run_in_threadpool(ctx.ip_buckets.take, client, now.timestamp()):  # a query on PostgreSQL
        return _too_many(ctx, await run_in_threadpool(ctx.ip_buckets.retry_after, client, now.timestamp()))
    form = await read_form(request)
    problems: list[FieldProblem] = []
    address = check_email(one(form, "email"), problems)
    topics = await run_in_threadpool(lambda: ctx.topics.topics)
    choices = check_choices(form, topics, problems, ctx.settings.site.timezone)
    if problems:
        values = _form_values(
            ctx,
            email=echo(one(form, "email")),
            name=echo(one(form, "name")),
            frequency=choices.frequency.value,
            topics=list(choices.topics),
            timezone=echo(one(form, "timezone"), 64),
        )
        return await run_in_threadpool(
            lambda: _subscribe_page(ctx, status=FormError.status, problems=problems, values=values)
        )
    mailbox = mailbox_key(address)
    if not await run_in_threadpool(ctx.address_buckets.take, mailbox, now.timestamp()):
        return _too_many(
            ctx, await run_in_threadpool(ctx.address_buckets.retry_after, mailbox, now.timestamp())
        )
    background.add_task(register_and_mail, ctx, address, choices, now)
    return page(
        ctx.settings, "subscribe_sent.html", path="subscribe", title="Check your inbox", email=address
    )


def _too_many(ctx: WebContext, retry_after: int) -> HTMLResponse:
    return error_page(
        ctx.settings,
        429,
        "Too many sign-ups",
        "Too many sign-up attempts came from here or for this address.",
        hint=f"wait about {max(1, retry_after // 60)} minute(s) and try again",
        headers={"Retry-After": str(max(1, retry_after))},
    )


@router.api_route("/confirm/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def confirm_page(request: Request, token: str) -> HTMLResponse:
    title = f"Confirm your subscription to {web_context(request).settings.site.title}"
    return await button_page(request, Purpose.CONFIRM, token, "confirm.html", title)


@router.post("/confirm/{token}", response_class=HTMLResponse)
async def confirm_post(request: Request, token: str, background: BackgroundTasks) -> HTMLResponse:
    ctx = web_context(request)
    check_same_origin(request, ctx.settings.site.url)
    now = ctx.now()
    address, issued_us = read_link_token(ctx.secret, Purpose.CONFIRM, token, now)
    await request.body()  # read (and size-check) the body; the button sends nothing we need
    sub = await run_in_threadpool(confirm, ctx, address, issued_us, now)
    if sub is None:
        raise TokenError("this link is no longer valid", hint="subscribe again to get a new link")
    if sub.id is not None:  # the welcome mail, once ever (ops.welcome), after the answer has gone out
        background.add_task(
            welcome_confirmed, ctx.settings, ctx.store, sub.id, clock=ctx.clock, stop=ctx.stopping
        )
    prefs = site_root(ctx.settings) + "preferences/" + make_token(ctx.secret, Purpose.PREFERENCES, address)
    return page(
        ctx.settings, "confirmed.html", path="confirm", title="Subscription confirmed", preferences_url=prefs
    )
