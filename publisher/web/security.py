"""Link tokens read against our clock, the preferences form's CSRF token, and the Origin check.

Cross-site forgery on ``POST /preferences/{token}`` is stopped two ways:

1. the form carries a CSRF token: an itsdangerous signature (own salt, 1 day)
   over a hash of the preferences token in the URL, so a token lifted from one
   subscriber's page is useless on another's, and the form must have been
   fetched from us; and
2. a browser's ``Sec-Fetch-Site: cross-site`` or an ``Origin`` that is not the
   site's own, the app's ``web.public_url`` or the host the request came to is
   refused before anything else.

``POST /unsubscribe/{token}`` has neither on purpose: RFC 8058 one-click POSTs
come from mail providers, with no cookie, no form and no Origin of ours.
``POST /subscribe`` accepts cross-site posts (sign-up forms embedded in other
sites are normal); double opt-in is what protects it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from urllib.parse import urlsplit

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import HTMLResponse

from publisher.tokens import Purpose, TokenError, read_token_info
from publisher.web.pages import page, public_url, site_root
from publisher.web.requests import web_context

CSRF_MAX_AGE = 24 * 3600
_CSRF_SALT = "publisher.web.csrf"


class ForbiddenError(TokenError):
    """A request that looks cross-site where only same-site is allowed."""


def read_link_token(secret: bytes, purpose: Purpose, token: str, now: datetime) -> tuple[str, int]:
    """(address, issued-at in epoch microseconds; 0 for tokens that never expire), age checked."""
    info = read_token_info(secret, purpose, token, now=now)
    return info.email, info.issued_us or 0


async def button_page(
    request: Request, purpose: Purpose, token: str, template: str, title: str
) -> HTMLResponse:
    """What a GET or HEAD of a link that changes state shows: its address and a button that POSTs.

    Link scanners and mail prefetchers fetch every link in a mail; only a person
    pressing the button confirms or unsubscribes.
    """
    ctx = web_context(request)
    address, _ = read_link_token(ctx.secret, purpose, token, ctx.now())
    action = f"{site_root(ctx.settings)}{purpose.value}/{token}"
    return page(ctx.settings, template, path=purpose.value, title=title, email=address, action=action)


def _csrf_serializer(secret: bytes) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=_CSRF_SALT)


def _bind(link_token: str) -> str:
    return hashlib.sha256(link_token.encode()).hexdigest()[:32]


def make_csrf(secret: bytes, link_token: str) -> str:
    """A form token valid only with this preferences link."""
    return _csrf_serializer(secret).dumps(_bind(link_token))


def check_csrf(secret: bytes, link_token: str, value: str | None) -> None:
    if not value or len(value) > 512:
        raise ForbiddenError("the form is missing its security token", hint="reload the page and try again")
    try:
        bound = _csrf_serializer(secret).loads(value, max_age=CSRF_MAX_AGE)
    except SignatureExpired:
        raise ForbiddenError("the form has expired", hint="reload the page and try again") from None
    except BadSignature:
        raise ForbiddenError("the form's security token is not valid", hint="reload the page") from None
    if bound != _bind(link_token):
        raise ForbiddenError("the form's security token is not valid", hint="reload the page")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_same_origin(request: Request, site_url: str) -> None:
    """Refuse a browser request that says it comes from another site.

    ``site_url``, ``web.public_url`` (the app may be reached apart from the site,
    e.g. on 127.0.0.1 in a trial) and the host the request came to count as ours.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site == "cross-site":
        raise ForbiddenError("this form can only be sent from this site")
    origin = request.headers.get("origin")
    if origin is None or (origin == "null" and fetch_site in (None, "same-origin")):
        return
    allowed = {
        _origin(site_url),
        _origin(public_url(web_context(request).settings)),
        f"{request.url.scheme}://{request.headers.get('host', '')}".lower(),
    }
    if origin.lower() not in allowed:
        raise ForbiddenError("this form can only be sent from this site")
