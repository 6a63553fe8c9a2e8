"""Content commands: check, build, import."""

from __future__ import annotations

import typer

from publisher.cli.common import ConfigOption, console, reports_errors, settings


def register(app: typer.Typer) -> None:
    app.command()(check)


@reports_errors
def check(config: ConfigOption = None) -> None:
    """Validate config.yaml and every issue; list every problem with its file and line."""
    cfg = settings(config)
    console.print(f"config ok: {cfg.site.title} ({cfg.site.url})")
