"""Environment overrides: ``PUBLISHER_EMAIL__SMTP__PORT=2525`` sets ``email.smtp.port``.

Overrides (and the tests' nested ``overrides`` dict) are applied as key paths
onto the parsed YAML before validation, so they are checked like the file.
"""

from __future__ import annotations

from typing import Any

import yaml

ENV_PREFIX = "PUBLISHER_"


def env_overrides(environ: dict[str, str]) -> dict[tuple[str, ...], Any]:
    """PUBLISHER_EMAIL__SMTP__PORT=2525 -> {('email','smtp','port'): 2525} (values parsed as YAML)."""
    out: dict[tuple[str, ...], Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        out[path] = value
    return out


def env_name(loc: tuple[str, ...]) -> str:
    """The environment variable that sets the key at ``loc``."""
    return ENV_PREFIX + "__".join(p.upper() for p in loc)


def set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[path[-1]] = value


def flatten(d: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """A nested dict as (key path, value) pairs, leaves only (an empty dict is a leaf)."""
    out: list[tuple[tuple[str, ...], Any]] = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.extend(flatten(v, (*prefix, k)))
        else:
            out.append(((*prefix, k), v))
    return out
