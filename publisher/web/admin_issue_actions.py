"""The Issues page's buttons: send a test to me, queue, unqueue, send now (editors only).

Each goes through the function the CLI uses (``send_test_copy`` as
`publisher send --to`, ``queue_issue``/``unqueue_issue`` as `publisher queue`
and `unqueue`, ``send_issue`` as `publisher send`, started the way
``POST /api/issues/{slug}/send`` starts it, with the app's worker queue), and
each is recorded in the audit log. A refusal shows the issue page again with
the reason; success redirects back to it (POST, redirect, GET).

"Send now" takes two posts: the first only counts the recipients (a dry run of
the same ``send_issue``) and asks; the second, carrying that count, sends, unless
the count has changed since, in which case it asks again with the new one. A
repeated post is refused: the dry run says "already sent", the ledger's lease
or the app's set of sends it started (shared with the API) says "running".
"""

from __future__ import annotations

from datetime import UTC
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, BackgroundTasks, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from publisher.errors import NotFoundError, PublisherError
from publisher.ops.editors import record_audit
from publisher.ops.issue_state import send_running
from publisher.ops.queue import QueueError, parse_when, queue_issue, unqueue_issue
from publisher.ops.send import SendOutcome, issue_key, send_issue, send_test_copy
from publisher.store.editors import EditorSession
from publisher.web.admin_auth import EditorOnly, admin_root, csrf_token, editor_form
from publisher.web.admin_issue_page import console_page, issue_page, zone_or_none
from publisher.web.admin_preview import checked_slug
from publisher.web.api_send import run_send, started_here, workers_of
from publisher.web.handlers import status_for
from publisher.web.requests import text_problem, web_context

router = APIRouter(include_in_schema=False)
EditorForm = Annotated[FormData, Depends(editor_form)]
MAX_WHEN = 40  # '2026-12-01T08:00:00.000000+01:00' is 32


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _back(request: Request, slug: str, done: str, zone: str = "") -> Response:
    query = f"done={done}" + (f"&zone={zone}" if zone else "")
    return RedirectResponse(f"{admin_root(request)}/issues/{slug}?{query}", status_code=303)


async def _refused(
    request: Request,
    session: EditorSession,
    slug: str,
    exc: PublisherError,
    zone: ZoneInfo | None = None,
    at: str = "",
) -> Response:
    """The issue page again, with the reason at the top (the form keeps what was typed)."""
    status = status_for(exc)
    return await run_in_threadpool(
        lambda: issue_page(request, session, slug, status=status, error=exc, zone=zone, at=at)
    )


def _audit(request: Request, session: EditorSession, action: str, slug: str, detail: str = "") -> None:
    ctx = web_context(request)
    record_audit(
        ctx.store, actor=session.editor.email, action=action, target=slug, detail=detail, now=ctx.now()
    )


@router.post("/admin/issues/{slug}/test")
async def send_test(request: Request, slug: str, form: EditorForm, session: EditorOnly) -> Response:
    """One copy to the signed-in editor's address, as `publisher send SLUG --to ME` sends it."""
    ctx, to = web_context(request), session.editor.email
    checked_slug(slug)
    try:
        where = await run_in_threadpool(
            lambda: send_test_copy(ctx.settings, slug, to, now=ctx.now(), store=ctx.store)
        )
    except NotFoundError:
        raise
    except PublisherError as exc:
        return await _refused(request, session, slug, exc)
    await run_in_threadpool(_audit, request, session, "issue.test", slug, f"to {to} via {where}")
    return _back(request, slug, "test")


def _when(request: Request, form: FormData) -> tuple[ZoneInfo | None, str, PublisherError | None]:
    """The form's zone and date-time text, or the reason they are unusable."""
    settings = web_context(request).settings
    zone, text = zone_or_none(settings, form.get("zone")), _field(form, "at").strip()
    if zone is None:
        return None, "", QueueError("that is not a time zone we know", hint="pick one from the list")
    if not text:
        return zone, "", QueueError("the date and time are missing", hint="pick when the issue should go out")
    if len(text) > MAX_WHEN or text_problem(text, allow_whitespace=False):
        return zone, "", QueueError("that is not a date and time", hint="write it as 2026-12-01T08:00")
    return zone, text, None


