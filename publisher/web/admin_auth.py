"""The console's door: sign-in, sign-out, the session cookie, CSRF, roles and the console's CSP.

Every ``/admin`` route but the sign-in form depends on :func:`require_viewer`
or :func:`require_editor`; every POST on :func:`viewer_form` or
:func:`editor_form`, which check the CSRF token too. Without a live session a
page redirects to the sign-in form (``next=`` brings the editor back, and
only ever to a local ``/admin`` path), and a JSON or event-stream request gets
401. A ``viewer`` is refused every change with 403.

The cookie holds a random token (the database keeps its SHA-256): HttpOnly,
``SameSite=Strict``, path ``/admin``, Secure when the app is reached over
https (``web.public_url``, else ``site.url``). The CSRF token is an HMAC of the
session under the site secret, so it needs no column and dies with the
session; the sign-in form, having no session yet, binds its token to a random
cookie of its own. Tokens are compared in constant time.

Wrong passwords are throttled per account and per client with the web app's
token buckets (in the database on PostgreSQL, so every worker counts): past
the burst, 429 with Retry-After, even with the right password. The per-account
limit lets a stranger lock an editor out for a while: the price of making a
password guess cost hours instead of seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import Depends, FastAPI, Request
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from publisher.errors import PublisherError
from publisher.ops.editors import SessionPolicy, check_session
from publisher.store import Store
from publisher.store.editors import EditorSession
from publisher.web.pages import error_page, page, public_url, site_root
from publisher.web.ratelimit import Buckets, make_buckets
from publisher.web.requests import read_form, web_context
from publisher.web.security import ForbiddenError, check_same_origin

SESSION_COOKIE = "publisher_admin"
LOGIN_COOKIE = "publisher_admin_login"  # the sign-in form's CSRF binding (no session yet)
# Scripts and styles only from our own files (the dashboard's live progress: one small script
# and its event stream), forms only to ourselves, never framed.
ADMIN_CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_CSRF_CONTEXT = b"publisher.admin.csrf.v1:"


@dataclass(frozen=True)
class AdminLimits:
    """Wrong passwords allowed before 429: per account (then one every 10 min), per client."""

    account_burst: int = 5
    account_per_hour: float = 6.0
    client_burst: int = 20
    client_per_hour: float = 60.0


@dataclass
class AdminState:
    """The console's per-app parts, kept on ``app.state.admin``."""

    policy: SessionPolicy = field(default_factory=SessionPolicy)
    limits: AdminLimits = field(default_factory=AdminLimits)
    accounts: Buckets | None = None
    clients: Buckets | None = None


class SignInRequiredError(PublisherError):
    """A console request without a live session."""


def admin_state(request: Request) -> AdminState:
    state: AdminState = request.app.state.admin
    return state


def admin_root(request: Request) -> str:
    """The console's path as the browser sees it: '/admin' or '/news/admin'."""
    return site_root(web_context(request).settings) + "admin"


def is_https(request: Request) -> bool:
    return public_url(web_context(request).settings).startswith("https://")


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def console_page(
    request: Request, name: str, status: int = 200, headers: dict[str, str] | None = None, **values: Any
) -> HTMLResponse:
    """A console page in the site's layout; a project whose templates predate it: 503, saying what to copy."""
    settings = web_context(request).settings
    try:
        return page(
            settings,
            name,
            status=status,
            path="admin",
            headers=headers,
            admin_root=admin_root(request),
            **values,
        )
    except jinja2.TemplateNotFound as exc:
        return error_page(
            settings,
            503,
            "Console unavailable",
            f"the console's template {exc.name} is missing from {settings.paths.templates}",
            hint="copy templates/web/admin_*.html from the publisher project into your templates folder",
        )


# Sessions and roles


def require_viewer(request: Request) -> EditorSession:
    """The signed-in editor's session (any role), or SignInRequiredError."""
    cached: EditorSession | None = getattr(request.state, "admin_session", None)
    if cached is not None:
        return cached
    ctx = web_context(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    found = check_session(ctx.store, token, now=ctx.now(), policy=admin_state(request).policy)
    if found is None:
        raise SignInRequiredError("please sign in", hint="your session has ended or you are not signed in")
    request.state.admin_session = found
    return found


def require_editor(request: Request) -> EditorSession:
    """The session of an ``editor`` (may change things); a ``viewer`` gets 403."""
    found = require_viewer(request)
    if found.editor.role != "editor":
        raise ForbiddenError("viewers can look but not change anything", hint="ask an editor to do this")
    return found


ViewerSession = Annotated[EditorSession, Depends(require_viewer)]
EditorOnly = Annotated[EditorSession, Depends(require_editor)]


def csrf_token(secret: bytes, session: EditorSession) -> str:
    """The form token of ``session``: valid exactly as long as the session is."""
    return hmac.new(secret, _CSRF_CONTEXT + session.id.encode(), hashlib.sha256).hexdigest()


def login_csrf(secret: bytes, nonce: str) -> str:
    return hmac.new(secret, b"publisher.admin.login.v1:" + nonce.encode(), hashlib.sha256).hexdigest()


def check_token(expected: str, given: object) -> None:
    """403 unless ``given`` is ``expected`` (constant time)."""
    if not isinstance(given, str) or not given:
        raise ForbiddenError("the form is missing its security token", hint="reload the page and try again")
    if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode()):
        raise ForbiddenError("the form's security token is not valid", hint="reload the page and try again")


