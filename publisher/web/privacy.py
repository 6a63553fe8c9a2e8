"""``GET /privacy``: what this publication counts about its readers, said from its own settings.

The page is written from ``analytics`` as configured now, so it cannot drift
from what the app does: the mail footer says the same in one line
(``render.links.counting_note``) and links here. Public, no token, cacheable
for a short while (it changes only with the configuration).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse

from publisher.render.links import counting_note
from publisher.web.pages import page
from publisher.web.requests import web_context

router = APIRouter(include_in_schema=False)


@router.api_route("/privacy", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def privacy(request: Request) -> HTMLResponse:
    settings = web_context(request).settings
    a = settings.analytics
    return page(
        settings,
        "privacy.html",
        path="privacy",
        headers={"Cache-Control": "public, max-age=300"},
        title="Privacy: what we count",
        summary=counting_note(a.clicks, a.per_subscriber, a.opens),
        clicks=a.clicks,
        per_subscriber=a.clicks and a.per_subscriber,
        opens=a.opens,
        retention_days=a.retention.days,
        sunset=a.clicks and a.per_subscriber and a.sunset,
        sunset_days=a.sunset_after.days,
        sunset_issues=a.sunset_min_issues,
        grace_days=a.sunset_grace.days,
    )
