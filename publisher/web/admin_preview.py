"""An issue's email as it will be sent, for the console's preview page.

The message is ``issue_email_files``'s (the build's ``emails/<slug>.html``,
``.txt`` and ``.eml``): ``prepare_issue_email`` for the issue's send key and
date, as ``publisher send`` makes it, filled for the build's sample reader, so
the preview is byte for byte those files (and renders the issue once). It is served on its own route,
``/admin/issues/{slug}/email.html``, and shown in ``<iframe sandbox="">``
under a CSP of its own: inline styles (a mail's only kind) and remote images,
no script, framed only by the console itself.

Dark mode: an iframe follows the editor's own colour scheme, which no link can
switch, so ``?scheme=dark`` (and ``light``) rewrite the layout's
``@media (prefers-color-scheme: dark)`` to ``all`` (or ``not all``): the rules
a dark-mode client applies, applied unconditionally. Without ``scheme`` the
bytes are untouched.
"""

from __future__ import annotations

import email.policy
import re
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from typing import Any

from fastapi import APIRouter, Request
from lxml import html as lxml_html
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from publisher.config import Settings
from publisher.content import is_slug, load_issue
from publisher.errors import NotFoundError, PublisherError
from publisher.feeds import Item, make_items
from publisher.models import Issue
from publisher.render.email import issue_email_files
from publisher.web.admin_auth import ADMIN_CSP, ViewerSession
from publisher.web.requests import web_context

router = APIRouter(include_in_schema=False)

MAX_SLUG = 200
# The mail's own page: its inline styles and images, nothing else; framed only by the console.
EMAIL_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
    "font-src https: data:; form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox"
)
# The preview page: the console's CSP, plus frames from ourselves (the email route).
PREVIEW_CSP = ADMIN_CSP + "; frame-src 'self'"
_DARK_QUERY = re.compile(rb"@media\s*\(\s*prefers-color-scheme\s*:\s*dark\s*\)")
_EMAIL_PATH = re.compile(r"^/admin/issues/[^/]+/email\.html$")
_PREVIEW_PATH = re.compile(r"^/admin/issues/[^/]+$")
SCHEMES = {"light": "@media not all", "dark": "@media all"}


def checked_slug(slug: str) -> str:
    """``slug`` if it could name an issue; 404 otherwise (before any file is looked at)."""
    if len(slug) > MAX_SLUG or not is_slug(slug):
        raise NotFoundError("no such issue", hint="the Issues page lists them")
    return slug


@dataclass(frozen=True)
class Preview:
    """What the preview page shows of one issue's email."""

    issue: Issue
    subject: str
    preheader: str
    html: bytes  # filled for the sample reader: emails/<slug>.html
    text: str
    html_size: int  # the HTML part in bytes (filled, before transfer encoding): what Gmail's clip counts
    limit_kb: int  # email.size_limit_kb: the render refuses a larger issue
    warn_kb: int
    feed: tuple[Item, ...]

    @property
    def size_kb(self) -> float:
        return self.html_size / 1024

    @property
    def size_state(self) -> str:
        """'over', 'close' or 'ok' against ``email.size_limit_kb`` / ``size_warn_kb``."""
        return "over" if self.size_kb > self.limit_kb else "close" if self.size_kb > self.warn_kb else "ok"


def preheader_of(html: str) -> str:
    """The inbox preview text: the layout's hidden ``.preheader``, without its invisible padding."""
    doc = lxml_html.document_fromstring(html.encode("utf-8"))
    found = doc.find_class("preheader")
    text = found[0].text_content() if found else ""
    return " ".join(text.replace("\u200c", " ").split())


def make_preview(settings: Settings, slug: str) -> Preview:
    """``slug``'s email as ``issue_email_files`` makes it (RenderError: over the size limit, etc.)."""
    issue = load_issue(settings, checked_slug(slug))
    files = issue_email_files(settings, issue)
    html = files[f"emails/{issue.slug}.html"]
    message = BytesHeaderParser(policy=email.policy.default).parsebytes(files[f"emails/{issue.slug}.eml"])
    published = [a for a in issue.articles if issue.draft or not a.draft]
    feed = make_items(settings.site, published, {}, len(published))
    return Preview(
        issue=issue,
        subject=str(message["Subject"] or ""),
        preheader=preheader_of(html.decode("utf-8")),
        html=html,
        text=files[f"emails/{issue.slug}.txt"].decode("utf-8"),
        html_size=len(html),
        limit_kb=settings.email.size_limit_kb,
        warn_kb=settings.email.size_warn_kb,
        feed=tuple(feed),
    )


def scheme_variant(html: bytes, scheme: str | None) -> bytes:
    """The HTML with dark mode forced on or off (``scheme``), or as it is (None)."""
    if scheme is None:
        return html
    return _DARK_QUERY.sub(SCHEMES[scheme].encode(), html)


@router.get("/admin/issues/{slug}/email.html")
async def email_html(request: Request, slug: str, _session: ViewerSession) -> Response:
    """The issue's HTML part for the preview's iframes (``?scheme=light|dark`` to force a scheme)."""
    scheme = request.query_params.get("scheme")
    if scheme is not None and scheme not in SCHEMES:
        raise NotFoundError("no such colour scheme", hint="scheme is light or dark")
    settings = web_context(request).settings
    try:
        preview = await run_in_threadpool(make_preview, settings, slug)
    except NotFoundError:
        raise
    except PublisherError as exc:  # shown on the preview page; the frame says so plainly
        return Response(f"The email cannot be made: {exc.message}", media_type="text/plain", status_code=422)
    body = scheme_variant(preview.html, scheme)
    return Response(body, media_type="text/html; charset=utf-8", headers={"X-Frame-Options": "SAMEORIGIN"})


@router.get("/admin/issues.css")
def stylesheet(request: Request, _session: ViewerSession) -> Response:
    """The Issues pages' styles (the console's CSP allows no inline style)."""
    css = web_context(request).settings.paths.templates / "web" / "admin_issues.css"
    try:
        body = css.read_bytes()
    except OSError:
        body = b""
    return Response(body, media_type="text/css")


def _console_path(scope: Scope) -> str:
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path.removeprefix(root) if root and path.startswith(root) else path


class PreviewFramingMiddleware:
    """The CSP of the two framing routes, set over the console's (which forbids frames).

    Outside ``AdminHeadersMiddleware`` (installed after it), so it has the last word,
    on exactly two paths: the preview page may frame ourselves, the email may be framed by us.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = _console_path(scope) if scope["type"] == "http" else ""
        policy = EMAIL_CSP if _EMAIL_PATH.match(path) else PREVIEW_CSP if _PREVIEW_PATH.match(path) else None
        if policy is None:
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = message.get("headers", [])
                kept = [(n, v) for n, v in headers if n.lower() != b"content-security-policy"]
                message["headers"] = [*kept, (b"content-security-policy", policy.encode())]
            await send(message)

        await self.app(scope, receive, send_with_policy)
