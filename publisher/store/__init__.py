"""Persistence: subscribers, sends and the deliveries ledger (SQLite or PostgreSQL).

With ``deliver`` this is the only code that touches the outside world; it
knows nothing of SMTP. Open it with :func:`open_store`, which also migrates.
"""

from publisher.store.digests import DigestState
from publisher.store.engine import Store, open_store, upgrade
from publisher.store.leases import Leases
from publisher.store.ledger import Audience, Outcomes, PendingDelivery, SendBusyError, SendCounts, SendInfo
from publisher.store.queue import Queue, QueuedIssue
from publisher.store.subscribers import Filter, SubscriberExistsError

__all__ = [
    "Audience",
    "DigestState",
    "Filter",
    "Leases",
    "Outcomes",
    "PendingDelivery",
    "Queue",
    "QueuedIssue",
    "SendBusyError",
    "SendCounts",
    "SendInfo",
    "Store",
    "SubscriberExistsError",
    "open_store",
    "upgrade",
]
