"""What the console's subscriber pages share: rendering a console page, and reading the list's filters.

Its own module so that ``admin_subscribers`` (the list and one subscriber) and
``admin_csv`` (upload and export, which take the list's filters too) need not
import each other.
"""

from __future__ import annotations

from typing import Annotated, Any

import jinja2
from fastapi import Depends, Request
from starlette.datastructures import FormData, QueryParams
from starlette.responses import HTMLResponse

from publisher.models import Frequency, SubscriberStatus
from publisher.store.subscriber_search import SORTS, Search, Sort
from publisher.store.subscribers import Filter
from publisher.web.admin_auth import admin_root, editor_form
from publisher.web.pages import error_page
from publisher.web.pages import page as render_page
from publisher.web.requests import text_problem, web_context

EditorForm = Annotated[FormData, Depends(editor_form)]


def render(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
    """A console page (the site's layout); a 503 page when the project lacks the template."""
    settings = web_context(request).settings
    try:
        return render_page(
            settings, name, status=status, path="admin", admin_root=admin_root(request), **values
        )
    except jinja2.TemplateNotFound as exc:
        return error_page(
            settings,
            503,
            "Console unavailable",
            f"the console's template {exc.name} is missing from {settings.paths.templates}",
            hint="copy templates/web/admin_*.html from the publisher project into your templates folder",
        )


def query_text(params: QueryParams, name: str, limit: int) -> str | None:
    value = (params.get(name) or "").strip()
    if not value or len(value) > limit or text_problem(value, allow_whitespace=False):
        return None
    return value


def _choice(params: QueryParams, name: str, allowed: tuple[str, ...]) -> str | None:
    value = params.get(name)
    return value if value in allowed else None


def search_of(params: QueryParams) -> Search:
    """The list's filters from the query string; an unknown or unusable value means "any"."""
    status = _choice(params, "status", tuple(s.value for s in SubscriberStatus))
    frequency = _choice(params, "frequency", tuple(f.value for f in Frequency))
    sort: Sort = next((s for s in SORTS if s == params.get("sort")), "oldest")
    return Search(
        Filter(
            status=SubscriberStatus(status) if status else None,
            frequency=Frequency(frequency) if frequency else None,
            topic=query_text(params, "topic", 64),
            search=query_text(params, "q", 254),
        ),
        zone=query_text(params, "zone", 64),
        sort=sort,
    )
