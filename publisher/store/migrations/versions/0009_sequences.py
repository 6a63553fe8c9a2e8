"""Sequences: who entered which sequence when, and how far they got (issue 17).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08

- ``sequence_members``: one row per (subscriber, sequence): when they entered, the
  number of the last step planned for them, when, and when they left.
- ``sequence_steps``: when each step file was first seen (a step added later reaches
  only members who had not passed its point by then).
The mail itself is in ``sends``/``deliveries``, one send per step file.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from publisher.store.schema import Id, UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sequence_members",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("subscriber_id", Id, nullable=False),
        sa.Column("sequence", sa.String(100), nullable=False),
        sa.Column("entered_at", UtcDateTime, nullable=False),
        sa.Column("progress", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_at", UtcDateTime),
        sa.Column("ended_at", UtcDateTime),
        sa.UniqueConstraint("subscriber_id", "sequence", name="uq_sequence_members_subscriber_id_sequence"),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name="fk_sequence_members_subscriber_id_subscribers",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_sequence_members_sequence_progress_entered_at",
        "sequence_members",
        ["sequence", "progress", "entered_at"],
    )
    op.create_table(
        "sequence_steps",
        sa.Column("sequence", sa.String(100), nullable=False),
        sa.Column("slug", sa.String(200), nullable=False),
        sa.Column("first_seen_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("sequence", "slug", name="pk_sequence_steps"),
    )


def downgrade() -> None:
    op.drop_table("sequence_steps")
    op.drop_index("ix_sequence_members_sequence_progress_entered_at", "sequence_members")
    op.drop_table("sequence_members")
