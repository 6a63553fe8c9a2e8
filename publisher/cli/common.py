"""What every command shares: --config, error reporting, help layout, progress display."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text
from typer import rich_utils
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from publisher.config import Settings, load_settings
from publisher.errors import PublisherError
from publisher.lines import visible

console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Path to config.yaml (default: ./config.yaml).", show_default=False),
]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_CONFIG = Path("config.yaml")
HELP_WIDTH = 100  # help's width when it goes to a pipe or a file and $COLUMNS is not set


def settings(config: Path | None) -> Settings:
    """The project's settings; refuses to run on defaults when there is no config.yaml here,
    which would quietly make a publisher.db and site/ in whatever folder the user is in."""
    if config is None and not DEFAULT_CONFIG.is_file():
        raise fail(
            f"there is no config.yaml here (looked for {DEFAULT_CONFIG.resolve()})",
            hint="run `publisher init` to make a project here, or pass --config PATH",
        )
    return load_settings(config)


def said(text: str) -> str:
    """Text from anywhere (arguments, files, the database) as Rich prints it: no markup, no controls."""
    return escape(visible(text))


def fail(message: str, hint: str | None = None, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {said(message)}", highlight=False, markup=True, soft_wrap=True)
    if hint:
        err_console.print(f"[dim]hint: {said(hint)}[/]", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def reports_errors(fn: F) -> F:
    """Turn a PublisherError into one line per problem on stderr and exit 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PublisherError as exc:
            lines = exc.lines()
            for line in lines:
                err_console.print(f"[bold red]error:[/] {said(line)}", soft_wrap=True)
            if exc.hint:
                err_console.print(f"[dim]hint: {said(exc.hint)}[/]", soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


# The ``ctx`` these overrides take is only handed back to typer: typed ``Any`` because typer's
# own methods take its private vendored ``typer._click.Context`` (plain ``click.Context`` in older
# typers), which ``typer.Context`` narrows and so cannot stand for in an override.


class _ListArgument(TyperArgument):
    """An argument taking several values, shown as ``FILE...`` rather than ``FILE <list[Path]>``."""

    @property
    def display_name_raw(self) -> str:
        return f"{super().display_name_raw}..."

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        return [self.display_name_raw if self.required else f"[{self.display_name_raw}]"]


def _tidy(params: list[Any]) -> list[Any]:
    """Flags as bare ``--dry-run`` and lists as ``FILE...``: typer labels every parameter with
    its Python type (``<bool>``), which reads as if the flag took a value. Typer builds the
    parameters itself, so they are retouched here, just before help and parsing use them."""
    for param in params:
        if isinstance(param, TyperOption) and (param.is_flag or param.count):
            param.metavar = ""
        elif isinstance(param, TyperArgument) and param.nargs != 1 and type(param) is TyperArgument:
            param.__class__ = _ListArgument
    return params


@contextmanager
def _help_width() -> Iterator[None]:
    """Help as wide as the terminal (Rich's own measure) or $COLUMNS; HELP_WIDTH when piped,
    where Rich would cut it at 80."""
    if rich_utils.MAX_WIDTH is not None or os.environ.get("COLUMNS") or sys.stdout.isatty():
        yield
        return
    rich_utils.MAX_WIDTH = HELP_WIDTH
    try:
        yield
    finally:
        rich_utils.MAX_WIDTH = None


class HelpCommand(TyperCommand):
    """Every command's class: tidy flags and lists, help at a readable width."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _tidy(super().get_params(ctx))

    def format_help(self, ctx: Any, formatter: Any) -> None:
        with _help_width():
            super().format_help(ctx, formatter)


class HelpGroup(TyperGroup):
    """Every command group's class (``publisher``, ``publisher subscribers``...), as HelpCommand."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _tidy(super().get_params(ctx))

    def format_help(self, ctx: Any, formatter: Any) -> None:
        with _help_width():
            super().format_help(ctx, formatter)


class RateColumn(ProgressColumn):
    """Items per second (rich's own speed column speaks in bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f}/s" if speed else "", style="progress.data.speed")


class ProgressBar:
    """Progress as ``bar(done, total)`` calls: a Rich bar with rate and ETA on a terminal,
    a line per tenth elsewhere (logs and CI stay readable).

    On a narrow terminal the label (often a long slug) gives way, cut with an ellipsis;
    the counts, rate and ETA keep their width.
    """

    def __init__(self, label: str, console: Console | None = None) -> None:
        self.label = label
        self.console = console or err_console
        # stderr's own isatty, not Rich's is_terminal: FORCE_COLOR in CI must not animate logs
        self.live = sys.stderr.isatty() if console is None else console.is_terminal
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.last_logged = -1

    def __enter__(self) -> ProgressBar:
        if self.live:
            self.bar = Progress(
                TextColumn("{task.description}", table_column=Column(ratio=1, no_wrap=True, min_width=8)),
                BarColumn(bar_width=None, table_column=Column(ratio=1)),
                MofNCompleteColumn(table_column=Column(no_wrap=True)),
                RateColumn(table_column=Column(no_wrap=True)),
                TimeRemainingColumn(table_column=Column(no_wrap=True)),
                console=self.console,
                expand=True,
            )
            self.bar.start()
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.bar is not None:
            if self.task is None:
                self.task = self.bar.add_task(self.label, total=total)
            self.bar.update(self.task, completed=done)
            return
        step = max(1, total // 10)
        if done // step != self.last_logged // step or (done == total and self.last_logged != done):
            self.last_logged = done
            self.console.print(f"{self.label}: {done}/{total}", highlight=False, soft_wrap=True)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def progress(items: Iterable[Any], total: int, label: str) -> Iterator[Any]:
    """``ProgressBar`` over an iterable."""
    with ProgressBar(label) as bar:
        for n, item in enumerate(items, 1):
            yield item
            bar(n, total)
