"""The console's dashboard (``/admin/dashboard``): what goes out next, what is going out, what came back.

One page, server-rendered, useful without JavaScript: the next queued issues
(in the site's time zone and in UTC), running sends with their progress (kept
live by ``admin_events`` when scripts may run), the last sends with what came
back, the list's totals and weekly growth (a pygal chart and the same numbers
in a table), and the problems ``publisher check`` would print.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from publisher.config import Settings
from publisher.errors import Problem
from publisher.models import SubscriberStatus
from publisher.ops.queue import list_queue
from publisher.store import QueuedIssue, Store
from publisher.store.reports import WeekGrowth, weekly_growth
from publisher.web import admin_events, admin_reports
from publisher.web.admin_auth import ViewerSession, console_page, csrf_token
from publisher.web.admin_view import (
    SendRow,
    When,
    check_problems,
    running_rows,
    send_row,
    when,
)
from publisher.web.charts import GROWTH, bar_chart, charts_css
from publisher.web.requests import web_context

router = APIRouter(include_in_schema=False)
RECENT_SENDS = 5  # each costs counts over its deliveries rows (about 4 ms per 100,000 on SQLite)
QUEUED_SHOWN = 5
GROWTH_WEEKS = 12


@dataclass(frozen=True)
class QueuedRow:
    slug: str
    status: str
    at: When
    note: str


@dataclass(frozen=True)
class Dashboard:
    """Everything the page shows, read in one go off the event loop."""

    queued: list[QueuedRow]
    running: list[SendRow]
    recent: list[SendRow]
    totals: list[tuple[str, int]]
    total: int
    growth: list[WeekGrowth]
    problems: list[Problem]


def _queued(settings: Settings, rows: list[QueuedIssue]) -> list[QueuedRow]:
    out = []
    for q in rows[:QUEUED_SHOWN]:
        at = when(settings, q.send_at)
        assert at is not None
        out.append(QueuedRow(q.slug, q.status, at, q.note))
    return out


def read_dashboard(settings: Settings, store: Store, now: datetime) -> Dashboard:
    """The dashboard's numbers, from the same store functions as ``publisher status``."""
    sends = store.ledger.sends(limit=RECENT_SENDS)
    outcomes = store.feedback.outcomes_for([info.id for info, _ in sends])
    by_status = store.subscribers.counts_by_status()
    return Dashboard(
        queued=_queued(settings, list_queue(store)),
        running=running_rows(settings, store),
        recent=[send_row(settings, info, c, outcomes.get(info.id, {})) for info, c in sends],
        totals=[(s.value, by_status.get(s.value, 0)) for s in SubscriberStatus],
        total=sum(by_status.values()),
        growth=weekly_growth(store, until=now, weeks=GROWTH_WEEKS),
        problems=check_problems(settings, store, now),
    )


def growth_chart(growth: list[WeekGrowth]) -> str:
    labels = [f"{w.start:%d %b}" for w in growth]
    values = [[w.confirmed for w in growth], [w.unsubscribed for w in growth], [w.bounced for w in growth]]
    desc = (
        f"Addresses confirmed, unsubscribed and bounced in each of the last {len(growth)} weeks "
        "(weeks start on Monday, UTC); the table below has the same numbers."
    )
    return bar_chart(GROWTH, "Subscribers per week", desc, labels, values)


@router.get("/admin/dashboard")
async def dashboard(request: Request, session: ViewerSession) -> Response:
    """The editor's first page after signing in."""
    ctx = web_context(request)
    data = await run_in_threadpool(read_dashboard, ctx.settings, ctx.store, ctx.now())
    return console_page(
        request,
        "admin_dashboard.html",
        title="Dashboard",
        nav="dashboard",
        editor=session.editor,
        csrf=csrf_token(ctx.secret, session),
        data=data,
        chart=growth_chart(data.growth),
        timezone=ctx.settings.site.timezone,
    )


@router.get("/admin/dashboard.css")
def stylesheet(request: Request) -> Response:
    """The dashboard's and reports' styles, and the charts' (pygal's CSS, which may not be inline)."""
    own = web_context(request).settings.paths.templates / "web" / "admin_dashboard.css"
    try:
        body = own.read_text("utf-8")
    except OSError:
        body = ""
    return Response(body + "\n" + charts_css(), media_type="text/css")


def install(app: FastAPI) -> None:
    """The dashboard, its stylesheet, its event stream and the send reports (before the catch-all)."""
    app.include_router(router)
    admin_events.install(app)
    admin_reports.install(app)
