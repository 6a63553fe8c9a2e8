"""Shared fixtures: settings factory over a temp project, and the sample project's settings."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from publisher.config import Settings, load_settings
from tests.dicts import deep_merge

pytest_plugins = [
    "tests.fixtures_store",
    "tests.fixtures_content",
    "tests.fixtures_email",
    "tests.fixtures_smtp",
    "tests.fixtures_send",
    "tests.fixtures_schedule",
    "tests.fixtures_web",
    "tests.fixtures_worker",
    "tests.fixtures_browser",
    "tests.fixtures_imap",
]

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="Rewrite tests/golden/ with the bytes the code makes now (review the diff before committing).",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True under ``pytest --update-golden``: golden tests write their files instead of comparing."""
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A throwaway copy of the repo's templates with an empty issues/ folder and a config.yaml."""
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    (tmp_path / "issues").mkdir()
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    return tmp_path


@pytest.fixture
def make_settings(project: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """Settings for ``project`` with nested ``overrides`` applied (no environment leaks in)."""
    monkeypatch.setenv("PUBLISHER_SECRET_KEY", "test-secret-0123456789abcdef0123456789")

    def factory(**overrides: Any) -> Settings:
        cfg = project / "config.yaml"
        if overrides:
            data = yaml.safe_load(cfg.read_text()) or {}
            deep_merge(data, overrides)
            cfg.write_text(yaml.safe_dump(data))
        return load_settings(cfg, environ={"PUBLISHER_SECRET_KEY": "test-secret-0123456789abcdef0123456789"})

    return factory


@pytest.fixture
def sample_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The repo's own config.yaml and sample issues (read-only: don't write into them)."""
    monkeypatch.setenv("PUBLISHER_SECRET_KEY", "test-secret-0123456789abcdef0123456789")
    return load_settings(
        ROOT / "config.yaml", environ={"PUBLISHER_SECRET_KEY": "test-secret-0123456789abcdef0123456789"}
    )
