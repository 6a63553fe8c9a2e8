"""`publisher init [FOLDER]`: a new project from the packaged starter (publisher/skeleton).

It writes only what is missing (config.yaml, issues/ with one example, templates/),
never overwrites a file, and says what it left alone, so running it twice is safe.
An existing issues/ gets no example: it would be published with the real ones.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated

import typer

from publisher.cli.common import DEFAULT_CONFIG, console, escape, reports_errors
from publisher.errors import PublisherError, relpath

SKELETON = files("publisher.skeleton")
PARTS = (DEFAULT_CONFIG.name, "issues", "templates", "sequences")  # what a project needs, in the order said
NEXT_STEPS = (
    ("publisher check", "validate config.yaml and the issues"),
    ("publisher build", "write the archive, feeds and emails into site/"),
    ("publisher demo", "build, then send the newest issue to sample subscribers"),
)


def register(app: typer.Typer) -> None:
    app.command("init")(init)


@reports_errors
def init(
    folder: Annotated[
        Path, typer.Argument(metavar="FOLDER", help="Where to make the project (default: here).")
    ] = Path("."),
) -> None:
    """Make a project: a commented config.yaml, issues/ with an example, templates/."""
    made, kept = scaffold(folder)
    where = relpath(folder)
    if made:
        console.print(f"made in {escape(where)}: {escape(', '.join(made))}", highlight=False)
    if kept:
        changed = "" if made else " (nothing changed)"
        console.print(f"already there, left as is: {escape(', '.join(kept))}{changed}", highlight=False)
    console.print("next:", highlight=False)
    if folder.resolve() != Path.cwd():
        console.print(f"  cd {escape(str(folder))}", highlight=False)
    width = max(len(command) for command, _ in NEXT_STEPS)
    for command, what in NEXT_STEPS:
        console.print(f"  {command:<{width}}  {what}", highlight=False)


def scaffold(folder: Path) -> tuple[list[str], list[str]]:
    """Copy each missing part of the starter project into ``folder``: (made, already there)."""
    if folder.exists() and not folder.is_dir():
        raise PublisherError(f"{relpath(folder)}: not a folder", hint="name a folder for the project")
    folder.mkdir(parents=True, exist_ok=True)
    made: list[str] = []
    kept: list[str] = []
    for name in PARTS:
        target = folder / name
        label = name if name == DEFAULT_CONFIG.name else f"{name}/"
        if target.exists() or target.is_symlink():
            kept.append(label)
            continue
        _copy(SKELETON / name, target)
        made.append(label)
    return made, kept


def _copy(source: Traversable, target: Path) -> None:
    """Copy a file or a folder out of the package (a zip or a folder alike)."""
    if source.is_file():
        target.write_bytes(source.read_bytes())
        return
    target.mkdir()
    for child in source.iterdir():
        if child.name != "__pycache__":
            _copy(child, target / child.name)
