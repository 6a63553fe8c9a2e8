"""Delivery commands: send, status, subscribers add|import|export|list|remove, db upgrade."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
from publisher.config import Settings
from publisher.errors import NotFoundError, PublisherError
from publisher.models import Frequency, SubscriberStatus
from publisher.store import Filter, Store, open_store
from publisher.store.csvio import KEPT, ImportReport

if TYPE_CHECKING:
    from publisher.store.jobs import JobCounts

PARTIAL = 3  # exit code: some recipients (or rows) failed


def _out(text: str) -> None:
    """One message line on stdout, never re-wrapped (it may be piped or parsed)."""
    console.print(text, soft_wrap=True, highlight=False)


def _err(text: str) -> None:
    err_console.print(text, soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(send)
    app.command()(status)
    subs = typer.Typer(help="Add, import, export, list and remove subscribers.", no_args_is_help=True)
    subs.command("add")(subscribers_add)
    subs.command("import")(subscribers_import)
    subs.command("export")(subscribers_export)
    subs.command("list")(subscribers_list)
    subs.command("remove")(subscribers_remove)
    app.add_typer(subs, name="subscribers")
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
    from publisher.ops.send import send_issue, send_test_copy

    cfg = settings(config)
    if to is not None:
        where = send_test_copy(cfg, issue, to, now=_now())
        _out(f"sent a test copy of {escape(issue)} to {escape(to)} via {escape(where)}")
        return
    with _store(cfg) as store, ProgressBar(f"sending {issue}") as bar:
        outcome = send_issue(cfg, store, issue, clock=_now, dry_run=dry_run, progress=bar, local=local)
    for warning in outcome.warnings:
        _err(f"[yellow]warning:[/] {escape(warning)}")
    if outcome.action == "already-sent":
        _out(f"{escape(outcome.key)} was already sent ({outcome.planned} planned); nothing to do.")
        return
    if outcome.action == "dry-run":
        _out(
            f"dry run: would send {escape(issue)} to {outcome.to_send} subscriber(s) via "
            f"{escape(outcome.transport)}; nothing was sent and the ledger is unchanged."
        )
        return
    if outcome.action in ("queued", "already-queued"):
        done = "queued" if outcome.action == "queued" else "is already queued:"
        _out(
            f"{escape(outcome.key)} {done} {outcome.jobs} batch job(s) for {outcome.to_send} of "
            f"{outcome.planned} recipient(s); the workers send it (`publisher status` shows progress)."
        )
        return
    if outcome.action == "nothing-to-send":
        _out(f"{escape(outcome.key)}: no confirmed subscriber is waiting for it; nothing sent.")
        return
    report = outcome.drain
    assert report is not None
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
def status(config: ConfigOption = None) -> None:
    """Show each send with its planned, sent, failed and pending counts, and the subscriber totals."""
    from publisher.cli.schedule import queued_lines
    from publisher.ops.queue import list_queue
    from publisher.store.jobs import JobCounts, queue_status

    cfg = settings(config)
    with _store(cfg) as store:
        sends = store.ledger.sends()
        subs = store.subscribers.counts_by_status()
        jobs = queue_status(store)  # PostgreSQL: the workers' batch jobs
        queued = list_queue(store)
    total = sum(subs.values())
    parts = ", ".join(f"{subs.get(s.value, 0)} {s.value}" for s in SubscriberStatus)
    _out(f"subscribers: {total} ({parts})")
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
    columns = ("send", "status", "planned", "sent", "failed", "pending", "skipped", "started", "finished")
    if jobs is not None:
        columns += ("jobs todo", "jobs doing", "jobs failed")
    _show(
        columns,
        [
            (
                info.key,
                info.status,
                str(c.planned),
                str(c.sent),
                str(c.failed),
                str(c.pending),
                str(c.skipped),
                _when(info.started_at),
                _when(info.finished_at),
            )
            + (() if jobs is None else _job_cells(jobs.by_send.get(info.id, JobCounts())))
            for info, c in sends
        ],
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
def subscribers_add(
    email: Annotated[str, typer.Argument(help="The address to add.")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    status: Annotated[SubscriberStatus, typer.Option(help="Start as confirmed or pending.")] = (
        SubscriberStatus.CONFIRMED
    ),
    frequency: Annotated[Frequency, typer.Option(help="instant, daily or weekly.")] = Frequency.INSTANT,
    topics: Annotated[str, typer.Option(help="Topics, separated by ';'.")] = "",
    timezone: Annotated[str, typer.Option(help="IANA time zone for digests.")] = "UTC",
    config: ConfigOption = None,
) -> None:
    """Add one subscriber."""
    cfg = settings(config)
    with _store(cfg) as store:
        s = store.subscribers.add(
            email, now=_now(), name=name, status=status, frequency=frequency, topics=topics, timezone=timezone
        )
    _out(f"added {escape(s.email)} ({s.status.value}, {s.frequency.value})")


@reports_errors
def subscribers_import(
    file: Annotated[
        Path, typer.Argument(help="CSV with a header row: email, name, status, frequency, topics, timezone.")
    ],
    errors: Annotated[
        Path | None,
        typer.Option(
            "--errors",
            metavar="FILE",
            help=f"Write every refused row to FILE (the screen shows the first {KEPT}).",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Import subscribers from CSV; each bad row is reported with its row and column, and the rest import."""
    cfg = settings(config)
    name = "stdin" if str(file) == "-" else str(file)
    try:
        sink = errors.open("w", encoding="utf-8", errors="backslashreplace") if errors else nullcontext()
    except OSError as exc:
        raise PublisherError(f"cannot write {errors}: {exc.strerror or exc}") from None
    with sink as out:
        try:
            raw = sys.stdin.fileno() if str(file) == "-" else file
            # Bad bytes become surrogates that the importer reports by row, rather than one crash.
            with (
                open(
                    raw, encoding="utf-8-sig", errors="surrogateescape", newline="", closefd=raw is file
                ) as source,
                _store(cfg) as store,
            ):
                report = store.subscribers.import_csv(source, now=_now(), source_name=name, errors=out)
        except OSError as exc:
            raise NotFoundError(f"cannot read {file}: {exc.strerror or exc}") from None
    _print_import(report, errors)
    if report.refused:
        raise typer.Exit(PARTIAL if report.imported else 1)


