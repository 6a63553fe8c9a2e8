"""Subject tests: the recorded split and the winner of an issue's subject test (issue 17).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08

- ``subject_tests``: one row per issue tested: its subjects, sample, wait, the seed of
  the split, when the winner is due and (once decided) the winner and its clicks.
- ``subject_test_members``: the sample, one row per subscriber with the subject they get.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from publisher.store.schema import Id, UtcDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subject_tests",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("issue_slug", sa.String(200), nullable=False),
        sa.Column("subjects", sa.Text, nullable=False),
        sa.Column("sample_bp", sa.Integer, nullable=False),
        sa.Column("wait_seconds", sa.Integer, nullable=False),
        sa.Column("seed", sa.String(64), nullable=False),
        sa.Column("population", sa.Integer, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("decide_at", UtcDateTime, nullable=False),
        sa.Column("winner", sa.Integer),
        sa.Column("clicks", sa.Text, nullable=False, server_default=""),
        sa.Column("decided_at", UtcDateTime),
        sa.UniqueConstraint("issue_slug", name="uq_subject_tests_issue_slug"),
    )
    op.create_table(
        "subject_test_members",
        sa.Column("test_id", Id, nullable=False),
        sa.Column("subscriber_id", Id, nullable=False),
        sa.Column("variant", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("test_id", "subscriber_id", name="pk_subject_test_members"),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["subject_tests.id"],
            name="fk_subject_test_members_test_id_subject_tests",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name="fk_subject_test_members_subscriber_id_subscribers",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_subject_test_members_test_id_variant", "subject_test_members", ["test_id", "variant"])


def downgrade() -> None:
    op.drop_table("subject_test_members")
    op.drop_table("subject_tests")
