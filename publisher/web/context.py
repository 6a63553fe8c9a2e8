"""What every route shares: settings, the store, the clock, the secret, the known topics.

One ``WebContext`` per app, kept on ``app.state.web``. The store is opened on
first use (not at import, not when the app object is built), so serving the
archive never waits on the database, and a store handed in by a test or by
``publisher run`` is used as is and never closed by us.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from publisher.config import Settings
from publisher.content import load_library
from publisher.content import signature as content_files_signature
from publisher.errors import PublisherError
from publisher.models import Library
from publisher.store import Store, open_store
from publisher.web.ratelimit import TokenBuckets

log = logging.getLogger("publisher.web")

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Limits:
    """Per-IP and per-address token buckets on subscribing, and the body size cap.

    Defaults let a person retry a typo a few times but stop a script from
    mail-bombing one address or flooding the table from one host.
    """

    ip_burst: int = 20
    ip_per_hour: float = 60.0
    address_burst: int = 3
    address_per_hour: float = 6.0
    max_body: int = 64 * 1024  # bytes of a form (or API) request body


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
    ip_buckets: TokenBuckets
    address_buckets: TokenBuckets
    stopping: threading.Event = field(default_factory=threading.Event)
    _store: Store | None = None
    _owns_store: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

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
    token = env.get(settings.web.api_token_env) or None
    limits = limits or Limits()
    return WebContext(
        settings=settings,
        clock=clock or system_clock,
        secret=settings.secret_key(),
        limits=limits,
        api_token=token,
        topics=KnownTopics(settings),
        ip_buckets=TokenBuckets(limits.ip_burst, limits.ip_per_hour),
        address_buckets=TokenBuckets(limits.address_burst, limits.address_per_hour),
        _store=store,
    )
