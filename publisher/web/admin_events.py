"""Live progress of running sends for the console: ``GET /admin/events`` (Server-Sent Events).

The ledger is the truth: each second the stream reads the running sends'
counts (the same ``store.ledger`` counts as ``publisher status``) and sends a
``progress`` event when they changed, a comment line otherwise so proxies keep
the connection open. A send seen running stays in the events until it is done,
so the page sees it reach 100 %. A stream lasts a few minutes, then ends; the
browser's EventSource reconnects (after ``retry``), and the session is checked
again then. Without a session: 401 (``admin_auth``).

``/admin/dashboard.js`` is the few lines that apply the events to the page;
the console's CSP has to allow ``script-src 'self'; connect-src 'self'`` for
it to run, and the dashboard works without it (a reload link).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from publisher.web.admin_auth import ViewerSession
from publisher.web.admin_view import SendRow, running_rows
from publisher.web.requests import web_context

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class StreamPolicy:
    """How often the stream looks at the ledger, how long it lasts, how often it says it is alive."""

    poll: float = 1.0
    lifetime: float = 300.0
    keepalive: float = 15.0
    retry_ms: int = 2000


def progress_event(rows: list[SendRow]) -> dict[str, object]:
    """What the page needs to redraw each send's progress bar."""
    return {
        "sends": [
            {
                "id": r.id,
                "key": r.key,
                "status": r.status,
                "planned": r.counts.planned,
                "sent": r.counts.sent,
                "failed": r.counts.failed,
                "skipped": r.counts.skipped,
                "pending": r.counts.pending,
                "percent": r.percent,
            }
            for r in rows
        ]
    }


async def _stream(request: Request, policy: StreamPolicy) -> AsyncIterator[str]:
    ctx = web_context(request)
    yield f"retry: {policy.retry_ms}\n\n"
    watched: set[int] = set()
    last: dict[str, object] | None = None
    started = quiet_since = time.monotonic()
    while time.monotonic() - started < policy.lifetime:
        rows = await run_in_threadpool(running_rows, ctx.settings, ctx.store, sorted(watched))
        watched = {r.id for r in rows if r.status == "running"}  # a finished send is shown done once
        event = progress_event(rows)
        if event != last:
            yield f"event: progress\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"
            last, quiet_since = event, time.monotonic()
        elif time.monotonic() - quiet_since >= policy.keepalive:
            yield ": still here\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(policy.poll)
        if await request.is_disconnected():
            break


@router.get("/admin/events")
async def events(request: Request, session: ViewerSession) -> Response:
    """Running sends' progress as Server-Sent Events (``event: progress``, JSON data)."""
    policy: StreamPolicy = request.app.state.admin_events
    return StreamingResponse(
        _stream(request, policy),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/admin/dashboard.js")
def script(request: Request) -> Response:
    """The dashboard's few lines of script (progressive: the page works without them)."""
    path = web_context(request).settings.paths.templates / "web" / "admin_dashboard.js"
    try:
        body = path.read_bytes()
    except OSError:
        body = b""
    return Response(body, media_type="text/javascript")


def install(app: FastAPI, policy: StreamPolicy | None = None) -> None:
    app.state.admin_events = policy or StreamPolicy()
    app.include_router(router)
