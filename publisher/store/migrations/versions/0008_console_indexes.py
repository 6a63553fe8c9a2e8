"""Indexes for the console's dashboard: weekly growth read from indexes, not table scans.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

``store.reports.weekly_growth`` counts, per week of the last twelve, the
subscribers confirmed (``confirmed_at``), those unsubscribed (``status`` =
'unsubscribed' and ``unsubscribed_at``) and the bounce facts
(``inbound_events.outcome`` and ``received_at``). With these indexes each is a
range of one index, read without the table: with 100,000 subscribers on SQLite,
17 ms, 2.8 ms and 4.3 ms become 5.3, 0.5 and under 0.1 ms (the store of
bench/console.py, whose facts have no bounced outcome: the scan is what cost).
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_subscribers_confirmed_at", "subscribers", ["confirmed_at"])
    op.create_index("ix_subscribers_status_unsubscribed_at", "subscribers", ["status", "unsubscribed_at"])
    op.create_index("ix_inbound_events_outcome_received_at", "inbound_events", ["outcome", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_inbound_events_outcome_received_at", table_name="inbound_events")
    op.drop_index("ix_subscribers_status_unsubscribed_at", table_name="subscribers")
    op.drop_index("ix_subscribers_confirmed_at", table_name="subscribers")
