"""`publisher report [SEND]`: how a send went, and what readers clicked (``ops.report``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from publisher.cli.common import ConfigOption, fail, reports_errors, settings
from publisher.lines import visible
from publisher.ops.clicks import prune_clicks
from publisher.ops.opens import OpenReport, prune_opens
from publisher.ops.report import SendReport, find_send, hourly_series, send_report, sparkline
from publisher.ops.subject_test import TestSummary, test_summary
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
            gone = prune_opens(cfg, store, datetime.now(UTC))
            if gone or cfg.analytics.opens:
                typer.echo(f"deleted {gone} raw open event(s) older than {cfg.analytics.retention.days} days")
        send_id = find_send(store, send)
        test = test_summary(store, send, send_id)  # an issue's subject test: both subjects' figures
        if send_id is None:
            if test is not None:  # the sample is out, the rest not yet planned
                typer.echo("\n".join(subject_test_lines(test)))
                return
            if prune and send is None:
                return
            raise fail(f"no send {send}" if send else "no sends yet", hint="`publisher status` lists sends")
        got = send_report(store, send_id, opens=cfg.analytics.opens)
    if got is not None:
        typer.echo("\n".join(report_lines(got)))
    if test is not None:
        typer.echo("\n".join(["", *subject_test_lines(test)]))


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
    if r.opens is not None:
        lines += ["", *open_lines(r.opens)]
    return lines


def open_lines(o: OpenReport) -> list[str]:
    """Opens (analytics.opens): human image loads, each machine class apart, and the estimate warning."""
    rate = f"{o.open_rate:.1%}" if o.open_rate is not None else "-"
    rows = [
        ("human opens", str(o.human_opens)),
        ("open rate", rate),
        *((f"machine opens ({kind})", str(n)) for kind, n in o.machine_opens.items()),
        ("opens / hour", sparkline(hourly_series(o.opens_by_hour)) or "-"),
    ]
    width = max(len(k) for k, _ in rows)
    return [f"{k:<{width}}  {v}" for k, v in rows] + ["", o.note]


def subject_test_lines(t: TestSummary) -> list[str]:
    """Each subject of a subject test: its sample, deliveries, human clicks, and which won."""
    r = t.record
    if r.winner is None:
        state = f"deciding at {r.decide_at:%Y-%m-%d %H:%M} UTC"
    else:
        rest = "not sent yet" if t.rest_delivered is None else f"{t.rest_delivered} delivered"
        state = f"decided {r.decided_at:%Y-%m-%d %H:%M} UTC; the rest: {rest}"
    lines = [
        f"subject test of {r.issue_slug}: {r.sample_bp / 100:g}% of {r.population} in the sample; {state}",
        f"{'':2}  {'sample':>6}  {'delivered':>9}  {'human clicks':>12}  subject",
    ]
    for v in t.variants:
        mark = "->" if v.won else ""
        lines.append(f"{mark:2}  {v.sample:>6}  {v.delivered:>9}  {v.human_clicks:>12}  {visible(v.subject)}")
    if r.clicks:
        lines.append(
            f"decided on {', '.join(map(str, r.clicks))} human click(s); a tie goes to the first subject"
        )
    return lines
