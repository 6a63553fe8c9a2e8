"""The JSON admin API under ``/api``, behind a bearer token.

The token comes from the environment variable ``web.api_token_env`` names.
With none set the API answers 503 "admin API disabled" instead of being open:
an admin API must never be reachable by accident. Tokens are compared in
constant time. Every answer, errors included, is a declared pydantic model.
"""

from __future__ import annotations

import hmac
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from publisher.errors import NotFoundError, PublisherError
from publisher.models import Subscriber
from publisher.ops.queue import QueueError, list_queue, queue_issue, unqueue_issue
from publisher.store.queue import QueuedIssue
from publisher.web.api_models import (
    DeliveryOut,
    ExportOut,
    IssueOut,
    QueuedOut,
    QueueIn,
    RemovedOut,
    SendOut,
    SubscriberOut,
    SubscriberRecordOut,
    UnqueuedOut,
    error_responses,
)
from publisher.web.context import WebContext
from publisher.web.requests import web_context

MAX_QUEUE_DAYS = 3660  # ten years: anything further is a typo


class ApiError(PublisherError):
    """An API refusal with its HTTP status (auth, disabled)."""

    def __init__(self, status: int, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.status = status


bearer = HTTPBearer(auto_error=False, description="the token in the variable web.api_token_env names")


def require_token(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None
) -> None:
    """The bearer check (declared through HTTPBearer so the OpenAPI schema shows the scheme)."""
    ctx = web_context(request)
    if not ctx.api_token:
        raise ApiError(
            503,
            "admin API disabled",
            hint=f"set the environment variable {ctx.settings.web.api_token_env} to a long random token",
        )
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), ctx.api_token.encode()):
        raise ApiError(401, "a valid bearer token is required", hint="send Authorization: Bearer <token>")


router = APIRouter(
    prefix="/api",
    tags=["admin"],
    dependencies=[Depends(require_token)],
    responses=error_responses(401, 503),
)


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


@router.get("/issues", response_model=list[IssueOut], summary="Issues found under paths.issues")
async def list_issues(request: Request) -> list[IssueOut]:
    ctx = web_context(request)
    library = await run_in_threadpool(lambda: ctx.topics.library)
    base = ctx.settings.site.url.rstrip("/")
    return [
        IssueOut(
            slug=i.slug,
            title=i.title,
            subject=i.subject,
            date=i.date,
            draft=i.draft,
            send_at=i.send_at,
            articles=len(i.articles),
            url=f"{base}/{i.articles[0].slug}/" if i.articles else base + "/",
        )
        for i in library.issues
    ]


@router.get("/sends", response_model=list[SendOut], summary="The newest sends with their delivery counts")
async def list_sends(request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[SendOut]:
    ctx = web_context(request)
    rows = await run_in_threadpool(ctx.store.ledger.sends, limit=limit)
    return [SendOut.model_validate({**asdict(info), **asdict(counts)}) for info, counts in rows]


def _no_such(email: str) -> NotFoundError:
    return NotFoundError("no such subscriber", hint="look the address up with `publisher subscribers list`")


async def _subscriber(ctx: WebContext, email: str) -> Subscriber:
    """The subscriber with this address, or the API's 404."""
    sub = await run_in_threadpool(ctx.store.subscribers.get, email)
    if sub is None:
        raise _no_such(email)
    return sub


@router.get(
    "/subscribers/{email}",
    response_model=SubscriberOut,
    responses=error_responses(404),
    summary="Look a subscriber up by address",
)
async def get_subscriber(request: Request, email: str) -> SubscriberOut:
    return subscriber_out(await _subscriber(web_context(request), email))


@router.delete(
    "/subscribers/{email}",
    response_model=RemovedOut,
    responses=error_responses(404),
    summary="Forget a subscriber entirely (their deliveries go too)",
)
async def remove_subscriber(request: Request, email: str) -> RemovedOut:
    ctx = web_context(request)
    sub = await _subscriber(ctx, email)
    removed = await run_in_threadpool(ctx.store.subscribers.remove, sub.email)
    return RemovedOut(email=sub.email, removed=removed)


@router.get(
    "/subscribers/{email}/export",
    response_model=ExportOut,
    responses=error_responses(404),
    summary="Everything stored about one subscriber (for a data-access request)",
)
async def export_subscriber(request: Request, email: str) -> ExportOut:
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


def queued_out(q: QueuedIssue) -> QueuedOut:
    return QueuedOut.model_validate(q, from_attributes=True)


@router.get("/queue", response_model=list[QueuedOut], summary="Queued issues (and missed or failed ones)")
async def get_queue(request: Request) -> list[QueuedOut]:
    ctx = web_context(request)
    rows = await run_in_threadpool(list_queue, ctx.store)
    return [queued_out(q) for q in rows]


@router.put(
    "/issues/{slug}/queue",
    response_model=QueuedOut,
    responses=error_responses(404, 409),
    summary="Queue an issue to be sent at a time (re-queuing moves it)",
)
async def put_queue(request: Request, slug: str, body: QueueIn) -> QueuedOut:
    ctx = web_context(request)
    now = ctx.now()
    at = body.at if body.at.tzinfo is not None else body.at.replace(tzinfo=ctx.settings.site.tz)
    try:
        ahead = at - now
    except OverflowError:
        ahead = None
    if ahead is None or abs(ahead.days) > MAX_QUEUE_DAYS or not 1900 < at.year < 9000:
        raise QueueError("that time is out of range", hint=f"queue within {MAX_QUEUE_DAYS} days from now")
    queued = await run_in_threadpool(lambda: queue_issue(ctx.settings, ctx.store, slug, at, now=now))
    return queued_out(queued)


@router.delete(
    "/issues/{slug}/queue",
    response_model=UnqueuedOut,
    responses=error_responses(409),
    summary="Take an issue off the queue",
)
async def delete_queue(request: Request, slug: str) -> UnqueuedOut:
    ctx = web_context(request)
    now = ctx.now()
    done = await run_in_threadpool(lambda: unqueue_issue(ctx.settings, ctx.store, slug, now=now))
    return UnqueuedOut(slug=slug, unqueued=done)
