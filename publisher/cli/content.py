"""Content commands: check and import."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from publisher.cli.common import ConfigOption, console, reports_errors, settings
from publisher.content import load_content
from publisher.errors import ContentError, Problem, relpath
from publisher.importer import plan_imports


def register(app: typer.Typer) -> None:
    app.command()(check)
    app.command("import")(import_)


@reports_errors
def check(config: ConfigOption = None) -> None:
    """Validate config.yaml and every issue; list every problem with its file and line."""
    cfg = settings(config)
    result = load_content(cfg)
    library = result.library
    issues = library.published_issues
    articles = sum(len(i.articles) for i in issues)
    drafts = result.draft_count
    console.print(
        f"ok: {cfg.site.title}: {_count(len(issues), 'issue')}, {_count(articles, 'article')}, "
        f"{_count(drafts, 'draft')}",
        highlight=False,
        soft_wrap=True,
    )


@reports_errors
def import_(
    files: Annotated[
        list[Path], typer.Argument(metavar="FILE", help="Plain-text (.txt) or HTML (.html) articles.")
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
    """Turn plain-text or HTML articles into Markdown issues with front matter."""
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
        tmp = plan.path.with_name(f".{plan.path.name}.tmp")
        tmp.write_text(plan.text, encoding="utf-8")
        os.replace(tmp, plan.path)
        console.print(f"wrote {where}: {plan.title}", highlight=False, soft_wrap=True)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
