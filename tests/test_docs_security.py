"""docs/security.md names the tests that hold each claim: every one it names must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_test_the_threat_model_names_exists() -> None:
    doc = (ROOT / "docs" / "security.md").read_text()
    files = set(re.findall(r"`(test_\w+\.py)(?:::(\w+))?`", doc))
    names = set(re.findall(r"`(test_\w+)`", doc))
    assert files and names
    sources = {p.name: p.read_text() for p in (ROOT / "tests").glob("test_*.py")}
    for file, func in files:
        assert file in sources, f"docs/security.md names {file}, which does not exist"
        if func:
            assert f"def {func}(" in sources[file], f"{file} has no {func}"
    everything = "\n".join(sources.values())
    for name in names:
        assert f"def {name}(" in everything, f"docs/security.md names {name}, which no test defines"
