"""Fixtures shared by the content, import and CLI content tests: write issue files into a temp project."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write_issue(project: Path) -> Callable[..., Path]:
    """write_issue("issues/x.md", '''---\\ntitle: ...''') -> the file, dedented, parents created."""

    def write(relative: str, text: str | bytes) -> Path:
        path = project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


def article(
    title: str = "A title", date: str = "2026-03-01", extra: str = "", body: str = "Body text."
) -> str:
    """A minimal valid article file with optional extra front-matter lines."""
    lines = ["---", f"title: {title}", f"date: {date}"]
    if extra:
        lines.extend(textwrap.dedent(extra).strip("\n").split("\n"))
    lines.extend(["---", "", body, ""])
    return "\n".join(lines)
