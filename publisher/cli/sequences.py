"""`publisher sequences enter|status|run`: onboarding sequences by hand (the scheduler runs them too)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from publisher.cli.common import ConfigOption, escape, fail, reports_errors, settings
from publisher.cli.delivery import _err, _out, _show, _store
from publisher.config import check_timezone
from publisher.models import Frequency
from publisher.ops.sequences import enter_matching, run_sequences, sequence_status
from publisher.store import Filter


def register(app: typer.Typer) -> None:
    seqs = typer.Typer(help="Onboarding sequences: enter readers, see who is where.", no_args_is_help=True)
    seqs.command("enter")(sequences_enter)
    seqs.command("status")(sequences_status)
    seqs.command("run")(sequences_run)
    app.add_typer(seqs, name="sequences")


def _now() -> datetime:
    return datetime.now(UTC)


@reports_errors
def sequences_enter(
    name: Annotated[str, typer.Argument(help="The sequence: a folder under sequences/.")],
    frequency: Annotated[Frequency | None, typer.Option(help="Only subscribers of this frequency.")] = None,
    topic: Annotated[str | None, typer.Option(help="Only subscribers of this topic.")] = None,
    search: Annotated[str | None, typer.Option(help="Part of the address or name.")] = None,
    zone: Annotated[str | None, typer.Option(help="Only subscribers in this time zone.")] = None,
    everyone: Annotated[bool, typer.Option("--all", help="Every confirmed subscriber (no filter).")] = False,
    config: ConfigOption = None,
) -> None:
    """Put the confirmed subscribers the filter matches into sequence NAME (once each, ever)."""
    if not (everyone or frequency or topic or search or zone):
        raise fail(
            "say whom to enter: --topic, --frequency, --search, --zone, or --all",
            hint="the filter is the one `publisher subscribers list` takes",
        )
    if zone is not None:
        try:
            check_timezone(zone)
        except ValueError as exc:
            raise fail(str(exc)) from None
    cfg = settings(config)
    flt = Filter(frequency=frequency, topic=topic, search=search)
    with _store(cfg) as store:
        entered = enter_matching(cfg, store, name, flt, zone=zone, now=_now())
    _out(f"{entered} entered {escape(name)} (already in, unconfirmed or suppressed: not counted)")


def _after(value: timedelta) -> str:
    if not value:
        return "0"
    days, seconds = value.days, value.seconds
    if days and days % 7 == 0 and not seconds:
        return f"{days // 7} week(s)"
    if days and not seconds:
        return f"{days} day(s)"
    return f"{int(value.total_seconds() // 60)} min"


@reports_errors
def sequences_status(config: ConfigOption = None) -> None:
    """Members at each step of each sequence, and how many steps come due in the next 24 hours."""
    cfg = settings(config)
    with _store(cfg) as store:
        lines, broken = sequence_status(cfg, store, now=_now())
    _show(
        ("sequence", "step", "after", "at this step", "due in 24 h"),
        [(x.sequence, x.step, _after(x.after), str(x.at_step), str(x.due_24h)) for x in lines],
    )
    for problem in broken:
        _err(f"waits: {escape(problem)}")
    if not lines and not broken:
        _out("no sequences (add sequences/<name>/01-slug.md)")


@reports_errors
def sequences_run(config: ConfigOption = None) -> None:
    """One sequence round now, as `publisher run` does: plan what is due, then send it."""
    cfg = settings(config)
    with _store(cfg) as store:
        report = run_sequences(cfg, store, clock=_now)
    for key, n in sorted(report.planned.items()):
        _out(f"{escape(key)}: {n} planned")
    _out(f"{sum(report.planned.values())} planned, {report.sent} sent")
    if report.waiting:
        raise fail(f"sequence(s) with problems, not planned: {', '.join(report.waiting)}")
