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

# Per-subscriber engagement (issue 16), written only with ``analytics.per_subscriber`` on;
# turning it off erases what names a clicker (``store.engagement.forget_readers``).
CLICK_KINDS = ("human", "scanner", "prefetch")
SUNSET_STATES = ("reengaged", "paused")

# One row per click through a per-subscriber link: who, which link, when, what kind of click.
subscriber_clicks = Table(
    "subscriber_clicks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("subscriber_id", Id, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("link_id", Id, ForeignKey("click_links.id", ondelete="CASCADE"), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", String(16), nullable=False),
    _one_of("kind", CLICK_KINDS),
    Index(None, "subscriber_id", "at"),
    Index(None, "at"),  # pruning after analytics.retention
)

# One row per subscriber who clicked or is being sunset: their last human click, and
# ``sunset`` NULL (active) | reengaged (asked at sunset_at) | paused (since sunset_at);
# an active row's sunset_at is when they last resumed (silence counts from then).
engagement = Table(
    "engagement",
    metadata,
    Column("subscriber_id", Id, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("last_click_at", UtcDateTime),
    Column("human_clicks", Integer, nullable=False, server_default="0"),
    Column("sunset", String(16)),
    Column("sunset_at", UtcDateTime),
    _one_of("sunset", SUNSET_STATES),
    Index(None, "sunset", "sunset_at"),
)

# Facts about the analytics themselves, e.g. ``per_subscriber_since``: sunsetting counts
# silence only from the moment per-subscriber counting was on.
analytics_state = Table(
    "analytics_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("at", UtcDateTime, nullable=False),
)

# Onboarding sequences (issue 17). A reader's place in one sequence: ``progress`` is the NN of
# the last step planned for them (0: none yet), ``last_at`` when it was planned (at most one
# sequence mail a local day, across sequences), ``ended_at`` set once they left the list.
sequence_members = Table(
    "sequence_members",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("subscriber_id", Id, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("sequence", String(100), nullable=False),
    Column("entered_at", UtcDateTime, nullable=False),
    Column("progress", Integer, nullable=False, server_default="0"),
    Column("last_at", UtcDateTime),
    Column("ended_at", UtcDateTime),
    UniqueConstraint("subscriber_id", "sequence"),
    # A round walks one step's candidates: members of a sequence short of it, by when they entered.
    Index(None, "sequence", "progress", "entered_at"),
)

# When each step file was first seen: a step added later reaches only those not yet past its point.
sequence_steps = Table(
    "sequence_steps",
    metadata,
    Column("sequence", String(100), primary_key=True),
    Column("slug", String(200), primary_key=True),
    Column("first_seen_at", UtcDateTime, nullable=False),
)

# Subject tests (issue 17): one row per issue tested. ``seed`` and the members below are the
# recorded split (a restart reads them, never re-draws); ``winner`` (an index into
# ``subjects``, a JSON list) is written once, with the human clicks it was decided on.
subject_tests = Table(
    "subject_tests",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("issue_slug", String(200), nullable=False),
    Column("subjects", Text, nullable=False),
    Column("sample_bp", Integer, nullable=False),  # the sample in basis points (20% = 2000)
    Column("wait_seconds", Integer, nullable=False),
    Column("seed", String(64), nullable=False),
    Column("population", Integer, nullable=False),  # subscribers the sample was drawn from
    Column("created_at", UtcDateTime, nullable=False),
    Column("decide_at", UtcDateTime, nullable=False),
    Column("winner", Integer),
    Column("clicks", Text, nullable=False, server_default=""),  # JSON: human clicks per subject
    Column("decided_at", UtcDateTime),
    UniqueConstraint("issue_slug"),
)

# Who is in the sample, and which subject they get (0-based): never in the rest's send.
subject_test_members = Table(
    "subject_test_members",
    metadata,
    Column("test_id", Id, ForeignKey("subject_tests.id", ondelete="CASCADE"), primary_key=True),
    Column("subscriber_id", Id, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("variant", Integer, nullable=False),
    Index(None, "test_id", "variant"),
)
