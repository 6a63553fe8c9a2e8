"""Token buckets kept in the database, so web limits hold across processes and machines.

The web app's limits (sign-ups per client and per address, wrong API tokens
per client) must count every request, whichever ``publisher serve`` worker or
machine answers it; one bucket per process would let N workers allow N times
the burst. So on PostgreSQL each bucket is one row of ``web_buckets``, and a
``take`` is one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` (atomic
under the row lock, like ``store/ratelimit.py``): it refills the bucket for
the time elapsed, takes a token if one is there, and says whether it did.

Keys are stored as their SHA-256 (hex): a key may be a client's address or an
e-mail address, long or hostile, and the table needs neither in clear. Times
are the caller's clock (epoch seconds), the same clock the in-memory buckets
use, so tests move it the same way. A bucket left alone until it is full
again is equivalent to no row, so old rows are deleted now and then.

SQLite needs none of this (the embedded default is one process, and memory is
enough); the table exists there too so both databases have the same schema.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from sqlalchemy import Boolean, Column, Float, PrimaryKeyConstraint, String, Table, text

from publisher.errors import StoreError
from publisher.store.database import Database
from publisher.store.schema import metadata

web_buckets = Table(
    "web_buckets",
    metadata,
    Column("name", String(64), nullable=False),  # which limit: subscribe-ip, api-failures, ...
    Column("key", String(64), nullable=False),  # sha256 hex of the client or address
    Column("tokens", Float, nullable=False),
    Column("at", Float, nullable=False),  # epoch seconds of the last take
    Column("granted", Boolean, nullable=False),  # whether the last take got a token
    PrimaryKeyConstraint("name", "key"),
)

# The refill is least(burst, tokens + elapsed x rate); a token is taken when the
# refilled bucket holds one. ``at`` never moves back (clocks of two machines).
_REFILLED = "least(:burst, b.tokens + greatest(0, :now - b.at) * :rate)"
_TAKE = text(
    f"""
    INSERT INTO web_buckets AS b (name, key, tokens, at, granted)
    VALUES (:name, :key, :burst - 1, :now, :burst >= 1)
    ON CONFLICT (name, key) DO UPDATE
        SET tokens = CASE WHEN {_REFILLED} >= 1 THEN {_REFILLED} - 1 ELSE {_REFILLED} END,
            at = greatest(b.at, :now),
            granted = {_REFILLED} >= 1
    RETURNING granted
    """
)
_READ = text("SELECT tokens, at FROM web_buckets WHERE name = :name AND key = :key")
_PRUNE = text("DELETE FROM web_buckets WHERE name = :name AND at < :before")
PRUNE_EVERY = 1000  # takes between two deletions of full buckets


def hashed(key: str) -> str:
    """The stored form of a key: fixed length, nothing in clear (lone surrogates allowed)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def wait_seconds(tokens: float, rate: float) -> int:
    """Seconds until a bucket holding ``tokens`` has a whole token (0: it has one)."""
    if tokens >= 1.0:
        return 0
    if rate <= 0:
        return 3600
    return max(1, int((1.0 - tokens) / rate) + 1)


class StoreBuckets:
    """``take(key, now)`` / ``retry_after(key)`` like ``web.ratelimit.TokenBuckets``, in the database.

    ``store`` is a callable so the web app can keep opening its store on first use.
    """

    def __init__(self, name: str, burst: int, per_hour: float, store: Callable[[], Database]) -> None:
        self.name = name
        self.burst = float(burst)
        self.rate = per_hour / 3600.0
        self._store = store
        self._takes = 0

    def _db(self) -> Database:
        store = self._store()
        if store.dialect != "postgresql":
            raise StoreError(
                "shared web limits need PostgreSQL", hint="with SQLite one process serves: use TokenBuckets"
            )
        return store

    def take(self, key: str, now: float) -> bool:
        """Take a token for ``key`` if its bucket (refilled up to ``now``) has one."""
        params = {"name": self.name, "key": hashed(key), "burst": self.burst, "rate": self.rate, "now": now}
        with self._db().write() as conn:
            granted = bool(conn.execute(_TAKE, params).scalar_one())
            self._takes += 1
            if self._takes % PRUNE_EVERY == 0 and self.rate > 0:
                conn.execute(_PRUNE, {"name": self.name, "before": now - self.burst / self.rate})
        return granted

    def retry_after(self, key: str, now: float | None = None) -> int:
        """Seconds until ``key`` has a token again (0: it has one); refilled up to ``now`` if given."""
        with self._db().read() as conn:
            row = conn.execute(_READ, {"name": self.name, "key": hashed(key)}).first()
        if row is None:
            return 0
        tokens, at = float(row.tokens), float(row.at)
        if now is not None:
            tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        return wait_seconds(tokens, self.rate)
