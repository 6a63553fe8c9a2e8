"""Small request helpers shared by the routes: the app's context, bounded form parsing, the text rule."""

from __future__ import annotations

import re

from starlette.datastructures import FormData
from starlette.requests import Request

from publisher.web.context import WebContext

MAX_FIELDS = 300  # a form with every topic ticked stays far below this
_PATH_BAD = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_BODY_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def web_context(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.web
    return ctx


async def read_form(request: Request) -> FormData:
    """The body as form fields (urlencoded or multipart, no file uploads); 400 if malformed."""
    limit = web_context(request).limits.max_body
    return await request.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=limit)


def text_problem(value: str, *, allow_whitespace: bool = True) -> str | None:
    """What makes ``value`` unfit to store or echo (NUL, C0 controls, lone surrogates), or None.

    Tab, CR and LF pass only where ``allow_whitespace`` (a text body may hold
    them; a path never does). PostgreSQL refuses NUL in text and no codec
    encodes a lone surrogate, so both would otherwise be a 500 deep in a route.
    """
    found = (_BODY_BAD if allow_whitespace else _PATH_BAD).search(value)
    if found is None:
        return None
    char = found.group()
    if "\ud800" <= char <= "\udfff":
        return "has an unpaired surrogate (not valid Unicode)"
    return "has a NUL character" if char == "\x00" else f"has a control character (U+{ord(char):04X})"
