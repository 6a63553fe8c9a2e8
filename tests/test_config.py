"""config.yaml loading: defaults, env overrides, relative paths, and errors naming key and line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from publisher.config import load_settings
from publisher.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(text)
    return p


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, ""), environ={})
    assert s.email.transport == "file"
    assert s.feeds.max_items == 50
    assert s.digests.related == 3
    assert s.schedule.max_lateness == timedelta(hours=1)
    assert s.paths.issues == tmp_path / "issues"
    assert s.database.url == f"sqlite:///{tmp_path}/publisher.db"


def test_repo_config_is_valid() -> None:
    root = Path(__file__).resolve().parent.parent
    s = load_settings(root / "config.yaml", environ={})
    assert s.site.domain == "news.example.org"
    assert s.email.from_.endswith("<news@example.org>")


def test_env_override_nested_and_typed(tmp_path: Path) -> None:
    s = load_settings(
        write(tmp_path, "email:\n  smtp:\n    port: 25\n"),
        environ={"PUBLISHER_EMAIL__SMTP__PORT": "2525", "PUBLISHER_EMAIL__TRANSPORT": "smtp"},
    )
    assert s.email.smtp.port == 2525
    assert s.email.transport == "smtp"


def test_unknown_key_names_path_and_line(tmp_path: Path) -> None:
    cfg = write(tmp_path, "site:\n  title: x\n  colour: blue\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, environ={})
    lines = exc.value.lines()
    assert len(lines) == 1
    assert lines[0].endswith(
        "config.yaml:3: site.colour: unknown key "
        "(known here: title, url, description, language, timezone, author, postal_address)"
    )


def test_wrong_type_names_expected_and_given(tmp_path: Path) -> None:
    cfg = write(tmp_path, "email:\n  concurrency: lots\nfeeds:\n  max_items: -1\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, environ={})
    lines = exc.value.lines()
    assert len(lines) == 2  # every problem, not only the first
    assert ":2: email.concurrency:" in lines[0] and "integer" in lines[0] and "'lots'" in lines[0]
    assert ":4: feeds.max_items:" in lines[1]


def test_bad_values_are_explained(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        "site:\n  timezone: Mars/Base\n  url: not-a-url\nschedule:\n  max_lateness: soon\n"
        "digests:\n  weekly: {day: someday}\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, environ={})
    text = "\n".join(exc.value.lines())
    assert "unknown time zone 'Mars/Base'" in text
    assert "absolute http(s) URL" in text
    assert "duration" in text
    assert "weekday" in text


def test_broken_yaml_names_line(tmp_path: Path) -> None:
    cfg = write(tmp_path, "site:\n  title: [unclosed\n  url: x\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, environ={})
    assert "not valid YAML" in exc.value.lines()[0]
    assert "config.yaml:" in exc.value.lines()[0]


def test_env_error_names_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, ""), environ={"PUBLISHER_WEB__PORT": "http"})
    assert exc.value.lines()[0].startswith("PUBLISHER_WEB__PORT (environment): web.port")


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "nope.yaml", environ={})


def test_secret_from_env_or_generated_file(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, ""), environ={})
    import os

    os.environ.pop(s.secret_env, None)
    first = s.secret_key()
    assert len(first) >= 32
    assert s.secret_key() == first  # stable across calls
    assert (tmp_path / ".publisher" / "secret.key").stat().st_mode & 0o077 == 0
