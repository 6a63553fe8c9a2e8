"""Scale-out: the shared sending-rate budget and, on PostgreSQL, procrastinate's job queue.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

- ``rate_limits``: one row per sending budget (see ``publisher/store/ratelimit.py``),
  so several worker processes keep to one provider limit together.
- On PostgreSQL, procrastinate's own schema (its jobs, workers and events
  tables and SQL functions), so ``publisher db upgrade`` (or any command, which
  migrates by itself) leaves the database ready for ``publisher worker`` and the
  planning transaction can enqueue jobs. It is the schema of the procrastinate
  version installed when this runs; a later procrastinate release brings its own
  SQL migrations (see docs/scale.md). A database where procrastinate's schema
  was already applied by hand is left as it is.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from publisher.store.schema import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("next_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_rate_limits"),
    )
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    if bind.exec_driver_sql("SELECT to_regclass('procrastinate_jobs')").scalar() is not None:
        return
    from procrastinate.schema import SchemaManager

    # Many statements with $$-quoted function bodies: psycopg runs them in one
    # simple-protocol call when no parameters are given, inside this transaction.
    driver = bind.connection.driver_connection
    assert driver is not None  # psycopg's connection, inside alembic's transaction
    driver.execute(SchemaManager.get_schema())


def downgrade() -> None:
    # procrastinate's schema is left in place: it may hold jobs, and other code may use it.
    op.drop_table("rate_limits")
