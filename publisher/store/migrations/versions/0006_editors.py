"""The console's accounts: editors, their sessions, and the audit log.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

- ``editors``: one row per person who may sign in to ``/admin`` (argon2 hash, role).
- ``editor_sessions``: signed-in browsers, keyed by the SHA-256 of the cookie's token
  (never the token itself), with an idle and an absolute expiry.
- ``audit_log``: who did what, when (sign-ins, failed sign-ins, account changes).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from publisher.store.schema import Id, UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "editors",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("role", sa.String(16), nullable=False, server_default="viewer"),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("disabled_at", UtcDateTime),
        sa.UniqueConstraint("email", name="uq_editors_email"),
        sa.CheckConstraint("role IN ('editor', 'viewer')", name="ck_editors_role"),
    )
    op.create_table(
        "editor_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("editor_id", Id, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("last_seen_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_editor_sessions"),
        sa.ForeignKeyConstraint(
            ["editor_id"],
            ["editors.id"],
            name="fk_editor_sessions_editor_id_editors",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_editor_sessions_editor_id", "editor_sessions", ["editor_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(320), nullable=False, server_default=""),
        sa.Column("detail", sa.String(500), nullable=False, server_default=""),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("editor_sessions")
    op.drop_table("editors")
