"""Web limits shared by every web process: token buckets in the database.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

- ``web_buckets``: one row per limit and key (see ``publisher/store/buckets.py``),
  so sign-up and API-token limits hold across several ``publisher serve``
  workers and machines on one PostgreSQL database. On SQLite the table exists
  (the same schema on both databases) but stays unused: one process serves,
  and it keeps its buckets in memory.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_buckets",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("tokens", sa.Float, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("name", "key", name="pk_web_buckets"),
    )


def downgrade() -> None:
    op.drop_table("web_buckets")
