"""The jinja2 environment shared by emails and pages.

Autoescape everywhere (HTML and text templates alike are fed untrusted titles
and names) and StrictUndefined so a typo in a template fails the build instead
of silently sending an empty field.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2


@lru_cache(maxsize=8)
def environment(templates_dir: Path) -> jinja2.Environment:
    """One environment per templates folder (cached: compiling templates is not free)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        autoescape=jinja2.select_autoescape(["html", "htm", "xml"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def text_environment(templates_dir: Path) -> jinja2.Environment:
    """For text/plain templates: no HTML escaping (an '&' must stay '&' in a text part)."""
    return _text_environment(templates_dir)


@lru_cache(maxsize=8)
def _text_environment(templates_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