@router.post("/admin/issues/{slug}/queue")
async def queue(request: Request, slug: str, form: EditorForm, session: EditorOnly) -> Response:
    """Queue at the picker's date-time read in the chosen zone (as `publisher queue SLUG --at WHEN`)."""
    ctx = web_context(request)
    checked_slug(slug)
    zone, text, problem = _when(request, form)
    if problem is not None or zone is None:
        return await _refused(request, session, slug, problem or QueueError("no time zone"), zone, text)
    try:
        at = parse_when(text, zone)
        row = await run_in_threadpool(lambda: queue_issue(ctx.settings, ctx.store, slug, at, now=ctx.now()))
    except (OverflowError, ValueError):  # year 1 or 9999 shifted out of range by the zone
        err = QueueError("that date is out of range", hint="pick a date in the next few years")
        return await _refused(request, session, slug, err, zone, text)
    except NotFoundError:
        raise
    except PublisherError as exc:
        return await _refused(request, session, slug, exc, zone, text)
    local = row.send_at.astimezone(zone)
    detail = f"for {row.send_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({local:%Y-%m-%d %H:%M} {zone.key})"
    await run_in_threadpool(_audit, request, session, "issue.queue", slug, detail)
    return _back(request, slug, "queued", zone.key)


@router.post("/admin/issues/{slug}/unqueue")
async def unqueue(request: Request, slug: str, form: EditorForm, session: EditorOnly) -> Response:
    """Take the issue off the queue (as `publisher unqueue SLUG`)."""
    ctx = web_context(request)
    checked_slug(slug)
    try:
        removed = await run_in_threadpool(lambda: unqueue_issue(ctx.settings, ctx.store, slug, now=ctx.now()))
    except PublisherError as exc:
        return await _refused(request, session, slug, exc)
    if not removed:
        return await _refused(request, session, slug, QueueError(f"{slug} is not queued"))
    await run_in_threadpool(_audit, request, session, "issue.unqueue", slug)
    return _back(request, slug, "unqueued")


def _dry_run(request: Request, slug: str) -> SendOutcome:
    """``send_issue``'s own dry run: refuses a draft or an unknown issue, counts who it would go to now."""
    ctx = web_context(request)
    if send_running(ctx.store, slug, now=ctx.now()):
        raise QueueError(f"a send of {slug} is running", hint="the dashboard follows it")
    return send_issue(ctx.settings, ctx.store, slug, clock=ctx.clock, dry_run=True)


@router.post("/admin/issues/{slug}/send")
async def send_now(
    request: Request, slug: str, form: EditorForm, session: EditorOnly, tasks: BackgroundTasks
) -> Response:
    """Ask, with the recipient count; then, with ``confirm=yes`` and that count, start the send."""
    ctx = web_context(request)
    checked_slug(slug)
    running = started_here(request.app)
    try:
        if issue_key(slug) in running:
            raise QueueError(f"a send of {slug} is running", hint="the dashboard follows it")
        outcome = await run_in_threadpool(_dry_run, request, slug)
    except NotFoundError:
        raise
    except PublisherError as exc:
        return await _refused(request, session, slug, exc)
    if outcome.action == "already-sent":
        sent = QueueError(f"{slug} was already sent", hint="an issue goes out once; the dashboard shows how")
        return await _refused(request, session, slug, sent)
    count = outcome.to_send
    confirmed = _field(form, "confirm") == "yes"
    if not confirmed or _field(form, "count") != str(count):
        return console_page(
            request,
            "admin_issue_confirm.html",
            title=f"Send {slug} now?",
            slug=slug,
            count=count,
            changed=confirmed,
            csrf=csrf_token(ctx.secret, session),
        )
    if issue_key(slug) in running:  # another request started it while we counted
        return await _refused(request, session, slug, QueueError(f"a send of {slug} is running"))
    running.add(issue_key(slug))  # no await between the check and here: one event loop, no race
    tasks.add_task(run_send, ctx, slug, running, workers_of(request.app))
    await run_in_threadpool(_audit, request, session, "issue.send", slug, f"to {count} recipient(s)")
    return _back(request, slug, "sending")
