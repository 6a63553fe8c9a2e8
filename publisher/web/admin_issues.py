"""The console's Issues pages: every issue with its state and ``check`` problems, and one issue's preview.

Read-only here (viewers see everything); the buttons post to
``admin_issue_actions``, which only editors may use. The states and problems
are ``ops.issue_state``'s (the same functions as `publisher check`), the
preview ``admin_preview``'s (the same functions as the build's email files).
"""

from __future__ import annotations

from datetime import UTC

from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from publisher.ops.issue_state import ContentReport, content_report
from publisher.web import admin_issue_actions, admin_preview
from publisher.web.admin_auth import ViewerSession
from publisher.web.admin_issue_page import console_page, issue_page
from publisher.web.admin_preview import PreviewFramingMiddleware
from publisher.web.requests import web_context

router = APIRouter(include_in_schema=False)


def _report(request: Request) -> ContentReport:
    ctx = web_context(request)
    return content_report(ctx.settings, ctx.store, now=ctx.now())


@router.get("/admin/issues")
async def issues(request: Request, session: ViewerSession) -> Response:
    """Every issue and article with its state, and `publisher check`'s problems beside each."""
    report = await run_in_threadpool(_report, request)
    return console_page(
        request,
        "admin_issues.html",
        title="Issues",
        report=report,
        tz=web_context(request).settings.site.tz,
        utc=UTC,
    )


@router.get("/admin/issues/{slug}")
async def issue(request: Request, slug: str, session: ViewerSession) -> Response:
    """The preview page: the email at 600 and 375 px, light and dark; text, subject, size, feed entry."""
    return await run_in_threadpool(issue_page, request, session, slug)


def install(app: FastAPI) -> None:
    """The Issues pages and their actions (before the archive's catch-all), and the preview's CSP."""
    app.include_router(admin_preview.router)  # /admin/issues.css before /admin/issues/{slug}
    app.include_router(router)
    app.include_router(admin_issue_actions.router)
    app.add_middleware(PreviewFramingMiddleware)
