"""Subscribers, sends and the deliveries ledger.

Revision ID: 0001
Revises:
Create Date: 2024-01-01

Written out by hand (not ``metadata.create_all``) so this revision stays what it
was when later revisions change ``schema.py``. To add a table: add it to
``schema.py`` and a file ``000N_<what>.py`` here with ``down_revision`` set to
the previous head.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from publisher.store.schema import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _check(column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    return sa.CheckConstraint(f"{column} IN ({', '.join(repr(v) for v in values)})", name=column)


def upgrade() -> None:
    op.create_table(
        "subscribers",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("status", sa.String(16), nullable=False, server_default="confirmed"),
        sa.Column("frequency", sa.String(16), nullable=False, server_default="instant"),
        sa.Column("topics", sa.Text, nullable=False, server_default=""),
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("confirmed_at", UtcDateTime),
        sa.Column("unsubscribed_at", UtcDateTime),
        sa.UniqueConstraint("email", name="uq_subscribers_email"),
        _check("status", ("pending", "confirmed", "unsubscribed", "bounced", "complained")),
        _check("frequency", ("instant", "daily", "weekly")),
    )
    op.create_index("ix_subscribers_status_frequency", "subscribers", ["status", "frequency"])
    op.create_table(
        "sends",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("issue_slug", sa.String(200)),
        sa.Column("status", sa.String(16), nullable=False, server_default="scheduled"),
        sa.Column("planned", sa.Integer, nullable=False, server_default="0"),
        sa.Column("meta", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("started_at", UtcDateTime),
        sa.Column("finished_at", UtcDateTime),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_expires_at", UtcDateTime),
        sa.Column("heartbeat_at", UtcDateTime),
        sa.UniqueConstraint("key", name="uq_sends_key"),
        _check("kind", ("issue", "digest")),
        _check("status", ("scheduled", "running", "paused", "done")),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column(
            "send_id",
            Id,
            sa.ForeignKey("sends.id", ondelete="CASCADE", name="fk_deliveries_send_id_sends"),
            nullable=False,
        ),
        sa.Column(
            "subscriber_id",
            Id,
            sa.ForeignKey(
                "subscribers.id", ondelete="CASCADE", name="fk_deliveries_subscriber_id_subscribers"
            ),
            nullable=False,
        ),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("message_id", sa.String(200)),
        sa.Column("sent_at", UtcDateTime),
        sa.UniqueConstraint("send_id", "subscriber_id", name="uq_deliveries_send_id_subscriber_id"),
        _check("status", ("pending", "sent", "failed", "skipped")),
    )
    op.create_index("ix_deliveries_send_id_status_id", "deliveries", ["send_id", "status", "id"])
    op.create_index("ix_deliveries_subscriber_id", "deliveries", ["subscriber_id"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("sends")
    op.drop_table("subscribers")
