"""axe-core in the browser tests: the accessibility rules a page must pass (vendored, tests/vendor).

The console's CSP allows no script, so pages are checked in a context made with
``bypass_csp=True`` (Playwright's own switch; the page under test is unchanged).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
SERIOUS = {"serious", "critical"}


def axe_problems(page: Any) -> list[str]:
    """The page's serious and critical axe violations, one line each (empty: it passes)."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v.get("impact") in SERIOUS
    ]
