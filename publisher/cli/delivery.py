"""Delivery commands: send, status, db upgrade (subscribers: ``cli/subscribers.py``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from publisher.cli.common import (
    ConfigOption,
    ProgressBar,
    console,
    err_console,
    escape,
    reports_errors,
    settings,
)
from publisher.cli.schedule import queued_lines
from publisher.config import Settings
from publisher.errors import NotFoundError
from publisher.models import SubscriberStatus
from publisher.ops.drain import DrainReport
from publisher.ops.feedback import send_warnings
from publisher.ops.queue import list_queue
from publisher.ops.send import SendOutcome, send_issue, send_test_copy
from publisher.ops.sunset import sunset_counts, tracking
from publisher.store import SendCounts, SendInfo, Store, open_store, upgrade
from publisher.worker import JobCounts, JobQueue, QueueStatus, queue_status

PARTIAL = 3  # exit code: some recipients (or rows) failed


def _out(text: str) -> None:
    """One message line on stdout, never re-wrapped (it may be piped or parsed)."""
    console.print(text, soft_wrap=True, highlight=False)


def _err(text: str) -> None:
    err_console.print(text, soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(send)
    app.command()(status)
    db = typer.Typer(help="Database maintenance.", no_args_is_help=True)
    db.command("upgrade")(db_upgrade)
    app.add_typer(db, name="db")


def _now() -> datetime:
    return datetime.now(UTC)


def _store(cfg: Settings) -> Store:
    return open_store(cfg.database.url)


@reports_errors
def send(
    issue: Annotated[str, typer.Argument(help="The issue's slug (its file or folder name).")],
    to: Annotated[
        str | None, typer.Option("--to", help="Send one test copy to this address; no subscriber gets it.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan and render, but send nothing.")] = False,
    local: Annotated[
        bool, typer.Option("--local", help="Send from this process even when `publisher worker`s run.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Send an issue to every confirmed subscriber (once: re-running sends only what is left)."""
    cfg = settings(config)
    if to is not None:
        with _store(cfg) as store:
            where = send_test_copy(cfg, issue, to, now=_now(), store=store)
        _out(f"sent a test copy of {escape(issue)} to {escape(to)} via {escape(where)}")
        return
    with _store(cfg) as store, ProgressBar(f"sending {issue}") as bar:
        outcome = send_issue(
            cfg, store, issue, clock=_now, dry_run=dry_run, progress=bar, local=local, workers=JobQueue()
        )
    for warning in outcome.warnings:
        _err(f"[yellow]warning:[/] {escape(warning)}")
    if outcome.drain is None:
        _out(_no_drain_line(issue, outcome))
        return
    _report_drain(issue, outcome, outcome.drain)


def _no_drain_line(issue: str, outcome: SendOutcome) -> str:
    """What ``send`` says when this process sent nothing (done before, a dry run, queued, no one)."""
    key = escape(outcome.key)
    if outcome.action == "waiting" or (outcome.action == "dry-run" and outcome.note):
        return f"{escape(issue)}: {escape(outcome.note)}"  # a subject test (ops.subject_test)
    if outcome.action == "already-sent":
        return f"{key} was already sent ({outcome.planned} planned); nothing to do."
    if outcome.action == "dry-run":
        return (
            f"dry run: would send {escape(issue)} to {outcome.to_send} subscriber(s) via "
            f"{escape(outcome.transport)}; nothing was sent and the ledger is unchanged."
        )
    if outcome.action in ("queued", "already-queued"):
        done = "queued" if outcome.action == "queued" else "is already queued:"
        return (
            f"{key} {done} {outcome.jobs} batch job(s) for {outcome.to_send} of "
            f"{outcome.planned} recipient(s); the workers send it (`publisher status` shows progress)."
        )
    return f"{key}: no confirmed subscriber is waiting for it; nothing sent."


def _report_drain(issue: str, outcome: SendOutcome, report: DrainReport) -> None:
    """The drain's figures and failures; exit 1 when it stopped, PARTIAL when rows failed or wait."""
    counts = report.counts
    _out(
        f"{escape(outcome.key)}: sent {report.sent} in {report.seconds:.1f}s ({report.rate:,.0f}/s) via "
        f"{escape(outcome.transport)}; in all {counts.sent} sent, {counts.failed} failed, "
        f"{counts.pending} pending of {counts.planned} planned."
    )
    for address, reason in report.failures[:20]:
        _err(f"[red]failed:[/] {escape(address)}: {escape(reason)}")
    if counts.failed > 20:
        _err(f"... and {counts.failed - 20} more (see `publisher status`)")
    if report.fatal is not None:
        _err(f"[bold red]error:[/] {escape(report.fatal.message)}")
        if report.fatal.hint:
            _err(f"[dim]hint: {escape(report.fatal.hint)}[/]")
    if counts.pending:
        _err(f"{counts.pending} not sent yet; run `publisher send {escape(issue)}` again to send them.")
    if report.fatal is not None:
        raise typer.Exit(1)
    if counts.failed or counts.pending:
        raise typer.Exit(PARTIAL)


