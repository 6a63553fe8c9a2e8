"""One send's report in the console (``/admin/sends/{id}``): what each mailbox provider did with it.

The same numbers as ``publisher status --send`` and ``GET /api/sends/{id}``
(``store.ledger.counts``, ``store.feedback.outcomes_by_send`` and
``outcomes_by_domain``), as tables and as a pygal chart of the biggest domains; and
the clicks ``publisher report`` shows (``ops.report``: per send and link, humans apart
from machines), as a table and a chart of the top links.
"Delivered" is what the server accepted (the ledger's ``sent``); bounces,
complaints and unsubscribes are the facts that came back after that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, FastAPI, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from publisher.config import Settings
from publisher.errors import NotFoundError
from publisher.ops.report import SendReport, send_report
from publisher.store import Store
from publisher.web.admin_auth import ViewerSession, console_page, csrf_token
from publisher.web.admin_view import SendRow, send_row
from publisher.web.charts import DOMAINS, LINKS, bar_chart
from publisher.web.requests import web_context

router = APIRouter(include_in_schema=False)
CHARTED_DOMAINS = 10  # the chart shows the biggest; the table shows them all
SHOWN_DOMAINS = 500


@dataclass(frozen=True)
class DomainRow:
    domain: str
    delivered: int
    bounced: int
    complained: int
    unsubscribed: int


@dataclass(frozen=True)
class Report:
    send: SendRow
    outcomes: dict[str, int]
    domains: list[DomainRow]
    more_domains: int  # how many domains the table leaves out
    clicks: SendReport | None  # what ``publisher report`` shows (None: the send went before clicks)


def domain_rows(by_domain: dict[str, dict[str, int]]) -> list[DomainRow]:
    """``outcomes_by_domain``'s answer as rows, biggest domains first (its order)."""
    return [
        DomainRow(
            domain=domain,
            delivered=found.get("sent", 0),
            bounced=found.get("hard_bounce", 0) + found.get("soft_bounce", 0),
            complained=found.get("complaint", 0),
            unsubscribed=found.get("unsubscribe", 0),
        )
        for domain, found in by_domain.items()
    ]


def read_report(settings: Settings, store: Store, send_id: int) -> Report | None:
    info = store.ledger.get_send_by_id(send_id)
    if info is None:
        return None
    counts = store.ledger.counts(send_id)
    outcomes = store.feedback.outcomes_by_send(send_id)
    rows = domain_rows(store.feedback.outcomes_by_domain(send_id))
    return Report(
        send=send_row(settings, info, counts, outcomes),
        outcomes=outcomes,
        domains=rows[:SHOWN_DOMAINS],
        more_domains=max(0, len(rows) - SHOWN_DOMAINS),
        clicks=send_report(store, send_id, opens=settings.analytics.opens),
    )


def domains_chart(report: Report) -> str:
    top = report.domains[:CHARTED_DOMAINS]
    values = [
        [r.delivered for r in top],
        [r.bounced for r in top],
        [r.complained for r in top],
        [r.unsubscribed for r in top],
    ]
    desc = (
        f"Delivered, bounced, complained and unsubscribed for the {len(top)} biggest recipient domains "
        f"of {report.send.key}; the table below has the same numbers for every domain."
    )
    return bar_chart(DOMAINS, "By recipient domain", desc, [r.domain for r in top], values)


def links_chart(clicks: SendReport) -> str:
    top = clicks.top_links
    desc = f"Human and machine clicks on the {len(top)} most clicked links; the table has the same numbers."
    values = [[lk.human_clicks for lk in top], [lk.machine_clicks for lk in top]]
    return bar_chart(LINKS, "Clicks by link", desc, [f"{lk.link_no}. {lk.url[:60]}" for lk in top], values)


@router.get("/admin/sends/{send_id}")
async def send_report_page(
    request: Request, session: ViewerSession, send_id: Annotated[int, Path(ge=1, le=2**62)]
) -> Response:
    """One send: its counts, what came back, and both by recipient domain."""
    ctx = web_context(request)
    report = await run_in_threadpool(read_report, ctx.settings, ctx.store, send_id)
    if report is None:
        raise NotFoundError(f"no send {send_id}", hint="the dashboard lists the latest sends")
    return console_page(
        request,
        "admin_report.html",
        title=f"Report: {report.send.key}",
        editor=session.editor,
        csrf=csrf_token(ctx.secret, session),
        report=report,
        chart=domains_chart(report) if report.domains else "",
        links_chart=links_chart(report.clicks) if report.clicks and report.clicks.top_links else "",
    )


def install(app: FastAPI) -> None:
    app.include_router(router)
