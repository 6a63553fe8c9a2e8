"""Opens: the 1x1 image counted when a publication turns opens on (issue 16).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08

- ``open_events``: append-only, one row per load of a send's image: which send, when,
  and its class (human | apple_mpp | gmail_proxy | proxy | scanner | prefetch).
  No address, no IP, no user agent.
- ``open_hours``: the rollup reports read, one row per send, hour and class.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from publisher.store.schema import Id, UtcDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_KINDS = "kind IN ('human', 'apple_mpp', 'gmail_proxy', 'proxy', 'scanner', 'prefetch')"


def upgrade() -> None:
    op.create_table(
        "open_events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("send_id", Id, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.CheckConstraint(_KINDS, name="ck_open_events_kind"),
        sa.ForeignKeyConstraint(
            ["send_id"], ["sends.id"], name="fk_open_events_send_id_sends", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_open_events_at", "open_events", ["at"])
    op.create_table(
        "open_hours",
        sa.Column("send_id", Id, nullable=False),
        sa.Column("hour", UtcDateTime, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("opens", sa.Integer, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("send_id", "hour", "kind", name="pk_open_hours"),
        sa.CheckConstraint(_KINDS, name="ck_open_hours_kind"),
        sa.ForeignKeyConstraint(
            ["send_id"], ["sends.id"], name="fk_open_hours_send_id_sends", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("open_hours")
    op.drop_table("open_events")
