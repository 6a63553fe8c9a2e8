"""Click counting: the links each send recorded, raw click events and hourly rollups.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

- ``click_links``: link ``link_no`` of the send keyed ``send_key`` goes to ``url``; the
  only place a redirect target comes from (a token names a row, never a URL).
- ``click_events``: append-only, one row a click: which link, when, and its class
  (human | scanner | prefetch). No address, no IP, no user agent.
- ``click_hours``: the rollup reports read, one row per link, hour and class.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from publisher.store.schema import Id, UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_KINDS = "kind IN ('human', 'scanner', 'prefetch')"


def upgrade() -> None:
    op.create_table(
        "click_links",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("send_key", sa.String(200), nullable=False),
        sa.Column("link_no", sa.Integer, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("send_key", "link_no", name="uq_click_links_send_key_link_no"),
    )
    op.create_table(
        "click_events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("link_id", Id, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.CheckConstraint(_KINDS, name="ck_click_events_kind"),
        sa.ForeignKeyConstraint(
            ["link_id"], ["click_links.id"], name="fk_click_events_link_id_click_links", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_click_events_at", "click_events", ["at"])
    op.create_table(
        "click_hours",
        sa.Column("link_id", Id, nullable=False),
        sa.Column("hour", UtcDateTime, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("clicks", sa.Integer, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("link_id", "hour", "kind", name="pk_click_hours"),
        sa.CheckConstraint(_KINDS, name="ck_click_hours_kind"),
        sa.ForeignKeyConstraint(
            ["link_id"], ["click_links.id"], name="fk_click_hours_link_id_click_links", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("click_hours")
    op.drop_table("click_events")
    op.drop_table("click_links")
