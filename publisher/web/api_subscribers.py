"""The admin API's subscriber routes: list (keyset pages), look up, add, change, erase, export.

Adding and changing go through the store's own checks (``store.values``), so a
name with an encoded word, a control character or markup, an unknown zone or
topic is refused with 422 here exactly as on the forms, the CSV import and the
CLI, and nothing is stored.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import BackgroundTasks, Query, Request
from starlette.concurrency import run_in_threadpool

from publisher.errors import NotFoundError
from publisher.models import Frequency, Subscriber, SubscriberStatus
from publisher.ops.feedback import erase_subscriber
from publisher.ops.welcome import welcome_confirmed
from publisher.store import Filter
from publisher.store.subscribers import SubscriberExistsError
from publisher.web.api_guard import ApiError, PathText, guarded_router
from publisher.web.api_models import (
    NO_CONTROLS,
    DeliveryOut,
    ExportOut,
    RemovedOut,
    SubscriberIn,
    SubscriberOut,
    SubscriberPageOut,
    SubscriberPatch,
    SubscriberRecordOut,
    error_responses,
)
from publisher.web.context import WebContext
from publisher.web.requests import web_context

router = guarded_router()
STOPPED_BY_MAIL = (SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED)


def subscriber_out(sub: Subscriber) -> SubscriberOut:
    return SubscriberOut(
        email=sub.email,
        name=sub.name,
        status=sub.status.value,
        frequency=sub.frequency.value,
        topics=list(sub.topics),
        timezone=sub.timezone,
        created_at=sub.created_at,
        updated_at=sub.updated_at,
    )


def _no_such(email: str) -> NotFoundError:
    return NotFoundError("no such subscriber", hint="look the address up with `publisher subscribers list`")


async def _subscriber(ctx: WebContext, email: str) -> Subscriber:
    """The subscriber with this address, or the API's 404."""
    sub = await run_in_threadpool(ctx.store.subscribers.get, email)
    if sub is None:
        raise _no_such(email)
    return sub


@router.get("/subscribers", response_model=SubscriberPageOut, summary="List subscribers, a page at a time")
async def list_subscribers(
    request: Request,
    status: SubscriberStatus | None = None,
    frequency: Frequency | None = None,
    topic: Annotated[str | None, Query(max_length=64, pattern=NO_CONTROLS)] = None,
    search: Annotated[
        str | None, Query(max_length=254, pattern=NO_CONTROLS, description="part of the address or name")
    ] = None,
    after: Annotated[int, Query(ge=0, le=2**62, description="the previous page's `next`")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> SubscriberPageOut:
    ctx = web_context(request)
    wanted = Filter(status=status, frequency=frequency, topic=topic, search=search)
    # one row more than asked: whether there is a next page, without a count
    rows = await run_in_threadpool(
        lambda: ctx.store.subscribers.list_after(wanted, after=after, limit=limit + 1)
    )
    page = rows[:limit]
    more = len(rows) > limit and page[-1].id is not None
    return SubscriberPageOut(items=[subscriber_out(s) for s in page], next=page[-1].id if more else None)


@router.post(
    "/subscribers",
    status_code=201,
    response_model=SubscriberOut,
    responses=error_responses(409),
    summary="Add a subscriber (confirmed unless said otherwise; no confirmation mail is sent)",
)
async def add_subscriber(request: Request, body: SubscriberIn, background: BackgroundTasks) -> SubscriberOut:
    ctx = web_context(request)
    now = ctx.now()
    try:
        sub = await run_in_threadpool(
            lambda: ctx.store.subscribers.add(body.email, now=now, **body.model_dump(exclude={"email"}))
        )
    except SubscriberExistsError as exc:
        raise ApiError(409, exc.message, hint="change it with PATCH /api/subscribers/{email}") from None
    _welcome_if_confirmed(ctx, sub, background)
    return subscriber_out(sub)


def _welcome_if_confirmed(ctx: WebContext, sub: Subscriber, background: BackgroundTasks) -> None:
    """A confirmed subscriber gets the welcome mail (once ever: ``ops.welcome``) after the response."""
    if sub.status is SubscriberStatus.CONFIRMED and sub.id is not None:
        background.add_task(
            welcome_confirmed, ctx.settings, ctx.store, sub.id, clock=ctx.clock, stop=ctx.stopping
        )


@router.patch(
    "/subscribers/{email}",
    response_model=SubscriberOut,
    responses=error_responses(404, 409),
    summary="Change a subscriber's name, frequency, topics, time zone, or confirm or unsubscribe them",
)
async def change_subscriber(
    request: Request, email: PathText, body: SubscriberPatch, background: BackgroundTasks
) -> SubscriberOut:
    ctx = web_context(request)
    sub = await _subscriber(ctx, email)
    status = SubscriberStatus(body.status) if body.status else None
    if status is SubscriberStatus.CONFIRMED and sub.status in STOPPED_BY_MAIL:
        raise ApiError(
            409,
            f"{sub.email} {sub.status.value}; it is not confirmed again by hand",
            hint="with their renewed consent: `publisher subscribers import --resubscribe`",
        )
    prefs = body.model_dump(exclude={"status"}, exclude_none=True)
    now = ctx.now()
    if prefs:  # every value is checked before anything is written
        sub = await run_in_threadpool(
            lambda: ctx.store.subscribers.update_preferences(sub.email, now=now, **prefs)
        )
    if status is not None and status is not sub.status:
        sub = await run_in_threadpool(lambda: ctx.store.subscribers.set_status(sub.email, status, now=now))
        _welcome_if_confirmed(ctx, sub, background)
    return subscriber_out(sub)


@router.get(
    "/subscribers/{email}",
    response_model=SubscriberOut,
    responses=error_responses(404),
    summary="Look a subscriber up by address",
)
async def get_subscriber(request: Request, email: PathText) -> SubscriberOut:
    return subscriber_out(await _subscriber(web_context(request), email))


@router.delete(
    "/subscribers/{email}",
    response_model=RemovedOut,
    responses=error_responses(404),
    summary="Erase a subscriber (row and deliveries go; the address stays unmailable as a keyed hash)",
)
async def remove_subscriber(request: Request, email: PathText) -> RemovedOut:
    ctx = web_context(request)
    sub = await _subscriber(ctx, email)
    now = ctx.now()
    removed = await run_in_threadpool(lambda: erase_subscriber(ctx.store, ctx.settings, sub.email, now=now))
    return RemovedOut(email=sub.email, removed=removed)


@router.get(
    "/subscribers/{email}/export",
    response_model=ExportOut,
    responses=error_responses(404),
    summary="Everything stored about one subscriber (for a data-access request)",
)
async def export_subscriber(request: Request, email: PathText) -> ExportOut:
    ctx = web_context(request)
    found = await run_in_threadpool(ctx.store.subscribers.export, email)
    if found is None:
        raise _no_such(email)
    record, deliveries = found
    return ExportOut(
        exported_at=ctx.now(),
        subscriber=SubscriberRecordOut(**record),
        deliveries=[DeliveryOut(**row) for row in deliveries],
    )