def _print_import(report: ImportReport, errors: Path | None) -> None:
    """The first notes and errors (each with its row number), how many more, then the counts."""
    for notice in report.notices:
        _err(f"[dim]note:[/] {escape(str(notice))}")
    if report.noted > len(report.notices):
        _err(f"[dim]note: … and {report.noted - len(report.notices)} more notes[/]")
    for problem in report.problems:
        _err(f"[bold red]error:[/] {escape(str(problem))}")
    more = report.refused - len(report.problems)
    if more:
        where = f"see {escape(str(errors))}" if errors else "list them all with --errors FILE"
        _err(f"[bold red]error:[/] … and {more} more ({where})")
    _out(
        f"imported {report.imported} of {report.rows} row(s): {report.added} added, "
        f"{report.updated} updated, {report.unchanged} unchanged, {report.merged} duplicate(s) merged, "
        f"{report.refused} refused"
    )


@reports_errors
def subscribers_export(
    file: Annotated[Path | None, typer.Argument(help="Where to write (default: standard output).")] = None,
    status: Annotated[SubscriberStatus | None, typer.Option(help="Only subscribers in this status.")] = None,
    config: ConfigOption = None,
) -> None:
    """Export subscribers as CSV (the import format: the file imports back unchanged).

    A cell a spreadsheet would run as a formula (starting with = + - @, tab or CR) is written
    with a leading ' so it shows as text; import removes it.
    """
    cfg = settings(config)
    with _store(cfg) as store:
        if file is None or str(file) == "-":
            n = store.subscribers.export_csv(sys.stdout, Filter(status=status))
            sys.stdout.flush()
            return
        tmp = file.with_name(f".{file.name}.tmp")
        with tmp.open("w", encoding="utf-8", newline="") as out:
            n = store.subscribers.export_csv(out, Filter(status=status))
        tmp.replace(file)
    _err(f"exported {n} subscriber(s) to {escape(str(file))}")


@reports_errors
def subscribers_list(
    status: Annotated[SubscriberStatus | None, typer.Option(help="Only this status.")] = None,
    frequency: Annotated[Frequency | None, typer.Option(help="Only this frequency.")] = None,
    topic: Annotated[str | None, typer.Option(help="Only subscribers of this topic.")] = None,
    search: Annotated[str | None, typer.Option(help="Part of the address or name.")] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many.")] = 100,
    config: ConfigOption = None,
) -> None:
    """List subscribers (oldest first)."""
    cfg = settings(config)
    flt = Filter(status=status, frequency=frequency, topic=topic, search=search)
    with _store(cfg) as store:
        rows = store.subscribers.list(flt, limit=limit)
        total = store.subscribers.count(flt)
    _show(
        ("email", "name", "status", "frequency", "topics", "timezone", "since"),
        [
            (
                x.email,
                x.name,
                x.status.value,
                x.frequency.value,
                ";".join(x.topics),
                x.timezone,
                _when(x.created_at),
            )
            for x in rows
        ],
    )
    more = f" (showing {len(rows)}; use --limit)" if total > len(rows) else ""
    _out(f"{total} subscriber(s){more}")


@reports_errors
def subscribers_remove(
    email: Annotated[str, typer.Argument(help="The address to forget.")],
    config: ConfigOption = None,
) -> None:
    """Remove a subscriber entirely (to stop mail but keep the record, they unsubscribe instead)."""
    cfg = settings(config)
    with _store(cfg) as store:
        if not store.subscribers.remove(email):
            raise NotFoundError(
                f"no subscriber {email}", hint="`publisher subscribers list --search` finds one"
            )
    _out(f"removed {escape(email)}")


@reports_errors
def db_upgrade(config: ConfigOption = None) -> None:
    """Create or migrate the database to the newest schema (every command also does this by itself)."""
    from publisher.store import upgrade

    cfg = settings(config)
    revision = upgrade(cfg.database.url)
    _out(f"database is at revision {revision} (newest)")
