"""A subscriber's data export: their full row and every delivery planned for them.

The store's ``Subscriber`` model leaves out ``confirmed_at``/``unsubscribed_at``
and the ledger has no per-subscriber query, so this one read-only query lives
here until ``store`` offers it (``Subscribers.export(email)`` is the wanted
home; asked of the lead). It only reads, through ``store.read()``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from publisher.errors import PublisherError
from publisher.store import Store
from publisher.store.schema import deliveries as d
from publisher.store.schema import sends as s
from publisher.store.schema import subscribers as t
from publisher.store.values import normalise_email


def subscriber_export(store: Store, email: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(row as a dict, deliveries as dicts) or None if there is no such subscriber."""
    try:
        address = normalise_email(email)
    except PublisherError:
        return None
    with store.read() as conn:
        row = conn.execute(select(t).where(t.c.email == address)).first()
        if row is None:
            return None
        query = (
            select(
                s.c.key.label("send_key"),
                s.c.kind,
                s.c.issue_slug,
                d.c.email,
                d.c.status,
                d.c.attempts,
                d.c.last_error,
                d.c.message_id,
                d.c.sent_at,
            )
            .join(s, s.c.id == d.c.send_id)
            .where(d.c.subscriber_id == row.id)
            .order_by(d.c.id)
        )
        deliveries = [dict(r._mapping) for r in conn.execute(query)]
    record = dict(row._mapping)
    record["topics"] = [x for x in record["topics"].split(";") if x]
    return record, deliveries
