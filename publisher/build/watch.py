"""`publisher build --watch`: the file changes that call for a rebuild."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from watchfiles import watch


def iter_changes(paths: list[Path], stop: Any = None, debounce_ms: int = 200) -> Iterator[set[str]]:
    """File changes under ``paths`` (watchfiles), as sets of changed paths."""
    for changes in watch(*paths, stop_event=stop, debounce=debounce_ms, raise_interrupt=False):
        yield {p for _, p in changes}
