"""The ledger's records: what a send, a plan, a pending row and a batch of results look like.

Plain frozen dataclasses (and the one error of the ledger), kept apart from the
queries in ``ledger`` so other modules can name them without pulling SQL in.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, exists, select

from publisher.errors import PublisherError
from publisher.store.schema import deliveries as dl
from publisher.store.schema import engagement as eng
from publisher.store.schema import sends as sn
from publisher.store.schema import subscribers as sub
from publisher.store.schema import suppressions as sup

R = TypeVar("R")


class SendBusyError(PublisherError):
    """Another process holds the lease on this send."""

    def __init__(self, key: str, owner: str, expires_at: datetime | None) -> None:
        until = f" (its lease runs to {expires_at:%Y-%m-%d %H:%M:%S} UTC)" if expires_at else ""
        super().__init__(
            f"{key} is being sent by another process: {owner}{until}",
            hint="wait for it to finish; if that process is gone, run the command again once the lease ends",
        )
        self.owner = owner


# A subscriber whose address is on the suppression list is never planned, whatever its row says.
SUPPRESSED = exists(select(sup.c.address_hash).where(sup.c.address == sub.c.email))
NOT_SUPPRESSED = ~SUPPRESSED
# Paused by sunsetting (issue 16, ``store.engagement``): no issue or digest until a click
# or their preferences page says otherwise.
NOT_PAUSED = ~exists(
    select(eng.c.subscriber_id).where(eng.c.subscriber_id == sub.c.id, eng.c.sunset == "paused")
)


def unfinished_sends(prefix: str) -> Select[Any]:
    """Sends keyed ``prefix…`` with rows pending (planned, not yet drained, or interrupted), oldest first.

    The welcome mail and the sequence steps are planned a few readers at a time and
    drained by the next tick: this is how each finds what is left to send.
    """
    pending = exists().where(and_(dl.c.send_id == sn.c.id, dl.c.status == "pending"))
    return select(sn).where(sn.c.key.startswith(prefix, autoescape=True), pending).order_by(sn.c.id)


@dataclass(frozen=True)
class Audience:
    """Who a plan covers: subscribers in these statuses and frequencies (and ids, if given).

    An address on the suppression list is never in it, whatever its row says.
    """

    statuses: tuple[str, ...] = ("confirmed",)
    frequencies: tuple[str, ...] | None = ("instant",)
    subscriber_ids: tuple[int, ...] | None = None

    def where(self) -> list[Any]:
        clauses: list[Any] = [
            sub.c.status.in_(self.statuses),
            NOT_SUPPRESSED,
            NOT_PAUSED,
        ]
        if self.frequencies is not None:
            clauses.append(sub.c.frequency.in_(self.frequencies))
        if self.subscriber_ids is not None:
            clauses.append(sub.c.id.in_(self.subscriber_ids))
        return clauses


@dataclass(frozen=True)
class SendInfo:
    id: int
    kind: str
    key: str
    issue_slug: str | None
    status: str
    planned: int
    meta: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_owner: str | None
    lease_expires_at: datetime | None


@dataclass(frozen=True)
class SendCounts:
    planned: int = 0
    pending: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class Plan:
    send: SendInfo
    created: bool  # False: the key was planned before and nothing was written


@dataclass(frozen=True)
class PendingDelivery:
    """A row to send, with what personalisation needs from the subscriber now."""

    id: int
    subscriber_id: int
    email: str
    attempts: int
    name: str
    subscriber_status: str
    frequency: str
    topics: str
    timezone: str


@dataclass
class Outcomes:
    """Results of one batch of attempts, written to the ledger in one transaction."""

    sent: list[tuple[int, str]]  # (delivery id, Message-ID)
    failed: list[tuple[int, str]]  # (delivery id, reason)
    deferred: list[tuple[int, str]]  # temporary failure: stays pending, attempts + 1
    skipped: list[tuple[int, str]]
    bounced_subscribers: list[int]

    def __init__(self) -> None:
        self.sent, self.failed, self.deferred, self.skipped, self.bounced_subscribers = [], [], [], [], []

    def __len__(self) -> int:
        return len(self.sent) + len(self.failed) + len(self.deferred) + len(self.skipped)


def from_row(record: type[R], row: Any) -> R:
    """A record dataclass from a result row that has (at least) a column for each of its fields."""
    return record(**{f.name: getattr(row, f.name) for f in fields(record)})  # type: ignore[arg-type]


def _info(row: Any) -> SendInfo:
    return from_row(SendInfo, row)
