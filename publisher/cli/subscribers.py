"""`publisher subscribers add|import|export|list|remove`: the list, by hand and by CSV."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from publisher.cli.common import ConfigOption, escape, reports_errors, settings
from publisher.cli.delivery import PARTIAL, _err, _now, _out, _show, _store, _when
from publisher.config import Settings
from publisher.content.sequences import load_welcome
from publisher.errors import NotFoundError, PublisherError
from publisher.models import Frequency, SubscriberStatus
from publisher.ops.feedback import erase_subscriber, hasher_for
from publisher.ops.welcome import send_welcome
from publisher.store import Filter
from publisher.store.csvio import KEPT, ImportReport, Suppression

WelcomeOption = Annotated[
    bool,
    typer.Option(
        "--welcome",
        help="Send the welcome mail (sequences/welcome/01-*.md) to those this import confirms "
        "(never twice to anyone).",
    ),
]


def register(app: typer.Typer) -> None:
    subs = typer.Typer(help="Add, import, export, list and remove subscribers.", no_args_is_help=True)
    subs.command("add")(subscribers_add)
    subs.command("import")(subscribers_import)
    subs.command("export")(subscribers_export)
    subs.command("list")(subscribers_list)
    subs.command("remove")(subscribers_remove)
    app.add_typer(subs, name="subscribers")


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
    resubscribe: Annotated[
        bool,
        typer.Option(
            "--resubscribe",
            help="Import addresses on the suppression list too (bounced, complained, unsubscribed, "
            "erased), taking them off it: only with their renewed consent.",
        ),
    ] = False,
    welcome: WelcomeOption = False,
    config: ConfigOption = None,
) -> None:
    """Import subscribers from CSV; each bad row is reported with its row and column, and the rest import.

    Addresses on the suppression list are left out (and counted) unless --resubscribe is given.
    """
    cfg = settings(config)
    if welcome:
        _check_welcome(cfg)
    suppression = Suppression(hasher_for(cfg.secret_key()), resubscribe=resubscribe)
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
                started = _now()
                report = store.subscribers.import_csv(
                    source, now=started, source_name=name, errors=out, suppression=suppression
                )
        except OSError as exc:
            raise NotFoundError(f"cannot read {file}: {exc.strerror or exc}") from None
    _print_import(report, errors)
    if welcome:
        _welcome(cfg, started)
    if report.refused:
        raise typer.Exit(PARTIAL if report.imported else 1)


def _check_welcome(cfg: Settings) -> None:
    """Before an import --welcome: a missing or broken welcome mail stops it (ContentError: file:line)."""
    if load_welcome(cfg) is None:
        raise PublisherError(
            "--welcome: there is no welcome mail", hint="write one as sequences/welcome/01-hello.md"
        )


def _welcome(cfg: Settings, since: datetime) -> None:
    """The welcome mail for everyone the import confirmed (at or after ``since``), once each ever."""
    with _store(cfg) as store:
        done = send_welcome(cfg, store, clock=_now, confirmed_since=since)
    _out(f"welcome mail: {done.planned} planned, {done.sent} sent, {done.failed} failed")


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
        + (
            f", {report.suppressed} suppressed (left out; --resubscribe imports them)"
            if report.suppressed
            else ""
        )
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
    """Erase a subscriber: their row and history go; the address stays unmailable as a keyed hash only.

    (To stop mail but keep the record, they unsubscribe instead.)
    """
    cfg = settings(config)
    with _store(cfg) as store:
        if not erase_subscriber(store, cfg, email, now=_now()):
            raise NotFoundError(
                f"no subscriber {email}", hint="`publisher subscribers list --search` finds one"
            )
    _out(f"removed {escape(email)}")
