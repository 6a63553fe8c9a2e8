"""Rendering the app's own pages from ``templates/web/`` (inside the site's ``base.html``).

Pages are built with the same jinja2 environment as the archive (autoescaped,
StrictUndefined), so a subscriber's name or a hostile query string is escaped
everywhere. Dynamic pages are ``no-store``: they carry personal data and links
with tokens, which no shared cache should keep.
"""

from __future__ import annotations

import base64
import hashlib
import html
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup
from starlette.responses import HTMLResponse

from publisher.config import Settings
from publisher.errors import PublisherError
from publisher.feeds import MEDIA_TYPES
from publisher.render.templates import environment

log = logging.getLogger("publisher.web")

WEB_TEMPLATES = (
    "web/layout.html",
    "web/_choices.html",
    "web/_problems.html",
    "web/subscribe.html",
    "web/subscribe_sent.html",
    "web/confirmed.html",
    "web/unsubscribe.html",
    "web/unsubscribed.html",
    "web/preferences.html",
    "web/error.html",
    "web/confirm_email.html",
    "web/confirm_email.txt",
)

# Guesses the browser's time zone on the subscribe form; the form works without it.
# Inline, so the CSP allows exactly this text by its hash.
TZ_SCRIPT = (
    "(function(){try{var z=Intl.DateTimeFormat().resolvedOptions().timeZone;"
    "var s=document.getElementById('timezone');"
    "if(!z||!s||s.getAttribute('data-guess')!=='1')return;"
    "var a=(s.getAttribute('data-aliases')||'').split(';');"
    "for(var j=0;j<a.length;j++){var p=a[j].split('=');if(p[0]===z){z=p[1];break;}}"
    "for(var i=0;i<s.options.length;i++){if(s.options[i].value===z){s.value=z;break;}}"
    "}catch(e){}})();"
)
TZ_SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(TZ_SCRIPT.encode()).digest()).decode()
FEED_LABELS = {"feed.xml": "RSS", "atom.xml": "Atom", "feed.json": "JSON Feed"}


def public_url(settings: Settings) -> str:
    """Where people reach this app (``web.public_url``, else ``site.url``), without a trailing '/'.

    Apart from ``site.url`` so a local trial (``http://127.0.0.1:8000``) can run
    with the real site's URL in the archive and feeds and still get working links.
    """
    return (settings.web.public_url or settings.site.url).rstrip("/")


def site_root(settings: Settings) -> str:
    """The path the app is served under, from ``public_url`` ('/' or '/news/')."""
    path = urlsplit(public_url(settings)).path.rstrip("/")
    return path + "/"


def check_templates(settings: Settings) -> None:
    """Fail at start, with a hint, when the project has no web templates (not at the first visitor)."""
    folder = settings.paths.templates
    missing = [name for name in WEB_TEMPLATES if not (folder / name).is_file()]
    if missing:
        raise PublisherError(
            f"the web app's templates are missing from {folder}: {', '.join(missing)}",
            hint="copy templates/web/ from the publisher project into your templates folder",
        )


def base_context(settings: Settings, path: str) -> dict[str, Any]:
    """What ``base.html`` needs: site, root, canonical URL, subscribe link, feeds."""
    site_url = public_url(settings) + "/"
    return {
        "site": settings.site,
        "root": site_root(settings),
        "page_url": site_url + path,
        "subscribe_url": site_url + "subscribe",
        "feeds": [
            {"href": site_url + name, "type": kind, "title": f"{settings.site.title} ({FEED_LABELS[name]})"}
            for name, kind in MEDIA_TYPES.items()
        ],
    }


def render_text(settings: Settings, template: str, **values: Any) -> str:
    """A template rendered to a string (pages and the HTML mail part)."""
    ctx = base_context(settings, values.pop("path", ""))
    ctx.update(values)
    return environment(settings.paths.templates).get_template(template).render(ctx)


def page(
    settings: Settings,
    name: str,
    *,
    status: int = 200,
    path: str = "",
    headers: dict[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """One of our pages as a response (never cached)."""
    body = render_text(settings, f"web/{name}", path=path, tz_script=Markup(TZ_SCRIPT), **values)
    out = {"Cache-Control": "no-store"}
    out.update(headers or {})
    return HTMLResponse(body, status_code=status, headers=out)


def error_page(
    settings: Settings,
    status: int,
    title: str,
    message: str,
    *,
    hint: str | None = None,
    problems: Sequence[str] = (),
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """An error as a page; falls back to bare HTML if the templates themselves are broken."""
    try:
        return page(
            settings,
            "error.html",
            status=status,
            headers=headers,
            title=title,
            message=message,
            hint=hint or "",
            problems=list(problems),
        )
    except (jinja2.TemplateError, OSError) as exc:
        log.error("cannot render the error page: %s", exc)
        text = html.escape(f"{title}: {message}")
        return HTMLResponse(
            f"<!DOCTYPE html><html><head><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1><p>{text}</p></body></html>",
            status_code=status,
            headers={"Cache-Control": "no-store", **(headers or {})},
        )
