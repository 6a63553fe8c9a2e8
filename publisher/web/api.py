"""The JSON admin API under ``/api``, behind a bearer token.

This module is the API's one router: the token check and the text rule are
``api_guard``'s (every route is a ``GuardedRoute``), and it includes the parts
kept in their own modules: subscribers (``api_subscribers``), starting a send
(``api_send``) and the reference page at ``/api/docs`` (``api_docs``). Every
answer, errors included, is a declared pydantic model (``api_models``).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from publisher.errors import NotFoundError
from publisher.ops.queue import QueueError, list_queue, queue_issue, unqueue_issue
from publisher.store import SendCounts, SendInfo
from publisher.store.queue import QueuedIssue
from publisher.web import api_docs, api_report, api_send, api_subscribers
from publisher.web.api_guard import ApiError, GuardedRoute, PathText, bearer, require_token
from publisher.web.api_models import (
    ErrorOut,
    IssueOut,
    QueuedOut,
    QueueIn,
    SendOut,
    UnqueuedOut,
    error_responses,
)
from publisher.web.requests import web_context

__all__ = ["ApiError", "require_token", "router"]  # ApiError, require_token: for handlers and archive

MAX_QUEUE_DAYS = 3660  # ten years: anything further is a typo


router = APIRouter(
    prefix="/api",
    tags=["admin"],
    dependencies=[Depends(bearer)],
    responses={
        **error_responses(401, 503),
        429: {"model": ErrorOut, "description": "Too many wrong tokens from this client; see Retry-After"},
    },
    route_class=GuardedRoute,
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
    outcomes = await run_in_threadpool(ctx.store.feedback.outcomes_for, [info.id for info, _ in rows])
    return [_send_out(info, counts, outcomes.get(info.id, {})) for info, counts in rows]


@router.get(
    "/sends/{send_id}",
    response_model=SendOut,
    responses=error_responses(404),
    summary="One send: its delivery counts and what came back (bounces, complaints, unsubscribes)",
)
async def get_send(request: Request, send_id: Annotated[int, Path(ge=1, le=2**62)]) -> SendOut:
    ctx = web_context(request)
    info = await run_in_threadpool(ctx.store.ledger.get_send_by_id, send_id)
    if info is None:
        raise NotFoundError(f"no send {send_id}")
    counts = await run_in_threadpool(ctx.store.ledger.counts, send_id)
    outcomes = await run_in_threadpool(ctx.store.feedback.outcomes_by_send, send_id)
    by_domain = await run_in_threadpool(ctx.store.feedback.outcomes_by_domain, send_id)
    return _send_out(info, counts, outcomes, by_domain)


def _send_out(
    info: SendInfo,
    counts: SendCounts,
    outcomes: dict[str, int],
    by_domain: dict[str, dict[str, int]] | None = None,
) -> SendOut:
    fields = {**asdict(info), **asdict(counts), "outcomes": outcomes, "by_domain": by_domain or {}}
    return SendOut.model_validate(fields)


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
async def put_queue(request: Request, slug: PathText, body: QueueIn) -> QueuedOut:
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
async def delete_queue(request: Request, slug: PathText) -> UnqueuedOut:
    ctx = web_context(request)
    now = ctx.now()
    done = await run_in_threadpool(lambda: unqueue_issue(ctx.settings, ctx.store, slug, now=now))
    return UnqueuedOut(slug=slug, unqueued=done)


router.include_router(api_subscribers.router)
router.include_router(api_send.router)
router.include_router(api_report.router)
router.include_router(api_docs.router)
