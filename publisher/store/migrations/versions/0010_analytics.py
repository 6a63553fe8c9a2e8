"""Per-subscriber engagement: who clicked, only when a publication turns it on (issue 16).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08

- ``subscriber_clicks``: one row per click through a per-subscriber link (subscriber,
  link, when, class). Written only with ``analytics.per_subscriber``; erased when it is
  turned off and pruned after ``analytics.retention``.
- ``engagement``: per subscriber, the last human click and the sunsetting state
  (NULL, reengaged, paused); a paused subscriber is planned no issue or digest.
- ``analytics_state``: when per-subscriber counting was turned on (silence counts from then).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from publisher.store.schema import Id, UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscriber_clicks",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("subscriber_id", Id, nullable=False),
        sa.Column("link_id", Id, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.CheckConstraint("kind IN ('human', 'scanner', 'prefetch')", name="ck_subscriber_clicks_kind"),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name="fk_subscriber_clicks_subscriber_id_subscribers",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["click_links.id"],
            name="fk_subscriber_clicks_link_id_click_links",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_subscriber_clicks_subscriber_id_at", "subscriber_clicks", ["subscriber_id", "at"])
    op.create_index("ix_subscriber_clicks_at", "subscriber_clicks", ["at"])
    op.create_table(
        "engagement",
        sa.Column("subscriber_id", Id, nullable=False),
        sa.Column("last_click_at", UtcDateTime),
        sa.Column("human_clicks", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sunset", sa.String(16)),
        sa.Column("sunset_at", UtcDateTime),
        sa.PrimaryKeyConstraint("subscriber_id", name="pk_engagement"),
        sa.CheckConstraint("sunset IN ('reengaged', 'paused')", name="ck_engagement_sunset"),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name="fk_engagement_subscriber_id_subscribers",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_engagement_sunset_sunset_at", "engagement", ["sunset", "sunset_at"])
    op.create_table(
        "analytics_state",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_analytics_state"),
    )


def downgrade() -> None:
    op.drop_table("analytics_state")
    op.drop_index("ix_engagement_sunset_sunset_at", table_name="engagement")
    op.drop_table("engagement")
    op.drop_index("ix_subscriber_clicks_at", table_name="subscriber_clicks")
    op.drop_index("ix_subscriber_clicks_subscriber_id_at", table_name="subscriber_clicks")
    op.drop_table("subscriber_clicks")
