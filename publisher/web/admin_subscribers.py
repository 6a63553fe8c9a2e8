"""The console's subscriber pages: the list (search, filters, keyset pages) and one subscriber.

Server-rendered, no script: the filters are a GET form and "next"/"previous"
are plain links carrying the cursor, so paging works without JavaScript and a
page's address can be bookmarked. Every change goes through the function the
CLI and the API use (``set_status``, ``send_confirmation``,
``erase_subscriber``), needs an editor and the form's CSRF token, and is
written to the audit log. The CSV upload and export are ``admin_csv``'s.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.responses import RedirectResponse, Response

from publisher.errors import NotFoundError
from publisher.models import Frequency, Subscriber, SubscriberStatus
from publisher.ops.confirm import send_confirmation
from publisher.ops.editors import record_audit
from publisher.ops.feedback import erase_subscriber
from publisher.store.subscriber_history import history
from publisher.store.subscriber_search import SORTS, Sort, by_id, page
from publisher.store.values import InvalidValueError
from publisher.web import admin_csv
from publisher.web.admin_auth import ViewerSession, admin_root, csrf_token
from publisher.web.admin_auth import console_page as render
from publisher.web.admin_render import EditorForm, query_text, search_of
from publisher.web.pages import public_url
from publisher.web.requests import web_context

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
STOPPED_BY_MAIL = (SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED)
DONE = {  # ?done= on the subscriber page: fixed texts, nothing from the address bar is echoed
    "status": "Status changed.",
    "confirmation": "Confirmation mail handed over.",
    "unsent": "The confirmation mail could not be handed over; see the server's log.",
}


def audit_target(subscriber_id: int) -> str:
    """The audit log names a subscriber by id: an erased address must not live on in the log."""
    return f"subscriber:{subscriber_id}"


def _cursor(params: QueryParams, name: str, sort: Sort) -> str | None:
    value = query_text(params, name, 320)
    if value is not None and sort != "email" and not (value.isdigit() and len(value) < 19):
        return None
    return value


def _query(params: QueryParams, **cursor: str) -> str:
    """The list's address with the same filters and a new cursor."""
    kept = {
        k: v for k, v in params.items() if k in ("q", "status", "frequency", "topic", "zone", "sort") and v
    }
    return str(QueryParams({**kept, **cursor}))


@router.get("/admin/subscribers")
async def subscribers(request: Request, session: ViewerSession) -> Response:
    """A page of subscribers matching the filters, with links to the pages either side."""
    ctx = web_context(request)
    params = request.query_params
    search = search_of(params)
    after, before = _cursor(params, "after", search.sort), _cursor(params, "before", search.sort)
    found = await run_in_threadpool(
        lambda: page(ctx.store, search, after=after, before=before, limit=PAGE_SIZE)
    )
    return render(
        request,
        "admin_subscribers.html",
        title="Subscribers",
        search=search,
        found=found,
        statuses=[s.value for s in SubscriberStatus],
        frequencies=[f.value for f in Frequency],
        sorts=SORTS,
        next_query=_query(params, after=found.next) if found.next else None,
        previous_query=_query(params, before=found.previous) if found.previous else None,
        export_query=_query(params),
        can_change=session.editor.role == "editor",
        erased=params.get("erased") == "1",
    )


async def _subscriber(request: Request, subscriber_id: int) -> Subscriber:
    sub = await run_in_threadpool(by_id, web_context(request).store, subscriber_id)
    if sub is None:
        raise NotFoundError("no such subscriber", hint="they may have been erased; search the list")
    return sub


@router.get("/admin/subscribers/{subscriber_id:int}")
async def subscriber(request: Request, subscriber_id: int, session: ViewerSession) -> Response:
    """One subscriber: details, history, and (for editors) the actions."""
    ctx = web_context(request)
    sub = await _subscriber(request, subscriber_id)
    past = await run_in_threadpool(history, ctx.store, subscriber_id, audit_target(subscriber_id))
    return render(
        request,
        "admin_subscriber.html",
        title=f"Subscriber {sub.email}",
        sub=sub,
        history=past,
        statuses=[s.value for s in SubscriberStatus],
        done=DONE.get(request.query_params.get("done", "")),
        csrf=csrf_token(ctx.secret, session),
        can_change=session.editor.role == "editor",
    )


