"""The app factory: one FastAPI app serving sign-up, links from mail, the archive and the admin API.

Everything the routes need (settings, store, clock, secret, limits) is bound
here, in ``create_app``, never at import time, so tests and ``publisher run``
can build as many apps as they like, each with its own store and clock.
Route order matters: the archive's catch-all comes last.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from urllib.parse import urlsplit

from fastapi import FastAPI

from publisher import __version__
from publisher.config import Settings
from publisher.ops.scaleout import WorkerQueue
from publisher.store import Store
from publisher.web import (
    api,
    archive,
    console,
    feedlist,
    handlers,
    hooks,
    manage,
    opens,
    privacy,
    redirect,
    subscribe,
)
from publisher.web.api_models import error_responses
from publisher.web.context import Clock, Limits, WebContext, make_context
from publisher.web.hooks_sns import Fetcher
from publisher.web.middleware import GuardMiddleware
from publisher.web.pages import check_templates

_frozen = False


def freeze_startup_heap() -> None:
    """Once per process, when the first app is made: what is alive then leaves the GC's sight.

    A full collection walked all of it (modules, the app): 50-130 ms pauses on
    the event loop every second or two under load (the redirect's p99), ~5 ms
    once frozen. Only the first app's start-up is frozen, so a process making
    many apps (tests) keeps collecting the rest.
    """
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def _lifespan(ctx: WebContext) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Shutdown closes what the context opened."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        ctx.close()

    return lifespan


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    clock: Clock | None = None,
    limits: Limits | None = None,
    environ: Mapping[str, str] | None = None,
    fetch: Fetcher | None = None,
    workers: WorkerQueue | None = None,
) -> FastAPI:
    """The web app for ``settings``.

    ``store``: use this open store (else one is opened from ``database.url`` on
    first use and closed at shutdown); ``clock``: a callable returning an aware
    datetime (tests move time with it); ``limits``: rate and size limits;
    ``environ``: where to read the API token and webhook secret variables (default
    ``os.environ``); ``fetch``: how ``/hooks/ses`` GETs SNS certificates (tests serve their own);
    ``workers``: the scale-out queue a send started over the API hands batches to (None: in-process).
    """
    check_templates(settings)
    ctx = make_context(settings, store=store, clock=clock, limits=limits, environ=environ)

    root_path = urlsplit(settings.site.url).path.rstrip("/")
    app = FastAPI(
        title=f"{settings.site.title}: admin API",
        version=__version__,
        description="Subscriber look-up, removal and export; issues and sends. Bearer token required.",
        docs_url=None,  # the Swagger page loads script from a CDN, which our CSP forbids
        redoc_url=None,
        root_path=root_path,
        lifespan=_lifespan(ctx),
    )
    app.state.web = ctx
    app.state.send_workers = workers  # read by api_send.workers_of
    app.state.archive = archive.Archive(settings.paths.output)
    handlers.install(app)
    redirect.install(app)  # /r/<token>, click counting: inside the guard, before the router
    app.add_middleware(
        GuardMiddleware,
        max_body=ctx.limits.max_body,
        max_hook_body=ctx.limits.max_hook_body,
        max_upload_body=ctx.limits.max_upload_body,
        refuse=handlers.guard_refusal(app),
        https=settings.site.url.startswith("https://"),
    )
    app.include_router(api.router, responses=error_responses(413, 422))
    app.include_router(subscribe.router)
    app.include_router(manage.router)
    app.include_router(feedlist.router)
    app.include_router(privacy.router)  # /privacy: what analytics counts (issue 16)
    hooks.install(app, settings, environ=environ, fetch=fetch)
    app.include_router(opens.router)  # /o/<token>: the 1x1 image of analytics.opens (404 when off)
    app.include_router(archive.router)  # the catch-all for every path but /admin...
    console.install(app)  # /admin: the editors' console (after the archive: pages match sooner)
    freeze_startup_heap()
    return app
