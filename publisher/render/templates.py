"""The jinja2 environment shared by emails and pages.

Autoescape everywhere (HTML and text templates alike are fed untrusted titles
and names) and StrictUndefined so a typo in a template fails the build instead
of silently sending an empty field.
"""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache
from pathlib import Path

import jinja2
import jinja2.bccache


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


def freeze_templates(templates_dir: Path) -> None:
    """Stop checking the template files for edits in this process (a build worker's lifetime).

    jinja2 stats each template file on every ``get_template`` to reload an
    edited one: a long-running server needs that, a process that renders
    thousands of emails from one build's templates does not.

    A forked worker inherits its parent's compiled templates, which may predate an edit
    (a watch-mode parent, an earlier build in the process): they are checked once here.
    """
    for env in (environment(templates_dir), _text_environment(templates_dir)):
        cache = env.cache
        if cache is not None and not all(t.is_up_to_date for t in cache.values()):
            cache.clear()
        env.auto_reload = False


def keep_compiled(templates_dir: Path, folder: Path) -> None:
    """Keep compiled templates in ``folder``, so a fresh process loads them instead of compiling.

    Compiling the page templates costs ~25 ms, a tenth of a small rebuild's start. jinja2
    checks each template's source checksum, so an edited template is compiled again.
    """
    for name, env in (("html", environment(templates_dir)), ("text", _text_environment(templates_dir))):
        if env.bytecode_cache is None:
            env.bytecode_cache = _Compiled(str(folder / name))


class _Compiled(jinja2.FileSystemBytecodeCache):
    """A cache that never fails a render: a folder gone or unwritable only costs a compile."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().load_bytecode(bucket)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            os.makedirs(self.directory, exist_ok=True)
            super().dump_bytecode(bucket)
