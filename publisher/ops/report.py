"""One send's report: what was delivered, what came back, and what readers clicked.

Computed here once for ``publisher report`` and ``GET /api/sends/{id}/report``
so both say the same. Clicks come from the hourly rollups (``store.clicks``),
never the raw events, so a report's cost does not grow with the clicks.
Without per-subscriber tokens nothing stored says *who* clicked, so "human
clicks" counts clicks, not people: a reader who clicks twice counts twice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from publisher.models import FeedbackKind
from publisher.ops.clicks import HUMAN
from publisher.ops.opens import OpenReport, open_report
from publisher.store import Store

TOP_LINKS = 5
SPARK = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 48  # columns at most: a longer send's hours are summed into wider buckets
CLICKS_NOTE = (
    "Clicks are counted per send and link, not per person: a reader who clicks twice counts twice. "
    "Machine clicks (link scanners, HEAD requests, clicks within seconds of the send) are left out."
)


@dataclass(frozen=True)
class LinkReport:
    link_no: int
    url: str
    human_clicks: int
    machine_clicks: int


@dataclass(frozen=True)
class SendReport:
    send_id: int
    key: str
    kind: str
    status: str
    created_at: datetime
    delivered: int  # accepted by the receiving server (the ledger's ``sent``)
    failed: int
    bounced: int
    complained: int
    unsubscribed: int
    human_clicks: int
    machine_clicks: dict[str, int]  # scanner | prefetch
    click_rate: float | None  # human clicks per delivered message
    top_links: list[LinkReport]
    clicks_by_hour: list[tuple[datetime, int]]  # human clicks, hours with any
    sparkline: str
    note: str = CLICKS_NOTE
    links: int = field(default=0)  # links the send recorded
    opens: OpenReport | None = None  # only with analytics.opens on

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-ready values (datetimes as ISO 8601)."""
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["clicks_by_hour"] = [{"hour": h.isoformat(), "clicks": n} for h, n in self.clicks_by_hour]
        if self.opens is None:
            del data["opens"]  # opens off: the report says nothing about them
        else:
            data["opens"] = self.opens.as_json()
        return data


def send_report(store: Store, send_id: int, *, opens: bool = False) -> SendReport | None:
    """The report of send ``send_id``, or None when there is no such send (``opens``: analytics.opens)."""
    info = store.ledger.get_send_by_id(send_id)
    if info is None:
        return None
    counts = store.ledger.counts(send_id)
    outcomes = store.feedback.outcomes_by_send(send_id)
    links = store.clicks.by_link(info.key)
    hours = store.clicks.by_hour(info.key, HUMAN)
    human = sum(link.by_kind.get(HUMAN, 0) for link in links)
    machine: dict[str, int] = {}
    for link in links:
        for kind, n in link.by_kind.items():
            if kind != HUMAN:
                machine[kind] = machine.get(kind, 0) + n
    ranked = sorted(links, key=lambda lk: (-lk.by_kind.get(HUMAN, 0), lk.link_no))
    top = [
        LinkReport(
            lk.link_no, lk.url, lk.by_kind.get(HUMAN, 0), sum(lk.by_kind.values()) - lk.by_kind.get(HUMAN, 0)
        )
        for lk in ranked[:TOP_LINKS]
    ]
    return SendReport(
        send_id=send_id,
        key=info.key,
        kind=info.kind,
        status=info.status,
        created_at=info.created_at,
        delivered=counts.sent,
        failed=counts.failed,
        bounced=outcomes.get(FeedbackKind.HARD_BOUNCE, 0) + outcomes.get(FeedbackKind.SOFT_BOUNCE, 0),
        complained=outcomes.get(FeedbackKind.COMPLAINT, 0),
        unsubscribed=outcomes.get(FeedbackKind.UNSUBSCRIBE, 0),
        human_clicks=human,
        machine_clicks=machine,
        click_rate=human / counts.sent if counts.sent else None,
        top_links=top,
        clicks_by_hour=hours,
        sparkline=sparkline(hourly_series(hours)),
        links=len(links),
        opens=open_report(store, send_id, counts.sent) if opens else None,
    )


def find_send(store: Store, ref: str | None) -> int | None:
    """A send's id from its id or key (``issue:<slug>``); None: the newest send (or none at all)."""
    if ref is None:
        rows = store.ledger.sends(limit=1)
        return rows[0][0].id if rows else None
    if ref.isascii() and ref.isdigit():
        if len(ref) > 18:  # beyond any id a database holds (and SQLite's 64-bit integers)
            return None
        return int(ref) if store.ledger.get_send_by_id(int(ref)) else None
    info = store.ledger.get_send(ref) or store.ledger.get_send(f"issue:{ref}")
    return info.id if info else None


def hourly_series(hours: list[tuple[datetime, int]], width: int = SPARK_WIDTH) -> list[int]:
    """Clicks per hour, first clicked hour to last, zeros included, in at most ``width`` buckets."""
    if not hours:
        return []
    start = hours[0][0]
    span = int((hours[-1][0] - start) / timedelta(hours=1)) + 1
    per = -(-span // width)  # hours per bucket, rounded up
    series = [0] * (-(-span // per))
    for hour, n in hours:
        series[int((hour - start) / timedelta(hours=1)) // per] += n
    return series


def sparkline(values: list[int]) -> str:
    """One block character per value, scaled to the largest ('' for none)."""
    top = max(values, default=0)
    if top <= 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, (v * (len(SPARK) - 1) + top - 1) // top)] for v in values)