@reports_errors
def status(
    send_key: Annotated[
        str | None,
        typer.Option("--send", metavar="KEY", help="One send (e.g. issue:SLUG) by recipient domain."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Show each send with its planned, sent, failed and pending counts, and the subscriber totals."""
    if send_key is not None:
        return _send_by_domain(settings(config), send_key)
    cfg = settings(config)
    with _store(cfg) as store:
        sends = store.ledger.sends()
        outcomes = store.feedback.outcomes_for([info.id for info, _ in sends])
        subs = store.subscribers.counts_by_status()
        jobs = queue_status(store)  # PostgreSQL: the workers' batch jobs
        queued = list_queue(store)
        sunset = sunset_counts(cfg, store, now=datetime.now(UTC))  # issue 16: ask once, then pause
    total = sum(subs.values())
    parts = ", ".join(f"{subs.get(s.value, 0)} {s.value}" for s in SubscriberStatus)
    _out(f"subscribers: {total} ({parts})")
    if tracking(cfg) or sunset.reengaged or sunset.paused:
        _out(
            f"sunsetting: {sunset.candidates} candidate(s), {sunset.reengaged} re-engaged (asked, "
            f"grace running), {sunset.paused} paused"
        )
    if queued:
        _out(f"queue: {len(queued)} issue(s)")
        for line in queued_lines(cfg, queued):
            _out(f"  {escape(line)}")
    else:
        _out("queue: nothing queued (`publisher queue ISSUE --at WHEN`)")
    if jobs is not None:
        t = jobs.total
        _out(
            f"workers: {jobs.workers} running; batch jobs: {t.todo} todo, {t.doing} doing, {t.failed} failed"
        )
    if not sends:
        _out("no sends yet")
        return
    _sends_table(sends, outcomes, jobs)
    for info, c in sends:
        for warning in send_warnings(info.key, c.sent, outcomes.get(info.id, {})):
            _err(f"[yellow]warning:[/] {escape(warning)}")


def _sends_table(
    sends: list[tuple[SendInfo, SendCounts]], outcomes: dict[int, dict[str, int]], jobs: QueueStatus | None
) -> None:
    """One row per send: its counts, what came back after the 250, its times (and its batch jobs)."""
    columns: tuple[str, ...] = ("send", "status", "planned", "sent", "failed", "pending", "skipped")
    columns += ("bounced", "complained", "unsubscribed", "started", "finished")
    if jobs is not None:
        columns += ("jobs todo", "jobs doing", "jobs failed")
    rows = []
    for info, c in sends:
        row: tuple[str, ...] = (info.key, info.status, str(c.planned), str(c.sent), str(c.failed))
        row += (str(c.pending), str(c.skipped), *_outcome_cells(outcomes.get(info.id, {})))
        row += (_when(info.started_at), _when(info.finished_at))
        if jobs is not None:
            row += _job_cells(jobs.by_send.get(info.id, JobCounts()))
        rows.append(row)
    _show(columns, rows)


def _send_by_domain(cfg: Settings, key: str) -> None:
    """What each mailbox provider did with one send: sent, bounced, complained, unsubscribed."""
    with _store(cfg) as store:
        info = store.ledger.get_send(key)
        if info is None:
            raise NotFoundError(f"no send {key}", hint="`publisher status` lists the sends")
        rows = store.feedback.outcomes_by_domain(info.id)
    _show(
        ("domain", "sent", "bounced", "complained", "unsubscribed"),
        [(domain, str(found.get("sent", 0)), *_outcome_cells(found)) for domain, found in rows.items()],
    )


def _outcome_cells(found: dict[str, int]) -> tuple[str, str, str]:
    """Hard/soft bounces, complaints and unsubscribes that came back after the 250."""
    hard, soft = found.get("hard_bounce", 0), found.get("soft_bounce", 0)
    return (
        f"{hard}+{soft} soft" if soft else str(hard),
        str(found.get("complaint", 0)),
        str(found.get("unsubscribe", 0)),
    )


def _job_cells(j: JobCounts) -> tuple[str, ...]:
    return (str(j.todo), str(j.doing), str(j.failed))


def _show(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A Rich table on a terminal; tab-separated lines elsewhere (whole values, easy to pipe)."""
    if console.is_terminal:
        table = Table()
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))
        console.print(table)
        return
    typer.echo("\t".join(columns))
    for row in rows:
        typer.echo("\t".join(row))


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


@reports_errors
def db_upgrade(config: ConfigOption = None) -> None:
    """Create or migrate the database to the newest schema (every command also does this by itself)."""
    cfg = settings(config)
    revision = upgrade(cfg.database.url)
    _out(f"database is at revision {revision} (newest)")
