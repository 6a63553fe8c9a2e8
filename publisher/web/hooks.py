"""ESP webhooks under ``/hooks/<provider>``: bounces, complaints, unsubscribes and deliveries.

For publications that send through an ESP's SMTP relay (Amazon SES through
SNS, Postmark, Mailgun, SendGrid). Each call goes: provider configured (else
503) → body read once as bytes (over the cap: 413) → the provider's own
authentication (401) → freshness and replay (400) → its events turned into
``Feedback`` and applied exactly once by key (``ops.feedback.apply_feedback``)
→ 200. Nothing changes on any refusal. The answer is the same whether or not
the addresses named are ours, so a webhook reveals no subscriber.

Replays are stopped twice: a per-process ``RecentSet`` of one-use values
(Mailgun token, SNS MessageId, SendGrid signature) answers a replayed call 400,
and the store's keys stop the effect of one that reaches another process or
comes after a restart. Secrets are read once, when the app is built, from the
environment variables the ``hooks:`` section names.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping

from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from publisher.config import Settings
from publisher.errors import StoreError
from publisher.ops.feedback import apply_feedback
from publisher.web.context import WebContext
from publisher.web.hooks_common import Call, Hook, HookError, RecentSet
from publisher.web.hooks_mailgun import MailgunHook
from publisher.web.hooks_postmark import PostmarkHook
from publisher.web.hooks_sendgrid import SendgridHook
from publisher.web.hooks_sns import Fetcher, HttpsFetcher, SesHook
from publisher.web.middleware import BodyTooLargeError
from publisher.web.requests import web_context

log = logging.getLogger("publisher.web.hooks")
router = APIRouter(include_in_schema=False)


class Hooks:
    """The providers of one app, each with its own replay memory."""

    def __init__(self, settings: Settings, environ: Mapping[str, str], fetch: Fetcher) -> None:
        cfg = settings.hooks
        providers: list[Hook] = [
            SesHook(cfg.ses, fetch),
            PostmarkHook(cfg.postmark, environ),
            MailgunHook(cfg.mailgun, environ),
            SendgridHook(cfg.sendgrid),
        ]
        self.providers = {p.name: p for p in providers}
        self.recent = {name: RecentSet() for name in self.providers}


def install(
    app: FastAPI, settings: Settings, *, environ: Mapping[str, str] | None, fetch: Fetcher | None
) -> None:
    """Add ``/hooks/<provider>`` to ``app``; ``fetch`` GETs SNS certificates and confirmations."""
    app.state.hooks = Hooks(settings, os.environ if environ is None else environ, fetch or HttpsFetcher())
    app.include_router(router)


@router.post("/hooks/{provider}")
async def receive(provider: str, request: Request) -> JSONResponse:
    """One provider call: authenticate, then apply its events once; see the module docstring."""
    hooks: Hooks = request.app.state.hooks
    hook = hooks.providers.get(provider)
    if hook is None:
        return _answer(404, "no such webhook")
    if not hook.configured:
        return _answer(503, f"the {provider} webhook is not configured (see hooks.{provider} in config.yaml)")
    ctx = web_context(request)
    try:
        body = await request.body()
        call = Call(body, request.headers, request.client.host if request.client else None, ctx.now())
        await run_in_threadpool(_process, ctx, hook, hooks.recent[provider], call)
    except BodyTooLargeError as exc:
        return _answer(413, exc.message)
    except StoreError as exc:
        log.warning("%s webhook: %s", provider, exc.message)
        return _answer(503, "the database is unavailable; try again")
    except HookError as exc:
        if exc.status >= 500:
            log.warning("%s webhook: %s", provider, exc.message)
        return _answer(exc.status, exc.message, exc.headers)
    return _answer(200, "ok")


def _process(ctx: WebContext, hook: Hook, recent: RecentSet, call: Call) -> None:
    """Verify, refuse a replay, apply; the replay token is given back if applying fails (a retry is fine)."""
    verified = hook.read(call)
    token = hashlib.sha256(verified.replay.encode()).hexdigest() if verified.replay else None
    if token is not None and not recent.reserve(token, call.now, verified.replay_ttl):
        raise HookError(400, "this call was already received (a replay)")
    try:
        apply_feedback(ctx.store, ctx.settings, verified.items, now=call.now)
        if verified.then is not None:
            verified.then()
    except BaseException:
        if token is not None:
            recent.release(token)
        raise


def _answer(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = {"ok": True} if status == 200 else {"error": message}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))
