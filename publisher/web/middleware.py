"""Pure ASGI middleware: security headers on every response, and a cap on request bodies.

Plain ASGI rather than ``BaseHTTPMiddleware`` because it sits on the feed's hot
path: it adds a few pre-encoded header pairs and costs next to nothing.

The CSP allows no inline script except the one hashed time-zone guess on the
subscribe form, styles only from our own stylesheet, forms only to ourselves,
and no framing; ``Referrer-Policy: no-referrer`` keeps the tokens in our URLs
from leaking to other sites through the Referer header.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from publisher.errors import PublisherError
from publisher.web.pages import TZ_SCRIPT_HASH

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


class BodyTooLargeError(PublisherError):
    """A request body over the limit (raised while the body is read)."""


class GuardMiddleware:
    """Adds the security headers; refuses bodies over ``max_body`` bytes with 413."""

    def __init__(self, app: ASGIApp, max_body: int, too_large: Callable[[Scope], Response]) -> None:
        self.app = app
        self.max_body = max_body
        self.too_large = too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_body + 1
                if declared > self.max_body:
                    await self.too_large(scope)(scope, receive, send_with_headers)
                    return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLargeError(f"the request body is over {self.max_body // 1024} KB")
            return message

        await self.app(scope, counting_receive, send_with_headers)
