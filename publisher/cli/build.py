"""`publisher build [--out DIR] [--watch]`: the site, feeds and emails into the output folder."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

from publisher.build import BuildReport, build
from publisher.build.watch import iter_changes
from publisher.cli.common import (
    ConfigOption,
    console,
    err_console,
    escape,
    progress,
    reports_errors,
    settings,
)
from publisher.config import Settings
from publisher.errors import PublisherError, relpath


def register(app: typer.Typer) -> None:
    app.command("build")(build_command)


OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out", "-o", help="Output folder (default: paths.output, e.g. site/).", show_default=False
    ),
]
WatchOption = Annotated[
    bool, typer.Option("--watch", "-w", help="Rebuild whenever issues/, templates/ or config.yaml change.")
]
EmailsOption = Annotated[
    bool,
    typer.Option("--emails/--no-emails", help="Also write emails/<issue>.html/.txt/.eml (the slow part)."),
]
JobsOption = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        help="Processes for a cold build (default: CPUs, at most 4).",
        show_default=False,
    ),
]


@reports_errors
def build_command(
    config: ConfigOption = None,
    out: OutOption = None,
    watch: WatchOption = False,
    jobs: JobsOption = None,
    emails: EmailsOption = True,
) -> None:
    """Build the web archive, RSS/Atom/JSON feeds and issue emails (only changed files are written)."""
    cfg = settings(config)
    report = build(cfg, out, jobs=jobs, progress=progress, emails=emails)
    show(report, cfg)
    if watch:
        watch_loop(config, out, jobs, emails=emails)


def show(report: BuildReport, cfg: Settings) -> None:
    out = relpath(report.out_dir)
    changed = len(report.written) + len(report.removed)
    console.print(
        f"built {out}/ in {report.seconds:.2f} s: {changed} file(s) changed of {report.outputs}"
        f" ({len(report.written)} written, {len(report.removed)} removed)",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"  pages  {out}/index.html + {report.articles} article(s) + {report.tags} tag page(s)",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"  feeds  {out}/feed.xml, {out}/atom.xml, {out}/feed.json (+ {3 * report.tags} under {out}/tags/)",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"  emails {out}/emails/ ({report.emails} issue(s) as .html, .txt and .eml)",
        highlight=False,
        soft_wrap=True,
    )
    for note in report.notes:
        err_console.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)


def watch_loop(
    config: Path | None,
    out: Path | None,
    jobs: int | None,
    stop: threading.Event | None = None,
    *,
    emails: bool = True,
) -> None:
    """Rebuild on every change; a content error is shown and the watch goes on."""
    cfg = settings(config)
    cfg_file = (config or Path("config.yaml")).resolve()
    paths = [p for p in (cfg.paths.issues, cfg.paths.templates, cfg_file) if p.exists()]
    console.print(
        "watching " + ", ".join(relpath(p) for p in paths) + " (Ctrl+C to stop)",
        highlight=False,
        soft_wrap=True,
    )
    for changed in iter_changes(paths, stop):
        console.print(
            f"changed: {', '.join(sorted(relpath(Path(p)) for p in changed))}",
            highlight=False,
            soft_wrap=True,
        )
        try:
            cfg = settings(config)
            show(build(cfg, out, jobs=jobs, emails=emails), cfg)
        except PublisherError as exc:
            for line in exc.lines():
                err_console.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True)
