"""`publisher suppress add|remove|list|export`: the addresses no mail ever goes to."""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from publisher.cli.common import ConfigOption, escape, reports_errors, settings
from publisher.errors import NotFoundError
from publisher.ops.feedback import suppress, unsuppress
from publisher.store import open_store

REASONS = ("manual", "unsubscribed", "bounced", "complained")


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="The suppression list: addresses never mailed (bounced, complained, unsubscribed, erased, "
        "or added here). Every send, digest and test copy checks it.",
        no_args_is_help=True,
    )
    group.command("add")(suppress_add)
    group.command("remove")(suppress_remove)
    group.command("list")(suppress_list)
    group.command("export")(suppress_export)
    app.add_typer(group, name="suppress")


@reports_errors
def suppress_add(
    address: Annotated[str, typer.Argument(help="The address never to mail.")],
    reason: Annotated[str, typer.Option(help=f"One of: {', '.join(REASONS)}.")] = "manual",
    config: ConfigOption = None,
) -> None:
    """Put an address on the list (idempotent; a stronger reason replaces a weaker one)."""
    if reason not in REASONS:
        raise typer.BadParameter(f"choose one of: {', '.join(REASONS)}", param_hint="--reason")
    cfg = settings(config)
    with open_store(cfg.database.url) as store:
        suppress(store, cfg, address, reason=reason, now=datetime.now(UTC))
    typer.echo(f"suppressed {escape(address)} ({reason})")


@reports_errors
def suppress_remove(
    address: Annotated[str, typer.Argument(help="The address to take off the list.")],
    config: ConfigOption = None,
) -> None:
    """Take an address off the list (it is mailed again only once it subscribes and confirms)."""
    cfg = settings(config)
    with open_store(cfg.database.url) as store:
        if not unsuppress(store, cfg, address):
            raise NotFoundError(f"{address} is not on the suppression list")
    typer.echo(f"removed {escape(address)} from the suppression list")


@reports_errors
def suppress_list(
    limit: Annotated[int, typer.Option(help="Show at most this many, newest first.")] = 100,
    config: ConfigOption = None,
) -> None:
    """Print the list, newest first (erased subscribers show as '(erased)': only a hash is kept)."""
    cfg = settings(config)
    with open_store(cfg.database.url) as store:
        rows = store.feedback.suppressions(limit=limit)
    for address, reason, since in rows:
        typer.echo(f"{address or '(erased)'}\t{reason}\t{since:%Y-%m-%d %H:%M}")
    if not rows:
        typer.echo("the suppression list is empty")


@reports_errors
def suppress_export(
    file: Annotated[Path | None, typer.Argument(help="Where to write (default: standard output).")] = None,
    config: ConfigOption = None,
) -> None:
    """Write the list as CSV (address, reason, since); erased entries have no address."""
    cfg = settings(config)
    with open_store(cfg.database.url) as store:
        rows = store.feedback.suppressions(limit=10_000_000)
    out = sys.stdout if file is None or str(file) == "-" else file.open("w", newline="", encoding="utf-8")
    try:
        writer = csv.writer(out)
        writer.writerow(["address", "reason", "since"])
        for address, reason, since in rows:
            writer.writerow([address or "", reason, since.isoformat()])
    finally:
        if out is not sys.stdout:
            out.close()
