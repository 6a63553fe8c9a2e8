"""What the console's subscriber pages share: rendering a console page, and reading the list's filters.

Its own module so that ``admin_subscribers`` (the list and one subscriber) and
``admin_csv`` (upload and export, which take the list's filters too) need not
import each other.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.datastructures import FormData, QueryParams

from publisher.models import Frequency, SubscriberStatus
from publisher.store.subscriber_search import SORTS, Search, Sort
from publisher.store.subscribers import Filter
from publisher.web.admin_auth import editor_form
from publisher.web.requests import text_problem

EditorForm = Annotated[FormData, Depends(editor_form)]


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
