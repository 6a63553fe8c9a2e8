"""The tables, as SQLAlchemy Core metadata: the single description of the database.

Alembic revisions under ``migrations/versions`` create these; the metadata is
what queries are written against. Status columns are plain strings with CHECK
constraints (portable across SQLite and PostgreSQL, readable in a SQL shell).
Later revisions add tables here and a new revision file beside the others.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Names for constraints so Alembic revisions (and SQLite batch migrations) can refer to them.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

SUBSCRIBER_STATUSES = ("pending", "confirmed", "unsubscribed", "bounced", "complained")
FREQUENCIES = ("instant", "daily", "weekly")
SEND_KINDS = ("issue", "digest")
SEND_STATUSES = ("scheduled", "running", "paused", "done")
# ``skipped``: planned, but the subscriber left (or was removed) before their turn came.
DELIVERY_STATUSES = ("pending", "sent", "failed", "skipped")

# BIGINT on PostgreSQL, INTEGER on SQLite (only INTEGER PRIMARY KEY is SQLite's rowid alias).
Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on both SQLite and PostgreSQL.

    SQLite has no time zone type and SQLAlchemy hands back naive values; storing
    UTC and re-attaching it on the way out keeps every datetime aware, as the
    models require, and makes comparisons in SQL consistent.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _one_of(column: str, values: tuple[str, ...]) -> CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=column)


subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False),  # normalised, lower-case
    Column("name", String(200), nullable=False, server_default=""),
    Column("status", String(16), nullable=False, server_default="confirmed"),
    Column("frequency", String(16), nullable=False, server_default="instant"),
    Column("topics", Text, nullable=False, server_default=""),  # ';'-joined, sorted
    Column("timezone", String(64), nullable=False, server_default="UTC"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("confirmed_at", UtcDateTime),
    Column("unsubscribed_at", UtcDateTime),
    UniqueConstraint("email"),
    _one_of("status", SUBSCRIBER_STATUSES),
    _one_of("frequency", FREQUENCIES),
    Index(None, "status", "frequency"),
    # The dashboard's weekly growth counts a range of each (``store.reports``), from the index alone.
    Index(None, "confirmed_at"),
    Index(None, "status", "unsubscribed_at"),
)

sends = Table(
    "sends",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("key", String(200), nullable=False),  # issue:<slug>, digest:<frequency>:<period>
    Column("issue_slug", String(200)),
    Column("status", String(16), nullable=False, server_default="scheduled"),
    Column("planned", Integer, nullable=False, server_default="0"),
    Column("meta", Text, nullable=False, server_default=""),  # free-form JSON for the caller
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    # A lease so two processes never drain one send at once; renewed by a heartbeat.
    Column("lease_owner", String(200)),
    Column("lease_expires_at", UtcDateTime),
    Column("heartbeat_at", UtcDateTime),
    UniqueConstraint("key"),
    _one_of("kind", SEND_KINDS),
    _one_of("status", SEND_STATUSES),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("send_id", Id, ForeignKey("sends.id", ondelete="CASCADE"), nullable=False),
    Column("subscriber_id", Id, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(320), nullable=False),  # the address as planned
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("message_id", String(200)),
    Column("sent_at", UtcDateTime),
    UniqueConstraint("send_id", "subscriber_id"),
    _one_of("status", DELIVERY_STATUSES),
    # Draining walks a send's pending rows in id order; status counts group by it too.
    Index(None, "send_id", "status", "id"),
    Index(None, "subscriber_id"),
)

FEEDBACK_KINDS = ("hard_bounce", "soft_bounce", "complaint", "unsubscribe", "delivered")
SUPPRESSION_REASONS = ("complained", "bounced", "unsubscribed", "erased", "manual")

# What came back after the 250, one row per fact: ``key`` makes applying a fact
# idempotent (a retried SMTP delivery, an IMAP message read twice, a replayed
# webhook); the row and its effect are written in one transaction.
inbound_events = Table(
    "inbound_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(300), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("source", String(16), nullable=False, server_default=""),
    Column("address", String(320)),  # as the report named it
    Column("delivery_id", Id),  # no foreign key: a delivery may be erased, the fact stays
    Column("send_id", Id),
    Column("subscriber_id", Id),
    Column("status", String(16), nullable=False, server_default=""),
    Column("detail", String(500), nullable=False, server_default=""),
    Column("outcome", String(32), nullable=False, server_default=""),
    Column("received_at", UtcDateTime, nullable=False),
    UniqueConstraint("key"),
    _one_of("kind", FEEDBACK_KINDS),
    Index(None, "send_id", "kind"),
    Index(None, "subscriber_id", "kind", "received_at"),
    Index(None, "outcome", "received_at"),  # bounces per week (``store.reports``)
)

# Addresses that must never be mailed. ``address_hash`` is a keyed hash of the
# normalised address (the key is derived from the site secret), so an erased
# subscriber's row keeps only the hash and still stops a re-import or a send.
suppressions = Table(
    "suppressions",
    metadata,
    Column("address_hash", String(64), primary_key=True),
    Column("address", String(320)),  # NULL once erased
    Column("reason", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    _one_of("reason", SUPPRESSION_REASONS),
    Index(None, "address"),
)

# The console's people (``publisher editors``), their signed-in sessions and what they did.
EDITOR_ROLES = ("editor", "viewer")

editors = Table(
    "editors",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False),  # normalised, lower-case
    Column("name", String(200), nullable=False, server_default=""),
    Column("role", String(16), nullable=False, server_default="viewer"),
    Column("password_hash", String(200), nullable=False),  # argon2id, PHC string
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("disabled_at", UtcDateTime),
    UniqueConstraint("email"),
    _one_of("role", EDITOR_ROLES),
)

# ``id`` is the SHA-256 (hex) of the cookie's random token: a copy of the table signs nobody in.
editor_sessions = Table(
    "editor_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("editor_id", Id, ForeignKey("editors.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),  # the absolute limit
    Index(None, "editor_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(320), nullable=False),  # an editor's address, or 'cli'
    Column("action", String(32), nullable=False),
    Column("target", String(320), nullable=False, server_default=""),
    Column("detail", String(500), nullable=False, server_default=""),
    Index(None, "at"),
)
