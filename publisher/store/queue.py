"""Queued issues: what the scheduler sends when.

``queued_issues`` is the truth about what should be sent when: the scheduler
(APScheduler) only wakes the runner up, and after a restart everything is
re-derived from this table. Status moves queued -> sending -> sent (or
missed/failed, left for the editor; or cancelled). Transitions are
conditional updates, so two callers never both claim one issue.

The scheduler's run lease (``scheduler_leases``) is kept by ``store.leases``.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Index,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)

from publisher.errors import PublisherError
from publisher.store.records import from_row
from publisher.store.schema import UtcDateTime, metadata

if TYPE_CHECKING:
    from publisher.store.engine import Store

QUEUE_STATUSES = ("queued", "sending", "sent", "missed", "failed", "cancelled")
ACTIVE = ("queued", "sending", "missed", "failed")  # what `status` shows and editors act on
SOURCES = ("editor", "front_matter")

queued_issues = Table(
    "queued_issues",
    metadata,
    Column("slug", String(200), nullable=False),
    Column("send_at", UtcDateTime, nullable=False),
    Column("status", String(16), nullable=False, server_default="queued"),
    Column("source", String(16), nullable=False, server_default="editor"),
    # The front matter's send_at when we last applied it: a changed value re-queues,
    # an unchanged one leaves the editor's own choice (unqueue, another time) alone.
    Column("front_matter_at", UtcDateTime),
    Column("note", Text, nullable=False, server_default=""),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("slug"),
    CheckConstraint(f"status IN ({', '.join(repr(s) for s in QUEUE_STATUSES)})", name="status"),
    CheckConstraint(f"source IN ({', '.join(repr(s) for s in SOURCES)})", name="source"),
    Index(None, "status", "send_at"),
)

q = queued_issues


@dataclass(frozen=True)
class QueuedIssue:
    """One queued issue as stored (times aware, UTC)."""

    slug: str
    send_at: datetime
    status: str  # queued | sending | sent | missed | failed | cancelled
    created_at: datetime
    updated_at: datetime
    source: str = "editor"  # editor (command, admin API) | front_matter
    note: str = ""  # why it was missed or failed, for `publisher status`
    front_matter_at: datetime | None = None


def _issue(row: Any) -> QueuedIssue:
    return from_row(QueuedIssue, row)


class Queue:
    """The operations on ``queued_issues``: ``Queue(store)``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, slug: str) -> QueuedIssue | None:
        with self._store.read() as conn:
            row = conn.execute(select(q).where(q.c.slug == slug)).first()
        return _issue(row) if row else None

    def list(self, statuses: tuple[str, ...] | None = ACTIVE) -> list[QueuedIssue]:
        """Rows in ``statuses`` (None: all), soonest first."""
        query = select(q).order_by(q.c.send_at, q.c.slug)
        if statuses is not None:
            query = query.where(q.c.status.in_(statuses))
        with self._store.read() as conn:
            return [_issue(r) for r in conn.execute(query)]

    def put(self, slug: str, send_at: datetime, *, now: datetime, source: str = "editor") -> QueuedIssue:
        """Queue ``slug`` at ``send_at`` (or move it there): status queued, note cleared.

        Refuses to touch a row that is being sent or was sent: that cannot be undone.
        """
        values: dict[str, Any] = {
            "send_at": send_at,
            "status": "queued",
            "source": source,
            "note": "",
            "updated_at": now,
        }
        if source == "front_matter":
            values["front_matter_at"] = send_at
        with self._store.write() as conn:
            row = conn.execute(select(q).where(q.c.slug == slug)).first()
            if row is None:
                conn.execute(insert(q).values(slug=slug, created_at=now, **values))
            elif row.status in ("sending", "sent"):
                raise QueueStateError(slug, row.status)
            else:
                conn.execute(update(q).where(q.c.slug == slug).values(**values))
            out = conn.execute(select(q).where(q.c.slug == slug)).one()
        return _issue(out)

    def cancel(self, slug: str, *, now: datetime, note: str = "unqueued") -> bool:
        """queued/missed/failed -> cancelled; False if nothing was waiting. Refuses while sending."""
        with self._store.write() as conn:
            row = conn.execute(select(q.c.status).where(q.c.slug == slug)).first()
            if row is None or row.status in ("cancelled", "sent"):
                return False
            if row.status == "sending":
                raise QueueStateError(slug, "sending")
            conn.execute(
                update(q).where(q.c.slug == slug).values(status="cancelled", note=note, updated_at=now)
            )
        return True

    def claim(self, slug: str, *, now: datetime, from_status: tuple[str, ...] = ("queued",)) -> bool:
        """Move a row to ``sending`` if it is still in ``from_status``; True if this caller won it."""
        with self._store.write() as conn:
            return bool(
                conn.execute(
                    update(q)
                    .where(q.c.slug == slug, q.c.status.in_(from_status))
                    .values(status="sending", note="", updated_at=now)
                ).rowcount
            )

    def set_status(
        self, slug: str, status: str, *, now: datetime, note: str = "", expect: tuple[str, ...] | None = None
    ) -> bool:
        """Record an outcome (sent, missed, failed, or back to queued); only from ``expect`` if given."""
        query = update(q).where(q.c.slug == slug)
        if expect is not None:
            query = query.where(q.c.status.in_(expect))
        with self._store.write() as conn:
            return bool(conn.execute(query.values(status=status, note=note, updated_at=now)).rowcount)

    def due(self, now: datetime) -> builtins.list[QueuedIssue]:
        """Rows whose time has come (queued), plus sends interrupted mid-way (sending)."""
        query = (
            select(q)
            .where(((q.c.status == "queued") & (q.c.send_at <= now)) | (q.c.status == "sending"))
            .order_by(q.c.send_at, q.c.slug)
        )
        with self._store.read() as conn:
            return [_issue(r) for r in conn.execute(query)]

    def apply_front_matter(self, slug: str, send_at: datetime, *, now: datetime) -> QueuedIssue | None:
        """Queue from an issue's ``send_at`` when that value is new; the row if it changed, else None.

        A value already applied is left alone, so an editor's unqueue or re-queue
        sticks until the front matter itself changes.
        """
        with self._store.write() as conn:
            row = conn.execute(select(q).where(q.c.slug == slug)).first()
            values = {
                "send_at": send_at,
                "status": "queued",
                "source": "front_matter",
                "front_matter_at": send_at,
                "note": "",
                "updated_at": now,
            }
            if row is None:
                conn.execute(insert(q).values(slug=slug, created_at=now, **values))
            elif row.front_matter_at == send_at or row.status in ("sending", "sent"):
                return None
            else:
                conn.execute(update(q).where(q.c.slug == slug).values(**values))
            return _issue(conn.execute(select(q).where(q.c.slug == slug)).one())

    def drop_front_matter(self, slug: str, *, now: datetime, note: str) -> bool:
        """The issue's ``send_at`` is gone (or the issue is): cancel what it queued; True if cancelled."""
        with self._store.write() as conn:
            conn.execute(update(q).where(q.c.slug == slug).values(front_matter_at=None))
            return bool(
                conn.execute(
                    update(q)
                    .where(
                        q.c.slug == slug,
                        q.c.source == "front_matter",
                        q.c.status.in_(("queued", "missed")),
                    )
                    .values(status="cancelled", note=note, updated_at=now)
                ).rowcount
            )

    def front_matter_slugs(self) -> set[str]:
        """Slugs whose row still remembers a front-matter time (to notice when it disappears)."""
        with self._store.read() as conn:
            return set(conn.execute(select(q.c.slug).where(q.c.front_matter_at.is_not(None))).scalars())


class QueueStateError(PublisherError):
    """The queued issue is being sent or was sent: it can no longer be moved or unqueued."""

    def __init__(self, slug: str, status: str) -> None:
        word = "is being sent right now" if status == "sending" else "was already sent"
        super().__init__(
            f"{slug} {word}; it can no longer be queued or unqueued",
            hint="`publisher status` shows how far the send got",
        )
        self.status = status
