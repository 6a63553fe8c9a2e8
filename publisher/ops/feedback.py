"""The feedback loop's one entry: every edge that hears back (inbound SMTP/LMTP, IMAP, ESP
webhooks) hands its facts to ``apply_feedback``; the CLI's ``suppress`` uses the rest.

The suppression list is keyed by a keyed hash of the address (HMAC-SHA256 under a
key derived from the site secret), so an erased subscriber can stay unmailable
without the list keeping their address.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

from publisher.config import Settings
from publisher.models import Feedback
from publisher.ops.drain import envelope_domain as bounce_domain
from publisher.store import Store
from publisher.store.feedback import BouncePolicy, FeedbackReport, Hasher

__all__ = [
    "BOUNCE_RATE_LIMIT",
    "COMPLAINT_RATE_LIMIT",
    "FeedbackReport",
    "apply_feedback",
    "bounce_domain",
    "erase_subscriber",
    "hasher_for",
    "policy_for",
    "send_warnings",
    "suppress",
    "unsuppress",
]


@lru_cache(maxsize=8)
def _suppression_key(secret: bytes) -> bytes:
    return hmac.new(secret, b"publisher.suppressions.v1", hashlib.sha256).digest()


def hasher_for(secret: bytes) -> Hasher:
    """normalised address -> the suppression list's key for it (hex)."""
    key = _suppression_key(secret)
    return lambda address: hmac.new(key, address.encode("utf-8"), hashlib.sha256).hexdigest()


def policy_for(settings: Settings) -> BouncePolicy:
    return BouncePolicy(soft_limit=settings.bounces.soft_limit, soft_window=settings.bounces.soft_window)


def apply_feedback(
    store: Store, settings: Settings, items: Sequence[Feedback], *, now: datetime
) -> FeedbackReport:
    """Apply facts exactly once each (by key), in one transaction: acknowledge the source after."""
    if not items:
        return FeedbackReport()
    return store.feedback.apply(
        items, now=now, policy=policy_for(settings), hasher=hasher_for(settings.secret_key())
    )


def suppress(store: Store, settings: Settings, address: str, *, reason: str, now: datetime) -> None:
    """Put ``address`` on the suppression list by hand (``publisher suppress add``)."""
    store.feedback.suppress(address, reason, now=now, hasher=hasher_for(settings.secret_key()))


def unsuppress(store: Store, settings: Settings, address: str) -> bool:
    """Take ``address`` off the list (it may be mailed again once it subscribes); False if absent."""
    return store.feedback.unsuppress(address, hasher=hasher_for(settings.secret_key()))


def erase_subscriber(store: Store, settings: Settings, address: str, *, now: datetime) -> bool:
    """A data-erasure request: the subscriber is forgotten, their address kept only as a keyed hash."""
    return store.feedback.erase(address, now=now, hasher=hasher_for(settings.secret_key()))


# Gmail rejects senders whose complaint rate passes 0.3 %; warn well before that.
COMPLAINT_RATE_LIMIT = 0.001
BOUNCE_RATE_LIMIT = 0.02


def send_warnings(key: str, sent: int, outcomes: dict[str, int]) -> list[str]:
    """What ``publisher status`` warns about one send: complaint rate over 0.1 %, bounce rate over 2 %."""
    if sent <= 0:
        return []
    warnings = []
    complaints = outcomes.get("complaint", 0)
    bounces = outcomes.get("hard_bounce", 0) + outcomes.get("soft_bounce", 0)
    if complaints / sent > COMPLAINT_RATE_LIMIT:
        warnings.append(
            f"{key}: {complaints} complaint(s) for {sent} sent ({complaints / sent:.2%}); mailbox providers "
            "start refusing mail near 0.3 % - check the consent of this list and the content"
        )
    if bounces / sent > BOUNCE_RATE_LIMIT:
        warnings.append(
            f"{key}: {bounces} bounce(s) for {sent} sent ({bounces / sent:.2%}); over 2 % - clean the list "
            "(old addresses?) before the next send"
        )
    return warnings
