"""After the 250: inbound facts (bounces, complaints, unsubscribes) and the suppression list.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

- ``inbound_events``: one row per fact, unique by its key, written in the same
  transaction as its effect, so every report takes effect exactly once.
- ``suppressions``: addresses never to be mailed again (bounced, complained,
  unsubscribed, erased, added by hand), keyed by a keyed hash of the address.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from publisher.store.schema import Id, UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False, server_default=""),
        sa.Column("address", sa.String(320)),
        sa.Column("delivery_id", Id),
        sa.Column("send_id", Id),
        sa.Column("subscriber_id", Id),
        sa.Column("status", sa.String(16), nullable=False, server_default=""),
        sa.Column("detail", sa.String(500), nullable=False, server_default=""),
        sa.Column("outcome", sa.String(32), nullable=False, server_default=""),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("key", name="uq_inbound_events_key"),
        sa.CheckConstraint(
            "kind IN ('hard_bounce', 'soft_bounce', 'complaint', 'unsubscribe', 'delivered')",
            name="ck_inbound_events_kind",
        ),
    )
    op.create_index("ix_inbound_events_send_id_kind", "inbound_events", ["send_id", "kind"])
    op.create_index(
        "ix_inbound_events_subscriber_id_kind_received_at",
        "inbound_events",
        ["subscriber_id", "kind", "received_at"],
    )
    op.create_table(
        "suppressions",
        sa.Column("address_hash", sa.String(64), nullable=False),
        sa.Column("address", sa.String(320)),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("address_hash", name="pk_suppressions"),
        sa.CheckConstraint(
            "reason IN ('complained', 'bounced', 'unsubscribed', 'erased', 'manual')",
            name="ck_suppressions_reason",
        ),
    )
    op.create_index("ix_suppressions_address", "suppressions", ["address"])


def downgrade() -> None:
    op.drop_table("suppressions")
    op.drop_table("inbound_events")
