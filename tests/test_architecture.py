"""The design holds in the code: layers and cycles (import-linter), sizes and imports (ast).

These are the rules of issue #18 that a reviewer would otherwise check by eye: the
one-way pipeline, no import cycles between sibling modules, modules under 400 lines,
functions under 60, and imports at the top of the module (in a function only for a
heavy optional library, with a comment saying why).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "publisher"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# Libraries whose import costs enough (or is optional enough) to defer to the call that needs it.
DEFERRABLE = {"premailer", "alembic", "procrastinate", "playwright", "uvicorn", "watchfiles"}


def _modules() -> Iterator[tuple[Path, ast.Module, list[str]]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        yield path, ast.parse(text), text.splitlines()


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _reason(lines: list[str], node: ast.stmt) -> str:
    """The comments on a deferred import and the import/comment lines just above it."""
    found = [line.partition("#")[2] for line in lines[node.lineno - 1 : node.end_lineno or node.lineno]]
    at = node.lineno - 2
    while at >= 0 and lines[at].strip().startswith(("#", "from ", "import ")):
        found.append(lines[at].partition("#")[2])
        at -= 1
    return " ".join(found).strip()


def test_the_one_way_pipeline_holds_and_has_no_cycles() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    run = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "One-way pipeline KEPT" in run.stdout
    assert "No import cycles KEPT" in run.stdout


def test_modules_and_functions_stay_small() -> None:
    too_big = []
    for path, tree, lines in _modules():
        name = path.relative_to(ROOT)
        if len(lines) > MAX_MODULE_LINES:
            too_big.append(f"{name}: {len(lines)} lines (module limit {MAX_MODULE_LINES})")
        for fn in _functions(tree):
            length = (fn.end_lineno or fn.lineno) - fn.lineno + 1
            if length > MAX_FUNCTION_LINES:
                limit = MAX_FUNCTION_LINES
                too_big.append(f"{name}:{fn.lineno}: {fn.name} is {length} lines (limit {limit})")
    assert not too_big, "split by responsibility:\n" + "\n".join(too_big)


def test_imports_are_at_the_top() -> None:
    """In a function only a heavy optional library (or our module that loads one), with a reason.

    The reason is a comment on the import or on the lines of imports and comments just above it;
    our own module may be deferred only when that reason names the heavy library it loads.
    """
    wrong = []
    for path, tree, lines in _modules():
        name = path.relative_to(ROOT)
        for fn in _functions(tree):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    roots = {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom):
                    roots = {(node.module or "").split(".")[0] if node.level == 0 else "publisher"}
                else:
                    continue
                where = f"{name}:{node.lineno}"
                reason = _reason(lines, node)
                if "publisher" in roots and not any(lib in reason for lib in DEFERRABLE):
                    wrong.append(f"{where}: our own module imported in {fn.name}() (fix the cycle instead)")
                elif not roots <= DEFERRABLE | {"publisher"}:
                    names = ", ".join(sorted(roots))
                    wrong.append(f"{where}: {names} imported in {fn.name}(); move it to the top")
                elif not reason:
                    wrong.append(f"{where}: deferred import without a one-line reason comment")
    assert not wrong, "\n".join(wrong)
