"""Outside a project nothing is created; `publisher init` makes one; help and progress stay readable."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from publisher.cli import app
from publisher.cli.common import ProgressBar
from publisher.config import load_settings


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("PUBLISHER_SECRET_KEY", "test-secret-0123456789abcdef0123456789")
    monkeypatch.delenv("COLUMNS", raising=False)
    return CliRunner()


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.mark.parametrize("command", [["status"], ["check"], ["build"], ["subscribers", "list"]])
def test_without_a_config_a_command_says_so_and_creates_nothing(runner, empty, command):
    result = runner.invoke(app, command)
    assert result.exit_code == 1, result.output
    assert f"there is no config.yaml here (looked for {empty / 'config.yaml'})" in result.stderr
    assert "publisher init" in result.stderr
    assert "Traceback" not in result.output
    assert list(empty.iterdir()) == []


def test_help_needs_no_config(runner, empty):
    result = runner.invoke(app, ["status", "--help"])
    assert result.exit_code == 0
    assert list(empty.iterdir()) == []


def test_init_makes_a_project_that_loads_and_checks(runner, empty):
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    assert "config.yaml, issues/, templates/" in result.stdout
    for step in ("publisher check", "publisher build", "publisher demo"):
        assert step in result.stdout
    assert "# publisher configuration" in (empty / "config.yaml").read_text()
    assert len(list((empty / "issues").glob("*.md"))) == 1
    assert (empty / "templates" / "email.html").is_file()
    assert (empty / "templates" / "web").is_dir()
    assert (empty / "sequences" / "welcome" / "01-hello.md").is_file()  # the welcome mail, ready to edit

    cfg = load_settings(empty / "config.yaml")
    assert cfg.paths.issues == empty / "issues"
    check = runner.invoke(app, ["check"])
    assert check.exit_code == 0, check.output
    assert "1 issue" in check.stdout


def test_init_twice_changes_nothing_and_says_what_is_there(runner, empty):
    assert runner.invoke(app, ["init"]).exit_code == 0
    (empty / "config.yaml").write_text("site:\n  title: Mine\n")
    before = {p: p.read_bytes() for p in empty.rglob("*") if p.is_file()}
    second = runner.invoke(app, ["init"])
    assert second.exit_code == 0, second.output
    said = " ".join(second.stdout.split())  # Rich wraps long lines
    assert "already there, left as is: config.yaml, issues/, templates/, sequences/ (nothing changed)" in said
    assert {p: p.read_bytes() for p in empty.rglob("*") if p.is_file()} == before


def test_init_into_a_folder_keeps_the_issues_already_there(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "paper" / "issues").mkdir(parents=True)
    (tmp_path / "paper" / "issues" / "mine.md").write_text("---\ntitle: Mine\ndate: 2026-01-01\n---\nHi.\n")
    result = runner.invoke(app, ["init", "paper"])
    assert result.exit_code == 0, result.output
    assert "made in paper: config.yaml, templates/" in result.stdout
    assert "already there, left as is: issues/" in result.stdout
    assert "cd paper" in result.stdout
    assert [p.name for p in (tmp_path / "paper" / "issues").iterdir()] == ["mine.md"]


def test_help_shows_flags_as_flags_and_lists_as_files(runner, empty):
    send = runner.invoke(app, ["send", "--help"])
    assert send.exit_code == 0
    assert "--dry-run" in send.stdout
    assert "<bool>" not in send.stdout
    imp = runner.invoke(app, ["import", "--help"])
    assert "FILE..." in imp.stdout
    assert "list[Path]" not in imp.stdout


def test_help_is_100_columns_when_piped_and_follows_columns(runner, empty, monkeypatch):
    piped = runner.invoke(app, ["send", "--help"]).stdout.splitlines()
    assert max(len(line) for line in piped) == 100
    monkeypatch.setenv("COLUMNS", "140")
    wide = runner.invoke(app, ["send", "--help"]).stdout.splitlines()
    assert max(len(line) for line in wide) == 140


def test_progress_keeps_its_counts_on_80_columns_with_a_long_slug():
    console = Console(file=io.StringIO(), width=80, force_terminal=True, record=True)
    with ProgressBar("sending " + "s" * 200, console=console) as bar:
        bar(12, 345)
    last = console.export_text().splitlines()[-1].rsplit("sending ", 1)[-1]
    assert "12/345" in last
    assert "…" in last
