"""A sending-rate budget shared by every process on one PostgreSQL database.

The provider's limit (``email.rate``) is per account, not per process: with
several ``publisher worker`` processes each keeping its own local limiter, the
account would see N times the rate. So the budget lives in one row per limit:
``next_at`` is the moment the next message may go out. A process reserves a
block of ``n`` message slots with one ``INSERT ... ON CONFLICT DO UPDATE ...
RETURNING`` (atomic under the row lock), which moves ``next_at`` on by
``n x interval`` and tells the caller when its block starts. Slots are spaced
evenly, so no second (or hour) ever holds more than the limit, whichever
process sends. Times come from the database server's clock, the one clock
every machine shares.

SQLite needs none of this (one process sends); the table exists there too so
both databases have the same schema.
"""

from __future__ import annotations

from sqlalchemy import Column, PrimaryKeyConstraint, String, Table, text

from publisher.errors import StoreError
from publisher.store.database import Database
from publisher.store.schema import UtcDateTime, metadata

rate_limits = Table(
    "rate_limits",
    metadata,
    Column("name", String(200), nullable=False),
    Column("next_at", UtcDateTime, nullable=False),  # when the next message may go
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("name"),
)

# One statement: creates the row on first use, else pushes next_at on by the
# block's span from whichever is later, the budget's next slot or now.
_RESERVE = text(
    """
    INSERT INTO rate_limits AS r (name, next_at, updated_at)
    VALUES (:name, clock_timestamp() + make_interval(secs => :span), clock_timestamp())
    ON CONFLICT (name) DO UPDATE
        SET next_at = greatest(r.next_at, clock_timestamp()) + make_interval(secs => :span),
            updated_at = clock_timestamp()
    RETURNING extract(epoch FROM (r.next_at - make_interval(secs => :span) - clock_timestamp()))
    """
)


def reserve(store: Database, name: str, slots: int, interval: float) -> float:
    """Reserve ``slots`` sending slots ``interval`` seconds apart in budget ``name``.

    Returns how many seconds from now the first slot is (0 or more); the
    others follow every ``interval`` seconds. PostgreSQL only.
    """
    if store.dialect != "postgresql":
        raise StoreError(
            "a shared sending rate needs PostgreSQL",
            hint="with SQLite one process sends, and its own rate limiter is enough",
        )
    if slots < 1 or interval <= 0:
        raise ValueError(f"need at least one slot and a positive interval, got {slots} x {interval}")
    with store.write() as conn:
        delay = conn.execute(_RESERVE, {"name": name, "span": slots * interval}).scalar_one()
    return max(0.0, float(delay))