async def _checked_form(request: Request, session: EditorSession) -> FormData:
    check_same_origin(request, web_context(request).settings.site.url)
    form = await read_form(request)
    check_token(csrf_token(web_context(request).secret, session), form.get("csrf"))
    return form


async def viewer_form(request: Request, session: ViewerSession) -> FormData:
    """A POSTed form from any signed-in editor, its CSRF token checked (403 otherwise)."""
    return await _checked_form(request, session)


async def editor_form(request: Request, session: EditorOnly) -> FormData:
    """A POSTed form from an ``editor`` (403 for a viewer), its CSRF token checked."""
    return await _checked_form(request, session)


# Where to go after signing in


def safe_next(value: object, root: str) -> str:
    """``value`` if it is a local console path (``root`` or below it), else ``root``: no open redirect."""
    if not isinstance(value, str) or not value or len(value) > 2000:
        return root
    if any(c in value for c in "\\\r\n\t\x00") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return root
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith("//"):
        return root
    path = parts.path
    if path != root and not path.startswith(root + "/"):
        return root
    if any(seg in (".", "..") for seg in path.split("/")) or "%" in path:
        return root
    return path + (f"?{parts.query}" if parts.query else "")


def login_url(request: Request, next_path: str | None = None) -> str:
    root = admin_root(request)
    target = f"{root}/login"
    return f"{target}?next={quote(next_path, safe='/')}" if next_path else target


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return ("application/json" in accept or "text/event-stream" in accept) and "text/html" not in accept


async def sign_in_required(request: Request, exc: Exception) -> Response:
    """401 for JSON and event streams; for a page, a redirect to the sign-in form with ``next=``."""
    if _wants_json(request):
        return JSONResponse(
            {"error": "sign in to the console first", "hint": None, "problems": []},
            status_code=401,
            headers={"Cache-Control": "no-store"},
        )
    path = request.url.path
    prefix = site_root(web_context(request).settings).rstrip("/")
    if prefix and not path.startswith(prefix + "/"):
        path = prefix + path
    wanted = path + (f"?{request.url.query}" if request.url.query else "")
    wanted = safe_next(wanted, admin_root(request)) if request.method == "GET" else admin_root(request)
    return RedirectResponse(
        login_url(request, wanted), status_code=303, headers={"Cache-Control": "no-store"}
    )


# Cookies


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    policy = admin_state(request).policy
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(policy.absolute.total_seconds()),
        path=admin_root(request),
        secure=is_https(request),
        httponly=True,
        samesite="strict",
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path=admin_root(request), secure=is_https(request), httponly=True, samesite="strict"
    )


def login_nonce(request: Request) -> tuple[str, bool]:
    """The sign-in form's cookie value, and whether it is new (to be set)."""
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if 20 <= len(nonce) <= 64 and nonce.replace("-", "").replace("_", "").isalnum():
        return nonce, False
    return secrets.token_urlsafe(24), True


def set_login_cookie(request: Request, response: Response, nonce: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        path=admin_root(request),
        secure=is_https(request),
        httponly=True,
        samesite="strict",
    )


# The console's headers


def _is_admin(scope: Scope) -> bool:
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    path = path.removeprefix(root) if root and path.startswith(root) else path
    return path == "/admin" or path.startswith("/admin/")


class AdminHeadersMiddleware:
    """On /admin answers: the console's own strict CSP, no caching, no indexing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_admin(scope):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                replaced = {b"content-security-policy", b"cache-control", b"x-robots-tag"}
                headers = [(n, v) for n, v in message.get("headers", []) if n.lower() not in replaced]
                message["headers"] = [
                    *headers,
                    (b"content-security-policy", ADMIN_CSP.encode()),
                    (b"cache-control", b"no-store"),
                    (b"x-robots-tag", b"noindex, nofollow"),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI, *, policy: SessionPolicy | None = None, limits: AdminLimits | None = None) -> None:
    """Give ``app`` the console's state, headers and sign-in handling (routes: ``admin_pages``)."""
    ctx = app.state.web
    lim = limits or AdminLimits()

    def store() -> Store:  # the context opens its store on first use
        return ctx.store

    app.state.admin = AdminState(
        policy=policy or SessionPolicy(),
        limits=lim,
        accounts=make_buckets(
            "admin-account", lim.account_burst, lim.account_per_hour, shared=ctx.shared_limits, store=store
        ),
        clients=make_buckets(
            "admin-client", lim.client_burst, lim.client_per_hour, shared=ctx.shared_limits, store=store
        ),
    )
    app.add_middleware(AdminHeadersMiddleware)
    app.exception_handler(SignInRequiredError)(sign_in_required)


__all__ = [
    "ADMIN_CSP",
    "EditorOnly",
    "ViewerSession",
    "editor_form",
    "require_editor",
    "require_viewer",
    "viewer_form",
]
