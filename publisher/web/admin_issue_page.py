"""Rendering the console's issue page: state, problems, preview, and the action forms (for editors).

Shared by the GET route (``admin_issues``) and the actions (``admin_issue_actions``),
which show the page again with the reason when an action is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from fastapi import Request
from starlette.responses import HTMLResponse

from publisher.config import Settings
from publisher.errors import NotFoundError, PublisherError
from publisher.ops.issue_state import IssueRow, content_report
from publisher.store.editors import EditorSession
from publisher.web.admin_auth import console_page, csrf_token
from publisher.web.admin_preview import Preview, checked_slug, make_preview
from publisher.web.requests import web_context

# What the page says after an action redirected back to it (?done=...).
DONE = {
    "test": "A test copy was sent to your address.",
    "queued": "The issue is queued.",
    "unqueued": "The issue was taken off the queue.",
    "sending": "The send has started; the dashboard follows its progress.",
}
WIDTHS = (600, 375)
SCHEMES = ("light", "dark")


@cache
def zones() -> tuple[str, ...]:
    """The IANA time zones this system knows (Area/City, and UTC), sorted; read from disk once."""
    found = available_timezones()
    return tuple(
        sorted(z for z in found if z == "UTC" or ("/" in z and not z.startswith(("posix", "right"))))
    )


def zone_or_none(settings: Settings, value: object) -> ZoneInfo | None:
    """``value`` as a time zone if it is one we offer, else None."""
    if isinstance(value, str) and (value == settings.site.timezone or value in zones()):
        return ZoneInfo(value)
    return None


def _times(when: datetime | None, zone: ZoneInfo) -> dict[str, str] | None:
    """A stored UTC time as the editor reads it: in their zone and in UTC, plus the picker's value."""
    if when is None:
        return None
    local = when.astimezone(zone)
    return {
        "local": f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({zone.key})",
        "utc": f"{when.astimezone(UTC):%Y-%m-%d %H:%M} UTC",
        "picker": f"{local:%Y-%m-%dT%H:%M}",
        "iso": when.astimezone(UTC).isoformat(),
    }


def _preview_or_error(settings: Settings, slug: str) -> tuple[Preview | None, PublisherError | None]:
    try:
        return make_preview(settings, slug), None
    except NotFoundError:
        raise
    except PublisherError as exc:  # a broken issue still gets its page, with the reason
        return None, exc


def issue_page(
    request: Request,
    session: EditorSession,
    slug: str,
    *,
    status: int = 200,
    error: PublisherError | None = None,
    zone: ZoneInfo | None = None,
    at: str = "",
) -> HTMLResponse:
    """One issue's page: state, problems, the email's preview, and (for editors) the actions."""
    checked_slug(slug)
    ctx = web_context(request)
    settings = ctx.settings
    row: IssueRow | None = content_report(settings, ctx.store, now=ctx.now()).row(slug)
    if row is None:
        raise NotFoundError("no such issue", hint="the Issues page lists them")
    preview, problem = _preview_or_error(settings, slug)
    zone = zone or zone_or_none(settings, request.query_params.get("zone")) or settings.site.tz
    queued = _times(row.queued.send_at, zone) if row.queued is not None else None
    done = DONE.get(request.query_params.get("done", ""))
    editor = session.editor.role == "editor"
    return console_page(
        request,
        "admin_issue.html",
        status=status,
        title=f"Issue: {row.title}",
        row=row,
        preview=preview,
        problem=problem,
        error=error,
        done=done if error is None else None,
        editor=session.editor,
        can_edit=editor,
        csrf=csrf_token(ctx.secret, session) if editor else "",
        zone=zone.key,
        zones=zones(),
        queued=queued,
        at=at or (queued["picker"] if queued else ""),
        widths=WIDTHS,
        schemes=SCHEMES,
    )
