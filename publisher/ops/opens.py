"""Telling a reader's open from a machine's, what one send's opens add up to, and forgetting them on time.

An open is a load of the send's 1x1 image (``render.pixel``), and many loads
are not a person reading. From the user agent and the timing only (the
address is never known, the IP and user agent are never stored), a load is:

* ``apple_mpp``: Apple Mail Privacy Protection's proxy, which fetches every
  image of every message on delivery, read or not. It sends the bare user
  agent ``Mozilla/5.0`` and nothing else (ua-parser/uap-core issue #509,
  "Apple Mail proxy", September 2021);
* ``gmail_proxy``: Gmail's image proxy, ``Mozilla/5.0 (Windows NT 5.1;
  rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)``. It fetches
  when a message is shown, but once, then serves its copy: later opens, and
  which reader it was, are invisible;
* ``proxy``: other mail image proxies: Yahoo's ``YahooMailProxy;
  https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html`` and Yandex's
  ``Mozilla/5.0 (compatible; YandexImageResizer/2.0; +http://yandex.com/bots)``;
* ``scanner``: a ``HEAD`` request, no user agent, Outlook's link probe
  ``Microsoft Office Existence Discovery``, or anything click counting already
  calls a scanner (``ops.clicks.SCANNER_AGENTS``), except the Outlook desktop
  client itself (``Microsoft Outlook 16.0...; ms-office; MSOffice 16``), which
  loads images when a person opens the message;
* ``prefetch``: any other load within ``analytics.prefetch_seconds`` of the
  send's start (a gateway fetching on delivery);
* ``human``: the rest. Still only an estimate, and every report says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from publisher.config import Settings
from publisher.ops.clicks import SCANNER_AGENTS
from publisher.store import Store

HUMAN, APPLE_MPP, GMAIL_PROXY, PROXY, SCANNER, PREFETCH = (
    "human",
    "apple_mpp",
    "gmail_proxy",
    "proxy",
    "scanner",
    "prefetch",
)
MAX_AGENT = 1024  # characters of a user agent looked at: every pattern sits near the start
APPLE_MPP_AGENT = "Mozilla/5.0"
GMAIL_AGENTS = re.compile(r"googleimageproxy|via ggpht\.com", re.IGNORECASE)
PROXY_AGENTS = re.compile(r"yahoomailproxy|yandeximageresizer", re.IGNORECASE)
PROBE_AGENTS = re.compile(r"existence discovery|protocol discovery", re.IGNORECASE)
OUTLOOK_CLIENT = re.compile(r"microsoft outlook|msoffice \d", re.IGNORECASE)
OPENS_NOTE = (
    "Opens are an estimate: Apple Mail Privacy Protection loads every image of every message, "
    "read or not, and Gmail loads an image once and keeps its copy. Counted per send, not per "
    "person: image loads, with the proxies' and scanners' loads apart and left out of the open rate."
)


def classify_open(
    method: str, user_agent: str, at: datetime, send_started: datetime | None, prefetch_seconds: int
) -> str:
    """The class of one load of a send's image (see the module doc); only this is ever stored."""
    agent = user_agent[:MAX_AGENT].strip()
    if method.upper() == "HEAD" or not agent:
        return SCANNER
    if agent == APPLE_MPP_AGENT:
        return APPLE_MPP
    if GMAIL_AGENTS.search(agent):
        return GMAIL_PROXY
    if PROXY_AGENTS.search(agent):
        return PROXY
    if PROBE_AGENTS.search(agent) or (SCANNER_AGENTS.search(agent) and not OUTLOOK_CLIENT.search(agent)):
        return SCANNER
    if send_started is not None and at - send_started < timedelta(seconds=prefetch_seconds):
        return PREFETCH
    return HUMAN


def prune_opens(settings: Settings, store: Store, now: datetime) -> int:
    """Delete raw open events older than ``analytics.retention`` (the hourly figures stay)."""
    return store.opens.prune(now - settings.analytics.retention)


@dataclass(frozen=True)
class OpenReport:
    """One send's opens: human loads apart from each machine class, and their hours."""

    human_opens: int
    machine_opens: dict[str, int]  # apple_mpp | gmail_proxy | proxy | scanner | prefetch
    open_rate: float | None  # human loads per delivered message
    opens_by_hour: list[tuple[datetime, int]]  # human loads, hours with any
    note: str = OPENS_NOTE

    def as_json(self) -> dict[str, Any]:
        return {
            "human_opens": self.human_opens,
            "machine_opens": dict(self.machine_opens),
            "open_rate": self.open_rate,
            "opens_by_hour": [{"hour": h.isoformat(), "opens": n} for h, n in self.opens_by_hour],
            "note": self.note,
        }


def open_report(store: Store, send_id: int, delivered: int) -> OpenReport:
    """Send ``send_id``'s opens, from the hourly rollups (never the raw events)."""
    by_kind = store.opens.by_kind(send_id)
    human = by_kind.pop(HUMAN, 0)
    return OpenReport(
        human_opens=human,
        machine_opens=dict(sorted(by_kind.items())),
        open_rate=human / delivered if delivered else None,
        opens_by_hour=store.opens.by_hour(send_id, HUMAN),
    )
