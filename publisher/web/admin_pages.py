"""The console's first pages: sign in, sign out, and ``/admin`` (who is signed in, the audit log).

Server-rendered forms that work without JavaScript, inside the site's own
layout and stylesheet. Account checks, sessions and the audit log are
``ops.editors``'s: these routes only read forms and set cookies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, RedirectResponse, Response

from publisher.ops.editors import (
    MAX_PASSWORD,
    audit_entries,
    authenticate,
    check_session,
    close_session,
    editor_address,
    open_session,
)
from publisher.store.values import InvalidValueError
from publisher.web.admin_auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    ViewerSession,
    admin_root,
    admin_state,
    check_token,
    clear_cookie,
    client_of,
    console_page,
    csrf_token,
    login_csrf,
    login_nonce,
    safe_next,
    set_login_cookie,
    set_session_cookie,
    viewer_form,
)
from publisher.web.requests import read_form, web_context
from publisher.web.security import check_same_origin

router = APIRouter(include_in_schema=False)
AUDIT_SHOWN = 50
WRONG = "Wrong email address or password."


def _login_form(
    request: Request,
    *,
    next_path: str,
    email: str = "",
    error: str = "",
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    nonce, new = login_nonce(request)
    secret = web_context(request).secret
    response = console_page(
        request,
        "admin_login.html",
        status=status,
        headers=headers,
        title="Sign in to the console",
        csrf=login_csrf(secret, nonce),
        next_path=next_path,
        email=email,
        error=error,
    )
    if new:
        set_login_cookie(request, response, nonce)
    return response


@router.get("/admin/console.css")
def stylesheet(request: Request) -> Response:
    """The console's few styles beyond site.css (public: the sign-in form needs them too)."""
    css = web_context(request).settings.paths.templates / "web" / "admin.css"
    try:
        body = css.read_bytes()
    except OSError:
        body = b""
    return Response(body, media_type="text/css", headers={"Cache-Control": "no-store"})


@router.get("/admin/login")
def login_page(request: Request) -> Response:
    """The sign-in form (or straight on to ``next`` when already signed in)."""
    ctx = web_context(request)
    target = safe_next(request.query_params.get("next"), admin_root(request))
    token = request.cookies.get(SESSION_COOKIE, "")
    if token and check_session(ctx.store, token, now=ctx.now(), policy=admin_state(request).policy):
        return RedirectResponse(target, status_code=303)
    return _login_form(request, next_path=target)


@dataclass(frozen=True)
class _Attempt:
    email: str
    password: str
    client: str
    key: str  # the per-account bucket's key


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _attempt(request: Request, form: FormData) -> _Attempt:
    email, password = _field(form, "email"), _field(form, "password")
    try:
        key = editor_address(email)
    except InvalidValueError:
        key = email[:320].casefold()
    return _Attempt(email=email, password=password[: MAX_PASSWORD + 1], client=client_of(request), key=key)


def _sign_in(request: Request, attempt: _Attempt) -> str | int | None:
    """A session token; or seconds to wait (throttled); or None (wrong address or password)."""
    ctx, state = web_context(request), admin_state(request)
    accounts, clients = state.accounts, state.clients
    assert accounts is not None and clients is not None
    now = ctx.now()
    epoch = now.timestamp()
    wait = max(accounts.retry_after(attempt.key, epoch), clients.retry_after(attempt.client, epoch))
    if wait:
        return wait
    editor = authenticate(ctx.store, attempt.email, attempt.password, now=now, client=attempt.client)
    if editor is not None:
        return open_session(ctx.store, editor, now=now, policy=state.policy, client=attempt.client)
    took_account = accounts.take(attempt.key, epoch)
    took_client = clients.take(attempt.client, epoch)
    if not (took_account and took_client):
        return max(accounts.retry_after(attempt.key, epoch), clients.retry_after(attempt.client, epoch), 1)
    return None


@router.post("/admin/login")
async def login(request: Request) -> Response:
    """Check the form's token, then the password (throttled); on success, the cookie and ``next``."""
    ctx = web_context(request)
    check_same_origin(request, ctx.settings.site.url)
    form = await read_form(request)
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    check_token(login_csrf(ctx.secret, nonce) if nonce else "-", form.get("csrf"))
    target = safe_next(form.get("next"), admin_root(request))
    attempt = _attempt(request, form)
    outcome = await run_in_threadpool(_sign_in, request, attempt)
    echo = attempt.key if "@" in attempt.key and attempt.key.isprintable() else ""
    if isinstance(outcome, int):
        message = f"Too many failed sign-ins. Try again in {outcome} seconds."
        headers = {"Retry-After": str(outcome)}
        return _login_form(request, next_path=target, email=echo, error=message, status=429, headers=headers)
    if outcome is None:
        return _login_form(request, next_path=target, email=echo, error=WRONG, status=401)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, outcome)
    clear_cookie(request, response, LOGIN_COOKIE)
    return response


@router.post("/admin/logout")
async def logout(request: Request, form: Annotated[FormData, Depends(viewer_form)]) -> Response:
    """Forget the session (recorded in the audit log) and drop the cookie."""
    ctx = web_context(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    await run_in_threadpool(close_session, ctx.store, token, now=ctx.now())
    response = RedirectResponse(f"{admin_root(request)}/login", status_code=303)
    clear_cookie(request, response, SESSION_COOKIE)
    return response


@router.get("/admin")
def home(request: Request, session: ViewerSession) -> Response:
    """Who is signed in, with which role, and the newest entries of the audit log."""
    ctx = web_context(request)
    entries = audit_entries(ctx.store, AUDIT_SHOWN)
    return console_page(
        request,
        "admin_home.html",
        title="Console",
        editor=session.editor,
        csrf=csrf_token(ctx.secret, session),
        entries=entries,
    )


def install(app: FastAPI) -> None:
    """The console's routes (before the archive's catch-all)."""
    app.include_router(router)
