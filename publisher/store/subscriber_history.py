"""What happened to one subscriber, for the console's subscriber page.

Three sources, each read as it is stored: the ledger's deliveries (which sends
they were in, and how each went), the feedback events matched to them
(bounces, complaints, unsubscribes, with what they did), and the audit log's
lines about their address (status changes and mails sent from the console, which name the subscriber by id).
Status changes made elsewhere leave only the row's timestamps
(``created_at``, ``confirmed_at``, ``unsubscribed_at``), which the page shows.
Each list is capped: a subscriber of ten years has thousands of deliveries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from publisher.store.database import Database
from publisher.store.schema import audit_log as a
from publisher.store.schema import deliveries as d
from publisher.store.schema import inbound_events as e
from publisher.store.schema import sends as s

SHOWN = 100  # newest rows of each kind


@dataclass(frozen=True)
class DeliveryLine:
    send_key: str
    issue_slug: str | None
    status: str
    attempts: int
    last_error: str | None
    sent_at: datetime | None


@dataclass(frozen=True)
class EventLine:
    kind: str
    source: str
    outcome: str
    detail: str
    received_at: datetime


@dataclass(frozen=True)
class AuditLine:
    at: datetime
    actor: str
    action: str
    detail: str


@dataclass(frozen=True)
class History:
    deliveries: list[DeliveryLine]
    events: list[EventLine]
    audit: list[AuditLine]


def history(store: Database, subscriber_id: int, target: str, *, limit: int = SHOWN) -> History:
    """The newest ``limit`` deliveries and feedback events of one subscriber, audit lines on ``target``."""
    sends = (
        select(s.c.key, s.c.issue_slug, d.c.status, d.c.attempts, d.c.last_error, d.c.sent_at)
        .join(s, s.c.id == d.c.send_id)
        .where(d.c.subscriber_id == subscriber_id)
        .order_by(d.c.id.desc())
        .limit(limit)
    )
    events = (
        select(e.c.kind, e.c.source, e.c.outcome, e.c.detail, e.c.received_at)
        .where(e.c.subscriber_id == subscriber_id)
        .order_by(e.c.id.desc())
        .limit(limit)
    )
    audit = (
        select(a.c.at, a.c.actor, a.c.action, a.c.detail)
        .where(a.c.target == target)
        .order_by(a.c.id.desc())
        .limit(limit)
    )
    with store.read() as conn:
        return History(
            deliveries=[DeliveryLine(r.key, *r[1:]) for r in conn.execute(sends)],
            events=[EventLine(*r) for r in conn.execute(events)],
            audit=[AuditLine(*r) for r in conn.execute(audit)],
        )
