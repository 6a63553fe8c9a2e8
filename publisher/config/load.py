"""Reading config.yaml: parse, apply environment overrides, validate, make paths absolute.

Nothing half-configured ever sends mail: a file that is not YAML, or any
unknown key or wrong value, stops the start with every problem at once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from publisher.config.env import env_overrides, flatten, set_path
from publisher.config.problems import validation_problems
from publisher.config.settings import Settings
from publisher.config.yamlmap import key_lines
from publisher.errors import ConfigError, Problem, relpath


def load_settings(
    path: Path | str | None = None,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Read ``path`` (default ./config.yaml; a missing default file means all defaults).

    ``overrides`` is a nested dict applied after the environment (tests use it).
    """
    environ = dict(os.environ) if environ is None else environ
    cfg_path = Path(path) if path is not None else Path("config.yaml")
    where = relpath(cfg_path)
    text, data = _read(cfg_path, where, explicit=path is not None)
    env = env_overrides(environ)
    for key_path, value in env.items():
        set_path(data, key_path, value)
    for key_path, value in flatten(overrides or {}):
        set_path(data, key_path, value)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            validation_problems(exc, where, key_lines(text), env),
            hint="see config.yaml in the project for every key and its default",
        ) from None
    return _resolve(settings, cfg_path.resolve().parent)


def _read(cfg_path: Path, where: str, *, explicit: bool) -> tuple[str, dict[str, Any]]:
    """The file's text and its mapping ({} for an empty or absent default file)."""
    text = ""
    if cfg_path.exists():
        text = cfg_path.read_text(encoding="utf-8")
    elif explicit:
        raise ConfigError([Problem(where, "no such file")], hint="pass --config PATH to an existing file")
    try:
        data = yaml.safe_load(text) if text else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([Problem(where, f"not valid YAML: {getattr(exc, 'problem', exc)}", line)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([Problem(where, "the file must hold a mapping of sections (site:, email:, ...)")])
    return text, data


def _resolve(settings: Settings, base: Path) -> Settings:
    """Make every relative path (and a relative SQLite URL) relative to the config file's folder."""

    def absolute(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    paths = settings.paths.model_copy(update={k: absolute(v) for k, v in settings.paths})
    db_url = settings.database.url
    m = re.match(r"^(sqlite(?:\+\w+)?:///)(?!/)(.+)$", db_url)
    if m and m.group(2) != ":memory:":
        db_url = m.group(1) + str(absolute(Path(m.group(2))))
    email = settings.email
    if email.dkim is not None:
        ed25519 = email.dkim.ed25519_key_file
        dkim = email.dkim.model_copy(
            update={
                "private_key_file": absolute(email.dkim.private_key_file),
                "ed25519_key_file": absolute(ed25519) if ed25519 else None,
            }
        )
        email = email.model_copy(update={"dkim": dkim})
    return settings.model_copy(
        update={
            "paths": paths,
            "database": settings.database.model_copy(update={"url": db_url}),
            "email": email,
            "base_dir": base,
        }
    )
