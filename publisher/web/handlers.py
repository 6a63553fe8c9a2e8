"""Turning errors into answers: a page for people, JSON (``ErrorOut``) for the admin API.

This is the only place (besides the CLI) where a ``PublisherError`` becomes
output. Token failures all get the same plain page, whatever went wrong with
the token (forged, tampered, expired, another purpose), so a link reveals
nothing; an unexpected error is logged with its traceback and shown as a
generic 500 that reveals nothing either.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

from publisher.errors import ContentError, NotFoundError, PublisherError, StoreError
from publisher.ops.queue import QueueError
from publisher.store.values import InvalidValueError
from publisher.tokens import TokenError
from publisher.web.api import ApiError
from publisher.web.api_models import ErrorOut
from publisher.web.forms import FormError
from publisher.web.middleware import BodyTooLargeError, Refusal, is_api
from publisher.web.pages import error_page
from publisher.web.requests import web_context
from publisher.web.security import ForbiddenError

log = logging.getLogger("publisher.web")

TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    413: "Too much data",
    422: "Please check the form",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Unavailable",
}
LINK_MESSAGE = "This link is not valid, or it has expired."
LINK_HINT = (
    "Check that the whole link was copied from the email. For a new confirmation link, subscribe again."
)


def status_for(exc: PublisherError) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, ForbiddenError):
        return 403
    if isinstance(exc, TokenError):
        return 400
    if isinstance(exc, FormError | InvalidValueError | ContentError):
        return 422
    if isinstance(exc, QueueError):
        return 409
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, BodyTooLargeError):
        return 413
    if isinstance(exc, StoreError):
        return 503
    return 500


def json_error(
    status: int,
    error: str,
    hint: str | None = None,
    problems: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorOut(error=error, hint=hint, problems=problems or [])
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


async def publisher_error(request: Request, exc: PublisherError) -> Response:
    """Our own errors: JSON under /api, else a page; every bad link gets the same page."""
    status = status_for(exc)
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc.message)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, ApiError) and exc.retry_after is not None:
        headers = {"Retry-After": str(exc.retry_after)}
    if is_api(request.scope):
        problems = exc.lines() if len(exc.lines()) > 1 else []
        return json_error(status, exc.message, exc.hint, problems, headers)
    settings = web_context(request).settings
    if isinstance(exc, TokenError) and not isinstance(exc, ForbiddenError):
        return error_page(settings, 400, "Link not valid", LINK_MESSAGE, hint=LINK_HINT)
    if status == 500:
        return error_page(settings, 500, TITLES[500], "The page could not be shown. Please try again later.")
    problems = exc.lines() if isinstance(exc, FormError) else []
    return error_page(
        settings, status, TITLES.get(status, "Error"), exc.message, hint=exc.hint, problems=problems
    )


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    headers = dict(exc.headers or {})
    detail = str(exc.detail) if exc.detail else TITLES.get(exc.status_code, "Error")
    if is_api(request.scope):
        return json_error(exc.status_code, detail, headers=headers)
    return error_page(
        web_context(request).settings,
        exc.status_code,
        TITLES.get(exc.status_code, "Error"),
        detail,
        headers=headers,
    )


async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
    problems = [
        f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}" for err in exc.errors()
    ]
    if is_api(request.scope):
        return json_error(422, "invalid request", problems=problems)
    return error_page(
        web_context(request).settings, 422, TITLES[422], "The request was not valid.", problems=problems
    )


async def unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    if is_api(request.scope):
        return json_error(500, "internal error")
    return error_page(
        web_context(request).settings,
        500,
        TITLES[500],
        "The page could not be shown. Please try again later.",
    )


def install(app: FastAPI) -> None:
    """Register the handlers above: every error the app raises becomes a page or ``ErrorOut``.

    Through the decorator, which types the handler as it is (``add_exception_handler`` wants one
    taking any ``Exception``)."""
    app.exception_handler(PublisherError)(publisher_error)
    app.exception_handler(StarletteHTTPException)(http_error)
    app.exception_handler(RequestValidationError)(invalid_request)
    app.exception_handler(Exception)(unexpected)


def guard_refusal(app: FastAPI) -> Refusal:
    """What the guard middleware answers (413, 422) before the app has read anything."""

    def make(scope: Scope, status: int, message: str) -> Response:
        if is_api(scope):
            return json_error(status, message)
        title = "Not a valid address" if status == 422 else TITLES.get(status, "Error")
        return error_page(app.state.web.settings, status, title, message)

    return make
