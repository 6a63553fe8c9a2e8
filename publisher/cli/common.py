"""What every command shares: --config, error reporting, progress display."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
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
from rich.text import Text

from publisher.config import Settings, load_settings
from publisher.errors import PublisherError

console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Path to config.yaml (default: ./config.yaml).", show_default=False),
]

F = TypeVar("F", bound=Callable[..., Any])


def settings(config: Path | None) -> Settings:
    return load_settings(config)


def fail(message: str, hint: str | None = None, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    if hint:
        err_console.print(f"[dim]hint: {hint}[/]", highlight=False, soft_wrap=True)
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
                err_console.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True)
            if exc.hint:
                err_console.print(f"[dim]hint: {escape(exc.hint)}[/]", soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def escape(text: str) -> str:
    from rich.markup import escape as _escape

    return _escape(text)


class RateColumn(ProgressColumn):
    """Items per second (rich's own speed column speaks in bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f}/s" if speed else "", style="progress.data.speed")


class ProgressBar:
    """Progress as ``bar(done, total)`` calls: a Rich bar with rate and ETA on a terminal,
    a line per tenth elsewhere (logs and CI stay readable)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.last_logged = -1

    def __enter__(self) -> ProgressBar:
        if sys.stderr.isatty():
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                RateColumn(),
                TimeRemainingColumn(),
                console=err_console,
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
            err_console.print(f"{self.label}: {done}/{total}", highlight=False, soft_wrap=True)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def progress(items: Iterable[Any], total: int, label: str) -> Iterator[Any]:
    """``ProgressBar`` over an iterable."""
    with ProgressBar(label) as bar:
        for n, item in enumerate(items, 1):
            yield item
            bar(n, total)
