"""`publisher check` and `publisher import` as a user runs them: exit codes and what is printed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from publisher.cli import app
from tests.fixtures_content import article

ROOT = Path(__file__).resolve().parent.parent
SEED = Path(__file__).parent / "fixtures" / "content" / "seed-article.txt"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("PUBLISHER_SECRET_KEY", "test-secret-0123456789abcdef0123456789")
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def test_check_passes_on_the_samples(runner):
    result = runner.invoke(app, ["check", "--config", str(ROOT / "config.yaml")])
    assert result.exit_code == 0, result.output
    assert "The Example Gazette: 8 issues, 10 articles, 1 draft" in result.stdout
    assert result.stderr == ""


def test_check_lists_every_problem_on_stderr(runner, project, write_issue):
    write_issue("issues/ok.md", article())
    write_issue("issues/x.md", "---\ntitle: X\ndate: 2021-13-01\ntgas: [a]\n---\n")
    write_issue("issues/y.md", "no front matter\n")
    result = runner.invoke(app, ["check", "-c", str(project / "config.yaml")])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert "issues/x.md:3: date: not a date: '2021-13-01'" in lines[0]
    assert "issues/x.md:4: tgas: unknown key (did you mean 'tags'?)" in lines[1]
    assert "issues/y.md:1: no front matter" in lines[2]
    assert lines[3].startswith("hint:")
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout == ""


def test_check_reports_config_problems(runner, project):
    (project / "config.yaml").write_text("site:\n  timezone: Mars/Olympus\n")
    result = runner.invoke(app, ["check", "-c", str(project / "config.yaml")])
    assert result.exit_code == 1
    assert "config.yaml:2: site.timezone: unknown time zone 'Mars/Olympus'" in result.stderr


def test_check_from_a_real_process_has_no_traceback(project, write_issue):
    write_issue("issues/x.md", "---\ntitle: X\ndate: [nope\n---\n")
    env = {**os.environ, "PUBLISHER_SECRET_KEY": "test-secret-0123456789abcdef0123456789"}
    proc = subprocess.run(
        [sys.executable, "-c", "from publisher.cli import main; main()", "check", "-c", "config.yaml"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "issues/x.md:" in proc.stderr and "front matter is not valid YAML" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_import_then_check_then_reimport(runner, project, tmp_path):
    config = str(project / "config.yaml")
    seed = tmp_path / "seed.txt"
    shutil.copy(SEED, seed)
    target = project / "issues" / "will-joe-biden-boost-low-level-us-russia-relations.md"

    first = runner.invoke(app, ["import", str(seed), "--date", "2026-05-04", "--tag", "World", "-c", config])
    assert first.exit_code == 0, first.output
    assert "wrote" in first.stdout and target.is_file()
    assert "tags:\n- world\n" in target.read_text()

    checked = runner.invoke(app, ["check", "-c", config])
    assert checked.exit_code == 0, checked.output
    assert "1 issue, 1 article, 0 drafts" in checked.stdout

    again = runner.invoke(app, ["import", str(seed), "--date", "2026-05-04", "--tag", "World", "-c", config])
    assert again.exit_code == 0 and "unchanged" in again.stdout

    before = target.read_bytes()
    refused = runner.invoke(app, ["import", str(seed), "--date", "2026-05-05", "-c", config])
    assert refused.exit_code == 1
    assert "pass --force" in refused.stderr and "Traceback" not in refused.output
    assert target.read_bytes() == before

    forced = runner.invoke(app, ["import", str(seed), "--date", "2026-05-05", "--force", "-c", config])
    assert forced.exit_code == 0
    assert "date: 2026-05-05" in target.read_text()
    assert not list((project / "issues").glob(".*.tmp"))


def test_import_to_another_folder_with_default_date(runner, project, tmp_path):
    page = Path(__file__).parent / "fixtures" / "content" / "page.html"
    out = tmp_path / "drafts"
    result = runner.invoke(app, ["import", str(page), "--out", str(out), "-c", str(project / "config.yaml")])
    assert result.exit_code == 0, result.output
    (written,) = out.glob("*.md")
    assert written.name == "allotments-are-back-in-fashion.md"
    assert "\ndate: 20" in written.read_text()


def test_import_missing_file_is_a_plain_error(runner, project):
    result = runner.invoke(app, ["import", "no-such-file.txt", "-c", str(project / "config.yaml")])
    assert result.exit_code == 1
    assert "no-such-file.txt: cannot read" in result.stderr
    assert "Traceback" not in result.output
