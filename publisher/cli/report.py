"""`publisher report [SEND]`: how a send went, and what readers clicked (``ops.report``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from publisher.cli.common import ConfigOption, fail, reports_errors, settings
from publisher.ops.clicks import prune_clicks
from publisher.ops.report import SendReport, find_send, send_report
from publisher.store import open_store


def register(app: typer.Typer) -> None:
    app.command("report")(report)


@reports_errors
def report(
    send: Annotated[
        str | None,
        typer.Argument(help="A send's id or key (issue:<slug>, or just the slug); default: the newest."),
    ] = None,
    prune: Annotated[
        bool, typer.Option("--prune", help="Also delete raw click events older than analytics.retention.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Print a send's figures: delivered, bounced, complained, unsubscribed, human clicks, top links."""
    cfg = settings(config)
    with open_store(cfg.database.url) as store:
        if prune:
            gone = prune_clicks(cfg, store, datetime.now(UTC))
            typer.echo(f"deleted {gone} raw click event(s) older than {cfg.analytics.retention.days} days")
        send_id = find_send(store, send)
        if send_id is None:
            if prune and send is None:
                return
            raise fail(f"no send {send}" if send else "no sends yet", hint="`publisher status` lists sends")
        got = send_report(store, send_id)
    if got is not None:
        typer.echo("\n".join(report_lines(got)))


def report_lines(r: SendReport) -> list[str]:
    """The report as a table, a sparkline and the top links."""
    rate = f"{r.click_rate:.1%}" if r.click_rate is not None else "-"
    machine = ", ".join(f"{n} {kind}" for kind, n in sorted(r.machine_clicks.items())) or "0"
    rows = [
        ("send", f"#{r.send_id} {r.key} ({r.status}, {r.created_at:%Y-%m-%d %H:%M} UTC)"),
        ("delivered", str(r.delivered)),
        ("failed", str(r.failed)),
        ("bounced", str(r.bounced)),
        ("complained", str(r.complained)),
        ("unsubscribed", str(r.unsubscribed)),
        ("human clicks", str(r.human_clicks)),
        ("click rate", rate),
        ("machine clicks", f"{machine} (not counted above)"),
        ("clicks / hour", r.sparkline or "-"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    if r.top_links:
        lines += ["", "top links (human clicks)"]
        lines += [f"{lk.human_clicks:>8}  {lk.link_no:>3}. {lk.url}" for lk in r.top_links]
    lines += ["", r.note]
    return lines
