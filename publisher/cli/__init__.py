"""The `publisher` command: the only place that prints and chooses exit codes.

Exit codes: 0 ok, 1 user error (said plainly, no traceback), 2 usage,
3 partial failure (some recipients failed).
Each area registers its commands from its own module below.
"""

from __future__ import annotations

import typer
from typer.core import TyperCommand

from publisher import __version__
from publisher.cli import build as _build
from publisher.cli import common as _common
from publisher.cli import content as _content
from publisher.cli import delivery as _delivery
from publisher.cli import demo as _demo
from publisher.cli import doctor as _doctor
from publisher.cli import editors as _editors
from publisher.cli import inbound as _inbound
from publisher.cli import init as _init
from publisher.cli import report as _report
from publisher.cli import schedule as _schedule
from publisher.cli import sequences as _sequences
from publisher.cli import subscribers as _subscribers
from publisher.cli import suppress as _suppress
from publisher.cli import web as _web
from publisher.cli import worker as _worker

app = typer.Typer(
    name="publisher",
    help="Publish a Markdown newsletter as email, RSS/Atom feeds and a web archive.",
    no_args_is_help=True,
    add_completion=False,
    cls=_common.HelpGroup,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"publisher {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """Publish a Markdown newsletter as email, RSS/Atom feeds and a web archive."""


def _use_help_classes(typer_app: typer.Typer) -> None:
    """Give every command and group publisher's help layout (flags without ``<bool>``, a
    sane width), including those the area modules register without naming a class."""
    for command in typer_app.registered_commands:
        if command.cls in (None, TyperCommand):  # typer fills in its own class by default
            command.cls = _common.HelpCommand
    for group in typer_app.registered_groups:
        group.cls = _common.HelpGroup
        if group.typer_instance is not None:
            _use_help_classes(group.typer_instance)


for _module in (
    _init,
    _content,
    _build,
    _delivery,
    _demo,
    _doctor,
    _editors,
    _inbound,
    _report,
    _subscribers,
    _suppress,
    _web,
    _schedule,
    _sequences,
    _worker,
):
    _module.register(app)
_use_help_classes(app)


def main() -> None:
    app()
