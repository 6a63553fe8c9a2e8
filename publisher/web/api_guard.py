"""The admin API's gate: the bearer token (with its throttle) and the text rule, before FastAPI reads a body.

The token comes from the environment variable ``web.api_token_env`` names.
With none set the API answers 503 "admin API disabled" instead of being open:
an admin API must never be reachable by accident. Tokens are compared in
constant time, and wrong ones are counted per client (``api_failures``, in the
database when several workers serve): past the burst a client gets 429, even
with the right token, until its bucket refills, so guessing is hopeless while
other clients go on working.

Every route is a ``GuardedRoute``: the token is checked before FastAPI reads
or validates the body (a dependency would run only after the JSON is parsed,
so a stranger could learn the body's schema from 422s), and then strings in a
JSON body are held to the text rule (no NUL, C0 controls, lone surrogates).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from publisher.errors import PublisherError
from publisher.web.requests import text_problem, web_context

# The guard middleware refuses control characters in any path (422); this says so in the schema.
PathText = Annotated[str, Path(pattern=r"^[^\x00-\x1f\x7f]*$")]


class ApiError(PublisherError):
    """An API refusal with its HTTP status (auth, disabled, conflict)."""

    def __init__(
        self, status: int, message: str, hint: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message, hint)
        self.status = status
        self.retry_after = retry_after


# Declared so the OpenAPI schema shows the scheme; the check itself is GuardedRoute's.
bearer = HTTPBearer(auto_error=False, description="the token in the variable web.api_token_env names")


def _throttled(wait: int) -> ApiError:
    return ApiError(
        429, "too many wrong tokens from this client", hint=f"wait {wait} seconds", retry_after=wait
    )


def require_token(request: Request) -> None:
    """The bearer check, with the per-client throttle on wrong tokens (may query the database)."""
    ctx = web_context(request)
    if not ctx.api_token:
        raise ApiError(
            503,
            "admin API disabled",
            hint=f"set the environment variable {ctx.settings.web.api_token_env} to a long random token",
        )
    client = request.client.host if request.client else "unknown"
    now = ctx.now().timestamp()
    wait = ctx.api_failures.retry_after(client, now)
    if wait:
        raise _throttled(wait)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), ctx.api_token.encode()):
        return
    if not ctx.api_failures.take(client, now):
        raise _throttled(ctx.api_failures.retry_after(client, now))
    raise ApiError(401, "a valid bearer token is required", hint="send Authorization: Bearer <token>")


def _bad_string(value: Any, loc: tuple[str | int, ...]) -> tuple[tuple[str | int, ...], str] | None:
    """The first string (key or value) in parsed JSON that breaks the text rule, with where it is."""
    if isinstance(value, str):
        problem = text_problem(value)
        return (loc, problem) if problem else None
    items: list[tuple[str | int, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if problem := text_problem(key):
                return (*loc, key), f"a key {problem}"
            items.append((key, item))
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, item in items:
        if found := _bad_string(item, (*loc, key)):
            return found
    return None


async def check_body_text(request: Request) -> None:
    """422 for a JSON body holding text the store cannot keep (checked once here, not per model)."""
    if "json" not in request.headers.get("content-type", ""):
        return
    body = await request.body()  # cached on the request: FastAPI reads the same bytes next
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return  # not JSON: FastAPI's own validation says so
    found = _bad_string(data, ("body",))
    if found:
        loc, problem = found
        raise RequestValidationError([{"type": "string_text", "loc": loc, "msg": problem, "input": None}])


class GuardedRoute(APIRoute):
    """An /api route: token (and throttle) first, then the body's text, then FastAPI's own handling."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            await run_in_threadpool(require_token, request)
            await check_body_text(request)
            return await handler(request)

        return guarded


def guarded_router() -> APIRouter:
    """A part of the API in its own module; ``api.router`` includes it under /api with the token check."""
    return APIRouter(route_class=GuardedRoute)
