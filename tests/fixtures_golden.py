"""Golden files: the exact bytes readers receive, kept in tests/golden/ so a change to them shows in review.

``check_golden`` compares byte for byte and, on a difference, names the file,
shows a unified diff of the first differing lines and says how to accept the
change (``pytest --update-golden``). ``golden_project`` is the fixed input
every golden test starts from: the repo's own config.yaml, issues/ and
templates/ copied as they are, and a fixed secret key, so signed links and
Message-IDs come out the same on every run.
"""

from __future__ import annotations

import difflib
import os
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from publisher.cli import app

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
SECRET = "golden-secret-0123456789abcdef0123456789abcdef"
# Every moment a golden mail depends on is one of these (none is read from the real clock).
SUBSCRIBED_AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SENT_AT = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
SIGNED_UP_AT = datetime(2026, 12, 3, 10, 15, 30, 123456, tzinfo=UTC)
DIGEST_AT = "2026-12-07T07:30+00:00"  # `publisher digest --now`: after 07:00 in Europe/London
DIFF_LINES = 40  # lines of unified diff shown per differing file


def golden_environ() -> dict[str, str]:
    """The only PUBLISHER_* variable a golden run sees: the fixed secret key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_")}
    env["PUBLISHER_SECRET_KEY"] = SECRET
    return env


def copy_sample_project(folder: Path) -> Path:
    """The repo's config.yaml, issues/ and templates/ copied into ``folder``; returns its config.yaml."""
    for name in ("issues", "templates"):
        shutil.copytree(ROOT / name, folder / name)
    shutil.copy(ROOT / "config.yaml", folder / "config.yaml")
    return folder / "config.yaml"


def run_cli(*args: str) -> str:
    """Run the real `publisher` command line in this process; its output, or a failure showing it."""
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, f"`publisher {' '.join(args)}` exited {result.exit_code}:\n{result.output}"
    return result.output


def only_eml(folder: Path) -> bytes:
    """The bytes of the one .eml the file transport wrote into ``folder``."""
    found = sorted(folder.rglob("*.eml"))
    assert len(found) == 1, f"expected one .eml under {folder}, found {[str(p) for p in found]}"
    return found[0].read_bytes()


def _visible_lines(data: bytes) -> list[str]:
    """Lines for a diff, with CR shown as \\r (a CRLF/LF change must not look like no change)."""
    text = data.decode("utf-8", errors="backslashreplace").replace("\r", "\\r")
    return text.splitlines(keepends=True)


def golden_diff(name: str, expected: bytes, actual: bytes) -> str:
    """Why ``name`` differs: where, a unified diff of the first differing lines, and what to run."""
    at = next((i for i, (a, b) in enumerate(zip(expected, actual, strict=False)) if a != b), None)
    where = f"byte {at}" if at is not None else f"length ({len(expected)} golden, {len(actual)} now)"
    diff = list(
        difflib.unified_diff(
            _visible_lines(expected),
            _visible_lines(actual),
            f"tests/golden/{name} (golden)",
            f"{name} (made now)",
            n=2,
        )
    )
    shown = "".join(line if line.endswith("\n") else line + "\n" for line in diff[:DIFF_LINES])
    more = f"... {len(diff) - DIFF_LINES} more diff lines\n" if len(diff) > DIFF_LINES else ""
    return (
        f"tests/golden/{name} differs from the bytes made now (first difference at {where}):\n"
        f"{shown}{more}"
        "run pytest --update-golden if this change is intended"
    )


def golden_problem(name: str, actual: bytes, *, update: bool) -> str | None:
    """Compare ``actual`` with tests/golden/``name`` (or rewrite it when ``update``); why they differ."""
    path = GOLDEN / name
    if update:
        if not path.is_file() or path.read_bytes() != actual:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(actual)
        return None
    if not path.is_file():
        return f"tests/golden/{name} is missing; run pytest --update-golden to create it"
    expected = path.read_bytes()
    return None if expected == actual else golden_diff(name, expected, actual)


def check_golden(outputs: Iterable[tuple[str, bytes]], *, update: bool) -> None:
    """Fail naming every golden file that differs (not only the first), each with its diff."""
    problems = [p for name, data in outputs if (p := golden_problem(name, data, update=update))]
    assert not problems, "\n\n".join(problems)
