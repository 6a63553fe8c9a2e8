"""Turning pydantic's validation errors into problems that name the key, its line or variable.

Each problem says where the bad value came from: the environment variable
when an override set it, else config.yaml and the line of the key (or of its
nearest enclosing key). An unknown key suggests the likely intended one.
"""

from __future__ import annotations

import difflib
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from publisher.config.env import env_name
from publisher.config.settings import Settings
from publisher.config.yamlmap import line_for
from publisher.errors import Problem, and_more


def validation_problems(
    exc: ValidationError,
    where: str,
    lines: dict[tuple[str, ...], int],
    env: dict[tuple[str, ...], Any],
) -> list[Problem]:
    """One problem per error, from the environment variable when ``env`` set the key, else the file."""
    problems = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        dotted = ".".join(loc)
        if loc in env:
            problems.append(Problem(f"{env_name(loc)} (environment)", f"{dotted}: {describe(err, loc)}"))
        else:
            problems.append(Problem(where, f"{dotted}: {describe(err, loc)}", line_for(lines, loc)))
    return problems


def describe(err: ErrorDetails, loc: tuple[str, ...]) -> str:
    kind = err["type"]
    given = err.get("input")
    if kind == "extra_forbidden":
        return unknown_key(loc)
    if kind == "missing":
        return "required key is missing"
    msg = err["msg"].removeprefix("Value error, ")
    if kind.startswith("value_error"):
        return msg
    return f"{msg} (got {given!r})"


def unknown_key(loc: tuple[str, ...]) -> str:
    """'unknown key' with the likely intended key, as front matter does (`concurency` -> 'concurrency')."""
    known = section_keys(loc[:-1])
    close = difflib.get_close_matches(loc[-1].lower(), known, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key (known here: {and_more(known)})" if known else "unknown key"


def section_keys(section: tuple[str, ...]) -> tuple[str, ...]:
    """The keys config.yaml allows in ``section`` (a key path; () is the top level)."""
    model: Any = Settings
    for part in section:
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return ()
        kinds = (field.annotation, *get_args(field.annotation))
        model = next((k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)), None)
        if model is None:
            return ()
    return tuple(f.alias or n for n, f in model.model_fields.items() if not f.exclude)
