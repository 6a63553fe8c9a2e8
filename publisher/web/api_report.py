"""``GET /api/sends/{id}/report``: the same report as ``publisher report`` (``ops.report``), as JSON."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request
from starlette.concurrency import run_in_threadpool

from publisher.errors import NotFoundError
from publisher.ops.report import send_report
from publisher.web.api_guard import guarded_router
from publisher.web.api_models import error_responses
from publisher.web.requests import web_context

router = guarded_router()


@router.get(
    "/sends/{send_id}/report",
    responses=error_responses(404),
    summary="One send's report: delivered, bounced, complained, unsubscribed, human clicks, top links",
)
async def get_report(request: Request, send_id: Annotated[int, Path(ge=1, le=2**62)]) -> dict[str, Any]:
    ctx = web_context(request)
    report = await run_in_threadpool(send_report, ctx.store, send_id, opens=ctx.settings.analytics.opens)
    if report is None:
        raise NotFoundError(f"no send {send_id}", hint="GET /api/sends lists them")
    return report.as_json()
