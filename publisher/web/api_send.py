"""``POST /api/issues/{slug}/send``: start an issue's send and answer at once (202).

On the embedded default (SQLite, no workers) ``send_issue`` drains in this
process, which takes minutes for a large list: far longer than an HTTP client
waits. So the route checks what it can answer now (no such issue 404; a draft,
an issue already sent, or a send of it running 409), then runs ``send_issue``
after the response, and the caller follows it in ``GET /api/sends`` by its key.
The send is as safe to repeat as ``publisher send``: the ledger plans it once
and a restart resumes it. Sends started here and not yet done are kept on the
app (``app.state``) so a second call in the gap before the ledger knows of the
first one is refused too.
"""

from __future__ import annotations

import logging

from fastapi import BackgroundTasks, FastAPI, Request
from starlette.concurrency import run_in_threadpool

from publisher.content import load_issue
from publisher.errors import ContentError, NotFoundError, PublisherError
from publisher.ops.send import WorkerQueue, issue_key, send_issue
from publisher.web.api_guard import ApiError, PathText, guarded_router
from publisher.web.api_models import SendStartedOut, error_responses
from publisher.web.context import WebContext
from publisher.web.requests import web_context

log = logging.getLogger("publisher.web")
router = guarded_router()


def started_here(app: FastAPI) -> set[str]:
    """The keys of sends this app started that have not finished (created on first use)."""
    keys: set[str] | None = getattr(app.state, "api_sends", None)
    if keys is None:
        keys = app.state.api_sends = set()
    return keys


def workers_of(app: FastAPI) -> WorkerQueue | None:
    """The scale-out queue the wiring put on ``app.state.send_workers`` (None: always send in-process)."""
    return getattr(app.state, "send_workers", None)


def refusal(ctx: WebContext, slug: str) -> PublisherError | None:
    """Why issue ``slug`` cannot be sent now, or None (reads the issue's own files and the ledger).

    Only this issue's files count, as for a queued send: a half-written draft elsewhere must
    not make every send look like "no issue".
    """
    try:
        issue = load_issue(ctx.settings, slug)
    except NotFoundError:
        return NotFoundError(f"no issue {slug}", hint="GET /api/issues lists them")
    except ContentError as exc:
        return ApiError(
            409, f"{slug} has problems: {exc.message}", hint=exc.hint or "publisher check lists them"
        )
    if issue.draft:
        return ApiError(409, f"{slug} is a draft; drafts are never sent", hint="remove `draft: true`")
    existing = ctx.store.ledger.get_send(issue_key(slug))
    if existing is None:
        return None
    if ctx.store.ledger.counts(existing.id).pending == 0:
        return ApiError(
            409, f"{slug} was already sent", hint=f"GET /api/sends/{existing.id} shows how it went"
        )
    lease = existing.lease_expires_at
    if existing.lease_owner is not None and lease is not None and lease > ctx.now():
        return ApiError(
            409, f"a send of {slug} is running", hint=f"follow it in GET /api/sends/{existing.id}"
        )
    return None  # planned and stopped short (a crash, an outage): sending again resumes it


def run_send(ctx: WebContext, slug: str, running: set[str], workers: WorkerQueue | None = None) -> None:
    """The send itself, after the response: its outcome goes to the log and the ledger."""
    key = issue_key(slug)
    try:
        outcome = send_issue(ctx.settings, ctx.store, slug, clock=ctx.clock, workers=workers)
        log.info("send %s (started by the API): %s", key, outcome.action)
    except PublisherError as exc:
        log.error("send %s (started by the API) failed: %s", key, exc.message)
    except Exception:  # after the response: a bug here must be logged, not lost
        log.exception("send %s (started by the API) failed", key)
    finally:
        running.discard(key)


@router.post(
    "/issues/{slug}/send",
    status_code=202,
    response_model=SendStartedOut,
    responses=error_responses(404, 409),
    summary="Send an issue to its subscribers (runs in the background; follow it in /api/sends)",
)
async def start_send(request: Request, slug: PathText, tasks: BackgroundTasks) -> SendStartedOut:
    ctx = web_context(request)
    key = issue_key(slug)
    running = started_here(request.app)
    busy = ApiError(409, f"a send of {slug} is running", hint="follow it in GET /api/sends")
    if key in running:
        raise busy
    problem = await run_in_threadpool(refusal, ctx, slug)
    if problem is not None:
        raise problem
    if key in running:  # started by another request while we read the ledger
        raise busy
    running.add(key)  # no await between the check and here: one event loop, no race
    tasks.add_task(run_send, ctx, slug, running, workers_of(request.app))
    return SendStartedOut(key=key, slug=slug)
