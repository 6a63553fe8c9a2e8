"""Content commands: check and import."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from publisher.cli.common import ConfigOption, console, err_console, reports_errors, settings
from publisher.config import Settings
from publisher.content import load_content, past_send_at
from publisher.errors import ContentError, Problem, relpath
from publisher.importer import plan_imports
from publisher.models import Library
from publisher.ops.queue import load_tolerant, not_yet_sent, span
from publisher.store import open_store


def register(app: typer.Typer) -> None:
    app.command()(check)
    app.command("import")(import_)


@reports_errors
def check(config: ConfigOption = None) -> None:
    """Validate config.yaml and every issue; list every problem with its file and line."""
    cfg = settings(config)
    try:
        result = load_content(cfg)
    except ContentError as exc:  # list the late send_at of the issues that did load, too
        late = _late_send_at(cfg, load_tolerant(cfg)[0])
        if not late:
            raise
        problems = sorted([*exc.problems, *late.values()], key=lambda p: (p.where, p.line or 0))
        raise ContentError(problems, hint=f"{exc.hint}; {_late_hint(late)}") from None
    library = result.library
    late = _late_send_at(cfg, library)
    if late:
        raise ContentError(list(late.values()), hint=_late_hint(late))
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(str(warning))}", soft_wrap=True, highlight=False)
    if cfg.email.commercial and not cfg.site.postal_address:
        err_console.print(
            "[yellow]warning:[/] email.commercial is true but site.postal_address is empty: commercial "
            "mail must carry a valid postal address (CAN-SPAM); set site.postal_address in config.yaml",
            soft_wrap=True,
        )
    issues = library.published_issues
    articles = sum(len(i.articles) for i in issues)
    drafts = result.draft_count
    console.print(
        f"ok: {cfg.site.title}: {_count(len(issues), 'issue')}, {_count(articles, 'article')}, "
        f"{_count(drafts, 'draft')}",
        highlight=False,
        soft_wrap=True,
    )
    for issue in issues:  # subject tests (ops.subject_test): what each will do when sent
        if (test := issue.subject_test) is not None:
            subjects = " / ".join(repr(s) for s in test.subjects)
            line = f"subject test: {issue.slug}: {test.sample:g}% split between {subjects}; "
            console.print(
                escape(line + f"the winner goes to the rest after {span(test.wait)}"),
                soft_wrap=True,
                highlight=False,
            )


def _late_send_at(cfg: Settings, library: Library) -> dict[str, Problem]:
    """Issues whose send_at has passed unsent (by slug): `publisher run` would report them as missed."""
    past = past_send_at(cfg, library, datetime.now(UTC))
    if not past:
        return {}  # the common case needs no database
    with open_store(cfg.database.url) as store:
        return not_yet_sent(store, past)


def _late_hint(late: dict[str, Problem]) -> str:
    slug = next(iter(late)) if len(late) == 1 else "ISSUE"
    return f"give send_at a time in the future (or remove it), or run `publisher send {slug}` to send it now"


@reports_errors
def import_(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILE", help="Plain-text (.txt), Markdown (.md) or HTML (.html) articles."),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder to write into (default: paths.issues).")
    ] = None,
    date: Annotated[
        str | None, typer.Option("--date", metavar="WHEN", help="Article date, ISO 8601 (default: today).")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="A tag; repeat for more.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an issue imported before.")] = False,
    config: ConfigOption = None,
) -> None:
    """Turn plain-text, Markdown or HTML articles into Markdown issues with front matter."""
    cfg = settings(config)
    now = datetime.now(cfg.site.tz)
    target = out.resolve() if out is not None else cfg.paths.issues
    sources: list[tuple[Path, bytes]] = []
    problems: list[Problem] = []
    for path in files:
        try:
            sources.append((path, path.read_bytes()))
        except OSError as exc:
            problems.append(Problem(relpath(path), f"cannot read: {exc.strerror or exc}"))
    if problems:
        raise ContentError(problems, hint="check the file names")
    plans = plan_imports(cfg, sources, target, now=now, date=date, tags=tag or [], force=force)
    target.mkdir(parents=True, exist_ok=True)
    for plan in plans:
        where = relpath(plan.path)
        if plan.unchanged:
            console.print(f"unchanged: {where} (already imported)", highlight=False, soft_wrap=True)
            continue
        for source, copy in plan.media:  # the hero image first, so the issue never names a missing file
            copy.parent.mkdir(parents=True, exist_ok=True)
            _replace(copy, source.read_bytes())
        _replace(plan.path, plan.text.encode("utf-8"))
        # a page's title is not rich markup: "[/b]" in it would otherwise crash the print
        console.print(f"wrote {where}: {plan.title}", markup=False, highlight=False, soft_wrap=True)


def _replace(path: Path, data: bytes) -> None:
    """Write through a temporary file, so an interrupted import leaves no half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
