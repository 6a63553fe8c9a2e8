"""`publisher demo`, the README's main job: build + send the newest issue, safely re-runnable."""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_demo(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_")}
    return subprocess.run(
        [sys.executable, "-m", "publisher.cli", "demo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_demo_builds_sends_once_and_is_idempotent(tmp_path: Path) -> None:
    for name in ("issues", "templates"):
        shutil.copytree(ROOT / name, tmp_path / name)
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")

    first = run_demo(tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    assert (tmp_path / "site" / "feed.xml").is_file()
    assert (tmp_path / "site" / "index.html").is_file()
    emls = sorted((tmp_path / "outbox").rglob("*.eml"))
    assert len(emls) == 4
    recipients = set()
    for path in emls:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert msg.get_content_type() == "multipart/alternative"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        recipients.add(msg["To"].addresses[0].addr_spec)
    assert recipients == {
        "ana.lima@example.org",
        "bjorn@example.org",
        "chidi.okafor@example.net",
        "reader@example.com",
    }

    second = run_demo(tmp_path)
    assert second.returncode == 0, second.stderr
    assert "already sent" in second.stdout
    assert sorted((tmp_path / "outbox").rglob("*.eml")) == emls
