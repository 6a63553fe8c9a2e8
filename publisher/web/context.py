"""What every route shares: settings, the store, the clock, the secret, the known topics, the limits.

One ``WebContext`` per app, kept on ``app.state.web``. The store is opened on
first use (not at import, not when the app object is built), so serving the
archive never waits on the database, and a store handed in by a test or by
``publisher run`` is used as is and never closed by us. The rate limits live
in that database when it is PostgreSQL (several workers share them), else in
memory; deciding needs only the URL, so nothing connects early.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from publisher.config import Settings, check_secret
from publisher.content import load_library
from publisher.content import signature as content_files_signature
from publisher.errors import PublisherError
from publisher.models import Library
from publisher.store import Store, open_store
from publisher.web.ratelimit import Buckets, make_buckets

log = logging.getLogger("publisher.web")

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Limits:
    """Per-IP and per-address token buckets on subscribing, wrong API tokens, and the body size cap.

    Defaults let a person retry a typo a few times but stop a script from
    mail-bombing one address or flooding the table from one host; ten wrong
    API tokens from one client, then one more try every six minutes, make
    guessing a 32-byte token hopeless.
    """

    ip_burst: int = 20
    ip_per_hour: float = 60.0
    address_burst: int = 3
    address_per_hour: float = 6.0
    api_failure_burst: int = 10
    api_failures_per_hour: float = 10.0
    max_body: int = 64 * 1024  # bytes of a form (or API) request body
    max_hook_body: int = 1024 * 1024  # bytes of an ESP webhook call (SNS: up to 256 KB; SendGrid batches)
    max_upload_body: int = 20 * 1024 * 1024  # bytes of the console's CSV upload (about 300,000 rows)


class KnownTopics:
    """The site's tags (the topics one may choose), reloaded when ``paths.issues`` changes.

    Re-scanning costs a stat per file, so it is done at most every ``recheck``
    seconds; a content error keeps the last good list (a half-saved draft must
    not empty the subscribe form).
    """

    def __init__(self, settings: Settings, recheck: float = 2.0) -> None:
        self._settings = settings
        self._recheck = recheck
        self._lock = threading.Lock()
        self._checked = -1e9
        self._fingerprint: tuple[tuple[str, int, int], ...] | None = None
        self._topics: tuple[str, ...] = ()
        self._library = Library()

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self._recheck:
            return
        self._checked = now
        fingerprint = content_files_signature(self._settings.paths.issues)
        if fingerprint == self._fingerprint:
            return
        try:
            library = load_library(self._settings)
        except PublisherError as exc:
            log.warning("content has problems, keeping the last topics: %s", exc.message)
            self._fingerprint = fingerprint
            return
        self._fingerprint = fingerprint
        self._library = library
        self._topics = tuple(sorted({t.lower() for a in library.articles for t in a.tags}))

    @property
    def topics(self) -> tuple[str, ...]:
        with self._lock:
            self._refresh()
            return self._topics

    @property
    def library(self) -> Library:
        with self._lock:
            self._refresh()
            return self._library


@dataclass
class WebContext:
    settings: Settings
    clock: Clock
    secret: bytes
    limits: Limits
    api_token: str | None
    topics: KnownTopics
    shared_limits: bool = False  # keep the buckets in the database (PostgreSQL)
    stopping: threading.Event = field(default_factory=threading.Event)
    _store: Store | None = None
    _owns_store: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    ip_buckets: Buckets = field(init=False)
    address_buckets: Buckets = field(init=False)
    api_failures: Buckets = field(init=False)

    def __post_init__(self) -> None:
        def store() -> Store:
            return self.store

        lim, shared = self.limits, self.shared_limits
        self.ip_buckets = make_buckets(
            "subscribe-ip", lim.ip_burst, lim.ip_per_hour, shared=shared, store=store
        )
        self.address_buckets = make_buckets(
            "subscribe-address", lim.address_burst, lim.address_per_hour, shared=shared, store=store
        )
        self.api_failures = make_buckets(
            "api-failures", lim.api_failure_burst, lim.api_failures_per_hour, shared=shared, store=store
        )

    @property
    def store(self) -> Store:
        """The database, opened (and migrated) on first use."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = open_store(self.settings.database.url)
                    self._owns_store = True
        return self._store

    def now(self) -> datetime:
        return self.clock()

    def close(self) -> None:
        self.stopping.set()
        if self._owns_store and self._store is not None:
            self._store.close()
            self._store = None


def make_context(
    settings: Settings,
    *,
    store: Store | None,
    clock: Clock | None,
    limits: Limits | None,
    environ: Mapping[str, str] | None,
) -> WebContext:
    env = os.environ if environ is None else environ
    token = api_token(env, settings.web.api_token_env)
    return WebContext(
        settings=settings,
        clock=clock or system_clock,
        secret=settings.secret_key(),
        limits=limits or Limits(),
        api_token=token,
        topics=KnownTopics(settings),
        shared_limits=(store.dialect if store else _dialect(settings.database.url)) == "postgresql",
        _store=store,
    )


def api_token(environ: Mapping[str, str], name: str) -> str | None:
    """The admin API token, or None (API disabled); a short one stops the app from starting."""
    token = environ.get(name) or None
    if token is not None:
        check_secret(token.encode(), f"{name} (environment)", "the API token")
    return token


def _dialect(url: str) -> str:
    """The database kind ``url`` names, without connecting (an unusable URL fails later, on use)."""
    try:
        return make_url(url).get_backend_name()
    except ArgumentError:
        return ""
