"""Small request helpers shared by the routes: the app's context and bounded form parsing."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request

from publisher.web.context import WebContext

MAX_FIELDS = 300  # a form with every topic ticked stays far below this


def web_context(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.web
    return ctx


async def read_form(request: Request) -> FormData:
    """The body as form fields (urlencoded or multipart, no file uploads); 400 if malformed."""
    limit = web_context(request).limits.max_body
    return await request.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=limit)