def _back(request: Request, subscriber_id: int, done: str) -> RedirectResponse:
    return RedirectResponse(f"{admin_root(request)}/subscribers/{subscriber_id}?done={done}", status_code=303)


@router.post("/admin/subscribers/{subscriber_id:int}/status")
async def change_status(
    request: Request, subscriber_id: int, session: ViewerSession, form: EditorForm
) -> Response:
    """Confirm, unsubscribe, or mark a subscriber as the API's PATCH does (same store call)."""
    ctx = web_context(request)
    sub = await _subscriber(request, subscriber_id)
    wanted = form.get("status")
    if wanted not in tuple(s.value for s in SubscriberStatus):
        raise InvalidValueError("choose one of the statuses listed", hint="go back and pick a status")
    status = SubscriberStatus(str(wanted))
    if status is SubscriberStatus.CONFIRMED and sub.status in STOPPED_BY_MAIL:
        raise InvalidValueError(
            f"{sub.email} {sub.status.value}; it is not confirmed again by hand",
            hint="with their renewed consent: `publisher subscribers import --resubscribe`",
        )
    now = ctx.now()
    if status is not sub.status:
        await run_in_threadpool(lambda: ctx.store.subscribers.set_status(sub.email, status, now=now))
        detail = f"{sub.status.value} -> {status.value}"
        await run_in_threadpool(
            lambda: record_audit(
                ctx.store,
                actor=session.editor.email,
                action="subscriber.status",
                target=audit_target(subscriber_id),
                detail=detail,
                now=now,
            )
        )
    return _back(request, subscriber_id, "status")


@router.post("/admin/subscribers/{subscriber_id:int}/confirmation")
async def resend_confirmation(
    request: Request, subscriber_id: int, session: ViewerSession, form: EditorForm
) -> Response:
    """Send the confirmation mail again (pending: "confirm"; confirmed: "already subscribed")."""
    ctx = web_context(request)
    sub = await _subscriber(request, subscriber_id)
    if sub.status not in (SubscriberStatus.PENDING, SubscriberStatus.CONFIRMED):
        raise InvalidValueError(
            f"{sub.email} is {sub.status.value}: no confirmation mail goes to them",
            hint="only they can subscribe again, through the sign-up form",
        )
    now = ctx.now()
    sent = await run_in_threadpool(
        lambda: send_confirmation(
            ctx.settings,
            ctx.secret,
            sub.email,
            sub.name,
            already=sub.status is SubscriberStatus.CONFIRMED,
            now=now,
            base_url=public_url(ctx.settings),
            stop=ctx.stopping,
        )
    )
    await run_in_threadpool(
        lambda: record_audit(
            ctx.store,
            actor=session.editor.email,
            action="subscriber.confirm-mail",
            target=audit_target(subscriber_id),
            detail="handed over" if sent else "not delivered",
            now=now,
        )
    )
    return _back(request, subscriber_id, "confirmation" if sent else "unsent")


@router.post("/admin/subscribers/{subscriber_id:int}/erase")
async def erase(request: Request, subscriber_id: int, session: ViewerSession, form: EditorForm) -> Response:
    """Erase the subscriber as `publisher subscribers remove` does (address kept as a keyed hash)."""
    ctx = web_context(request)
    sub = await _subscriber(request, subscriber_id)
    if form.get("sure") != "yes":
        raise InvalidValueError("tick the box to confirm the erasure", hint="erasing cannot be undone")
    now = ctx.now()
    await run_in_threadpool(lambda: erase_subscriber(ctx.store, ctx.settings, sub.email, now=now))
    await run_in_threadpool(
        lambda: record_audit(
            ctx.store,
            actor=session.editor.email,
            action="subscriber.erase",
            target=audit_target(subscriber_id),
            now=now,
        )
    )
    return RedirectResponse(f"{admin_root(request)}/subscribers?erased=1", status_code=303)


def install(app: FastAPI) -> None:
    """The subscriber pages and the CSV upload and export (before the archive's catch-all)."""
    app.include_router(admin_csv.router)  # its fixed paths first: /admin/subscribers/import, export.csv
    app.include_router(router)
