"""Nested config overrides for the settings fixtures."""

from __future__ import annotations

from typing import Any


def deep_merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    """Merge ``new`` into ``into`` in place; nested dicts are merged, everything else replaced."""
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            deep_merge(into[k], v)
        else:
            into[k] = v
