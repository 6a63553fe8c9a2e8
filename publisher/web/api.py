"""The JSON admin API under ``/api``, behind a bearer token.

The token comes from the environment variable ``web.api_token_env`` names.
With none set the API answers 503 "admin API disabled" instead of being open:
an admin API must never be reachable by accident. Tokens are compared in
constant time, and wrong ones are counted per client (``api_failures``, in the
database when several workers serve): past the burst a client gets 429, even
with the right token, until its bucket refills, so guessing is hopeless while
other clients go on working. Every answer, errors included, is a declared
pydantic model.

Every route is a ``GuardedRoute``: the token is checked before FastAPI reads
or validates the body (a dependency would run only after the JSON is parsed,
so a stranger could learn the body's schema from 422s), and then strings in a
JSON body are held to the text rule (no NUL, C0 controls, lone surrogates).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from publisher.errors import NotFoundError, PublisherError
from publisher.models import Subscriber
from publisher.ops.feedback import erase_subscriber
from publisher.ops.queue import QueueError, list_queue, queue_issue, unqueue_issue
from publisher.store import SendCounts, SendInfo
from publisher.store.queue import QueuedIssue
from publisher.web.api_models import (
    DeliveryOut,
    ErrorOut,
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
from publisher.web.requests import text_problem, web_context

MAX_QUEUE_DAYS = 3660  # ten years: anything further is a typo
# The guard middleware refuses control characters in any path (422); this says so in the schema.
PathText = Annotated[str, Path(pattern=r"^[^\x00-\x1f\x7f]*$")]


class ApiError(PublisherError):
    """An API refusal with its HTTP status (auth, disabled)."""

    def __init__(
        self, status: int, message: str, hint: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message, hint)
        self.status = status
        self.retry_after = retry_after


# Declared so the OpenAPI schema shows the scheme; the check itself is GuardedRoute's.
bearer = HTTPBearer(auto_error=False, description="the token in the variable web.api_token_env names")


def _throttled(wait: int) -> ApiError:
    return ApiError(
        429, "too many wrong tokens from this client", hint=f"wait {wait} seconds", retry_after=wait
    )


def require_token(request: Request) -> None:
    """The bearer check, with the per-client throttle on wrong tokens (may query the database)."""
    ctx = web_context(request)
    if not ctx.api_token:
        raise ApiError(
            503,
            "admin API disabled",
            hint=f"set the environment variable {ctx.settings.web.api_token_env} to a long random token",
        )
    client = request.client.host if request.client else "unknown"
    now = ctx.now().timestamp()
    wait = ctx.api_failures.retry_after(client, now)
    if wait:
        raise _throttled(wait)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), ctx.api_token.encode()):
        return
    if not ctx.api_failures.take(client, now):
        raise _throttled(ctx.api_failures.retry_after(client, now))
    raise ApiError(401, "a valid bearer token is required", hint="send Authorization: Bearer <token>")


def _bad_string(value: Any, loc: tuple[str | int, ...]) -> tuple[tuple[str | int, ...], str] | None:
    """The first string (key or value) in parsed JSON that breaks the text rule, with where it is."""
    if isinstance(value, str):
        problem = text_problem(value)
        return (loc, problem) if problem else None
    items: list[tuple[str | int, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if problem := text_problem(key):
                return (*loc, key), f"a key {problem}"
            items.append((key, item))
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, item in items:
        if found := _bad_string(item, (*loc, key)):
            return found
    return None


async def check_body_text(request: Request) -> None:
    """422 for a JSON body holding text the store cannot keep (checked once here, not per model)."""
    if "json" not in request.headers.get("content-type", ""):
        return
    body = await request.body()  # cached on the request: FastAPI reads the same bytes next
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return  # not JSON: FastAPI's own validation says so
    found = _bad_string(data, ("body",))
    if found:
        loc, problem = found
        raise RequestValidationError([{"type": "string_text", "loc": loc, "msg": problem, "input": None}])


class GuardedRoute(APIRoute):
    """An /api route: token (and throttle) first, then the body's text, then FastAPI's own handling."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            await run_in_threadpool(require_token, request)
            await check_body_text(request)
            return await handler(request)

        return guarded


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
