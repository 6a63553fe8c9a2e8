"""Pure ASGI middleware: security headers on every response, and checks before any route runs.

Plain ASGI rather than ``BaseHTTPMiddleware`` because it sits on the feed's hot
path: it adds a few pre-encoded header pairs and costs next to nothing.

The CSP allows no inline script except the one hashed time-zone guess on the
subscribe form, styles only from our own stylesheet, forms only to ourselves,
and no framing; ``Referrer-Policy: no-referrer`` keeps the tokens in our URLs
from leaking to other sites through the Referer header. When the site is
served over https, ``Strict-Transport-Security`` tells browsers never to try
plain http again (a year, subdomains included). Admin API answers carry
``Cache-Control: no-store``: subscriber data must not stay in any cache.

Before the app sees a request, a body over ``max_body`` bytes is refused with
413, and a path or query string holding control characters (NUL above all,
which PostgreSQL refuses in text) with 422, once here rather than in each route.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from publisher.errors import PublisherError
from publisher.web.pages import TZ_SCRIPT_HASH
from publisher.web.requests import text_problem

CSP = (
    "default-src 'none'; "
    f"script-src '{TZ_SCRIPT_HASH}'; "
    "style-src 'self'; "
    "img-src 'self' https: data:; "
    "media-src 'self' https:; "
    "form-action 'self'; "
    "frame-ancestors 'none'; "
    "base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
NO_STORE = (b"cache-control", b"no-store")

Refusal = Callable[[Scope, int, str], Response]


class BodyTooLargeError(PublisherError):
    """A request body over the limit (raised while the body is read)."""


def is_api(scope: Scope) -> bool:
    """Whether the request is for the admin API (answered in JSON, never cached)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    path = path.removeprefix(root) if root and path.startswith(root) else path
    return path == "/api" or path.startswith("/api/")


def address_problem(scope: Scope) -> str | None:
    """What is wrong with the request's path or query string, if anything."""
    problem = text_problem(scope.get("path", ""), allow_whitespace=False)
    if problem:
        return f"the web address {problem}"
    query = unquote_to_bytes(scope.get("query_string", b"").replace(b"+", b" "))
    if any(b < 0x20 or b == 0x7F for b in query):
        return "the query string has a control character"
    return None


class GuardMiddleware:
    """Adds the security headers; refuses bodies over ``max_body`` (413) and control characters (422)."""

    def __init__(
        self,
        app: ASGIApp,
        max_body: int,
        refuse: Refusal,
        https: bool,
        max_hook_body: int | None = None,
        max_upload_body: int | None = None,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.max_hook_body = max_hook_body or max_body
        self.max_upload_body = max_upload_body or max_body
        self.refuse = refuse
        self.headers = [*SECURITY_HEADERS, HSTS] if https else SECURITY_HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = is_api(scope)
        limit = self.max_body
        if _is_hook(scope):
            limit = self.max_hook_body
        elif _is_upload(scope):
            limit = self.max_upload_body

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if api:
                    headers = [(n, v) for n, v in headers if n.lower() != b"cache-control"] + [NO_STORE]
                present = {name.lower() for name, _ in headers}
                message["headers"] = headers + [(n, v) for n, v in self.headers if n not in present]
            await send(message)

        status, problem = 422, address_problem(scope)
        if problem is None and _declared_too_large(scope, limit):
            status, problem = 413, f"the request body is over {limit // 1024} KB"
        if problem is not None:
            await self.refuse(scope, status, problem)(scope, receive, send_with_headers)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLargeError(f"the request body is over {limit // 1024} KB")
            return message

        await self.app(scope, counting_receive, send_with_headers)


def _declared_too_large(scope: Scope, limit: int) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value) > limit
            except ValueError:
                return True
    return False


def _is_upload(scope: Scope) -> bool:
    """The console's CSV upload: a subscriber list is megabytes (its route streams it to disk, capped)."""
    return scope.get("method") == "POST" and str(scope.get("path", "")).endswith("/admin/subscribers/import")


def _is_hook(scope: Scope) -> bool:
    """ESP webhooks post batches (SNS messages up to 256 KB, SendGrid arrays): a cap of their own."""
    return str(scope.get("path", "")).startswith("/hooks/")
