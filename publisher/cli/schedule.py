"""Scheduling commands: queue, unqueue, digest, run."""

from __future__ import annotations

import logging
import sys
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Annotated

import typer

from publisher.cli.common import ConfigOption, console, err_console, escape, reports_errors, settings
from publisher.cli.inbound import listening, polling
from publisher.config import Settings
from publisher.errors import PublisherError
from publisher.ops.digest import FREQUENCIES, run_digest
from publisher.ops.queue import list_queue, parse_when, queue_issue, unqueue_issue
from publisher.schedule import RunOptions, run_scheduler
from publisher.store import QueuedIssue, Store, open_store
from publisher.worker import JobQueue

PARTIAL = 3


def register(app: typer.Typer) -> None:
    app.command("queue")(queue)
    app.command("unqueue")(unqueue)
    app.command("digest")(digest)
    app.command("run")(run)


def _now() -> datetime:
    return datetime.now(UTC)


def _local(cfg: Settings, when: datetime) -> str:
    local = when.astimezone(cfg.site.tz)
    clock = "%H:%M:%S" if local.second else "%H:%M"
    return f"{local:%Y-%m-%d {clock}} {local.tzname()}"


def queued_lines(cfg: Settings, rows: list[QueuedIssue]) -> list[str]:
    """One line per queued (or missed/failed/sending) issue, for `publisher queue` and `publisher status`."""
    out = []
    for q in rows:
        line = f"{q.slug}: {q.status} for {_local(cfg, q.send_at)}"
        if q.source == "front_matter":
            line += " (send_at in its front matter)"
        if q.note and q.status != "queued":
            line += f" - {q.note}"
        out.append(line)
    return out


def _store(cfg: Settings) -> Store:
    return open_store(cfg.database.url)


@reports_errors
def queue(
    issue: Annotated[
        str | None, typer.Argument(help="The issue's slug; leave out to list the queue.")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="WHEN",
            help="When to send: 2026-12-01T08:00+01:00, or 2026-12-01 08:00 in site.timezone.",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Queue an issue to be sent at a given time by `publisher run` (again: moves the time)."""
    cfg = settings(config)
    with _store(cfg) as store:
        if issue is None:
            rows = list_queue(store)
            for line in queued_lines(cfg, rows):
                console.print(escape(line), highlight=False, soft_wrap=True)
            if not rows:
                console.print("nothing is queued", highlight=False)
            return
        if at is None:
            raise PublisherError("say when: --at WHEN", hint="e.g. --at '2026-12-01 08:00'")
        row = queue_issue(cfg, store, issue, parse_when(at, cfg.site.tz), now=_now())
    console.print(
        f"queued {escape(row.slug)} for {_local(cfg, row.send_at)} (UTC {row.send_at:%H:%M:%S}); "
        "`publisher run` sends it then",
        highlight=False,
        soft_wrap=True,
    )


@reports_errors
def unqueue(
    issue: Annotated[str, typer.Argument(metavar="ISSUE", help="The issue's slug.")],
    config: ConfigOption = None,
) -> None:
    """Take an issue off the queue (it is not sent; queue it again any time)."""
    cfg = settings(config)
    with _store(cfg) as store:
        done = unqueue_issue(cfg, store, issue, now=_now())
    if not done:
        raise PublisherError(f"{issue} is not queued", hint="`publisher queue` lists what is")
    console.print(f"unqueued {escape(issue)}", highlight=False)


@reports_errors
def digest(
    frequency: Annotated[str, typer.Argument(metavar="daily|weekly", help="Which digest round to run.")],
    now: Annotated[
        str | None,
        typer.Option("--now", metavar="WHEN", help="Run as if it were this time (default: now)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan and render, but record and send nothing.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Run one digest round by hand: every subscriber whose delivery time has come gets their digest."""
    if frequency not in FREQUENCIES:
        raise typer.BadParameter(f"expected daily or weekly, got {frequency!r}", param_hint="FREQUENCY")
    cfg = settings(config)
    when = parse_when(now, cfg.site.tz).astimezone(UTC) if now else _now()
    with _store(cfg) as store:
        clock = (lambda: when) if now else _now
        report = run_digest(cfg, store, frequency, clock=clock, dry_run=dry_run, workers=JobQueue())
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    head = "dry run: " if dry_run else ""
    console.print(
        f"{head}{frequency} digests at {when:%Y-%m-%d %H:%M} UTC: {report.due} subscriber(s) due "
        f"({report.mailed} with news, {report.quiet} with nothing new) in {report.zones} zone(s); "
        f"{report.variants} variant(s), {report.rendered} rendered",
        highlight=False,
        soft_wrap=True,
    )
    if report.not_yet:
        console.print(
            f"{report.not_yet} subscribed after their period began: from their next one", highlight=False
        )
    if report.too_late:
        console.print(
            f"skipped (period began more than schedule.max_lateness ago): {', '.join(report.too_late)}",
            highlight=False,
            soft_wrap=True,
        )
    if dry_run:
        console.print(f"would send {report.mailed} message(s); nothing was recorded or sent", highlight=False)
        return
    console.print(
        f"sent {report.sent} message(s), {report.failed} failed, {report.pending} pending", highlight=False
    )
    if report.handed:  # PostgreSQL with workers running: they send it
        queued = sum(h.jobs for h in report.handed)
        console.print(f"the workers send the rest: {queued} batch job(s) queued", highlight=False)
    if any(r.fatal for r in report.drains):
        raise typer.Exit(1)
    if report.failed or report.pending:
        raise typer.Exit(PARTIAL)


@reports_errors
def run(
    web: Annotated[
        bool, typer.Option("--web/--no-web", help="Serve the web app beside the scheduler.")
    ] = True,
    poll: Annotated[float, typer.Option(help="Seconds between checks for content and queue changes.")] = 5.0,
    digest_every: Annotated[float, typer.Option(help="Seconds between digest checks.")] = 60.0,
    config: ConfigOption = None,
) -> None:
    """Run the scheduler (queued issues, digests) and the web app, until SIGTERM or Ctrl-C."""
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("apscheduler", "alembic", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cfg = settings(config)
    with _store(cfg) as store, ExitStack() as inbound:
        if cfg.inbound.listen:  # bounces and complaints too, as `publisher inbound` receives them
            inbound.enter_context(listening(cfg, store, cfg.inbound.listen))
        if cfg.inbound.mailbox is not None:
            inbound.enter_context(polling(cfg, store))
        options = RunOptions(poll=poll, digest_every=digest_every, web=web, workers=JobQueue())
        run_scheduler(cfg, store, options=options)
