"""Queued issues, the scheduler's run lease, article arrivals and digest bookkeeping.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Written out by hand, like 0001. The tables are described for queries in
``publisher/store/queue.py`` and ``publisher/store/digests.py``:

- ``queued_issues``: one row per issue an editor (or an issue's ``send_at``)
  queued; the scheduler only wakes up, this table says what is due.
- ``scheduler_leases``: the single-instance guard of ``publisher run``
  (owner + heartbeat + expiry, so a killed process's lease runs out).
- ``article_arrivals``: a sequence number per article slug, given when the
  system first sees it; digests track this, not article dates, so a
  back-dated article is neither missed nor sent twice.
- ``digest_marks``: per subscriber, the highest arrival already digested.
- ``digest_variants`` / ``digest_recipients``: what each digest send holds
  per variant, and who got which digest period (unique per subscriber,
  frequency and period: a second trigger for the same period sends nothing).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from publisher.store.schema import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _check(table: str, column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    return sa.CheckConstraint(
        f"{column} IN ({', '.join(repr(v) for v in values)})", name=f"ck_{table}_{column}"
    )


def upgrade() -> None:
    op.create_table(
        "queued_issues",
        sa.Column("slug", sa.String(200), nullable=False),
        sa.Column("send_at", UtcDateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("source", sa.String(16), nullable=False, server_default="editor"),
        sa.Column("front_matter_at", UtcDateTime),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("slug", name="pk_queued_issues"),
        _check("queued_issues", "status", ("queued", "sending", "sent", "missed", "failed", "cancelled")),
        _check("queued_issues", "source", ("editor", "front_matter")),
    )
    op.create_index("ix_queued_issues_status_send_at", "queued_issues", ["status", "send_at"])
    op.create_table(
        "scheduler_leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("info", sa.Text, nullable=False, server_default=""),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("heartbeat_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_scheduler_leases"),
    )
    op.create_table(
        "article_arrivals",
        sa.Column("seq", Id, primary_key=True, autoincrement=True),
        sa.Column("slug", sa.String(200), nullable=False),
        sa.Column("article_id", sa.String(500), nullable=False, server_default=""),
        sa.Column("first_seen_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("slug", name="uq_article_arrivals_slug"),
    )
    op.create_table(
        "digest_marks",
        sa.Column(
            "subscriber_id",
            Id,
            sa.ForeignKey(
                "subscribers.id", ondelete="CASCADE", name="fk_digest_marks_subscriber_id_subscribers"
            ),
            nullable=False,
        ),
        sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("subscriber_id", name="pk_digest_marks"),
    )
    op.create_table(
        "digest_variants",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column(
            "send_id",
            Id,
            sa.ForeignKey("sends.id", ondelete="CASCADE", name="fk_digest_variants_send_id_sends"),
            nullable=False,
        ),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("articles", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("send_id", "fingerprint", name="uq_digest_variants_send_id_fingerprint"),
    )
    op.create_table(
        "digest_recipients",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column(
            "subscriber_id",
            Id,
            sa.ForeignKey(
                "subscribers.id", ondelete="CASCADE", name="fk_digest_recipients_subscriber_id_subscribers"
            ),
            nullable=False,
        ),
        sa.Column("frequency", sa.String(16), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column(
            "send_id",
            Id,
            sa.ForeignKey("sends.id", ondelete="CASCADE", name="fk_digest_recipients_send_id_sends"),
        ),
        sa.Column(
            "variant_id",
            Id,
            sa.ForeignKey(
                "digest_variants.id",
                ondelete="CASCADE",
                name="fk_digest_recipients_variant_id_digest_variants",
            ),
        ),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint(
            "subscriber_id",
            "frequency",
            "period",
            name="uq_digest_recipients_subscriber_id_frequency_period",
        ),
    )
    op.create_index("ix_digest_recipients_send_id", "digest_recipients", ["send_id"])
    op.create_index("ix_digest_recipients_frequency_period", "digest_recipients", ["frequency", "period"])


def downgrade() -> None:
    op.drop_table("digest_recipients")
    op.drop_table("digest_variants")
    op.drop_table("digest_marks")
    op.drop_table("article_arrivals")
    op.drop_table("scheduler_leases")
    op.drop_table("queued_issues")
