"""Telling a reader's click from a machine's, and forgetting raw clicks on time.

Link scanners (corporate mail gateways, Microsoft's Safe Links, Google's Safe
Browsing) and prefetchers follow every link of a message, usually within
seconds of delivery; counted as readers they would make every link look
popular. A click is a machine's (kept, but apart, and out of the default
figures) when:

* it is a ``HEAD`` request (browsers follow links with ``GET``);
* its user agent is empty or matches ``SCANNER_AGENTS`` (below: the gateways
  and tools known to fetch links unasked, and anything calling itself a bot,
  crawler or spider, or a plain HTTP library);
* it arrives within ``analytics.prefetch_seconds`` of the send's start (a person
  rarely opens and clicks that fast; at per-send granularity the send's start
  stands in for each message's delivery).

The user agent itself is never stored: only the class.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache

from publisher.config import Settings
from publisher.store import Store

HUMAN, SCANNER, PREFETCH = "human", "scanner", "prefetch"
MAX_CACHED_AGENT = 512  # characters

SCANNER_AGENTS = re.compile(
    r"barracuda|proofpoint|mimecast|safelinks|safe ?links|microsoft defender|defender for office"
    r"|microsoft office|ms-office|bingpreview|google-safety|google-read-aloud|googleimageproxy"
    r"|trendmicro|trend micro|symantec|messagelabs|forcepoint|sophos|fortiguard|ironport|cisco"
    r"|zscaler|paloalto|checkpoint|avanan|abnormal|libraesva|hornetsecurity|vade"
    r"|bot\b|bot/|crawler|spider|scanner|preview|headless|phantomjs|slurp"
    r"|^curl/|^wget/|python-requests|python-urllib|python-httpx|aiohttp|go-http-client|okhttp"
    r"|^java/|apache-httpclient|libwww-perl|node-fetch|axios/",
    re.IGNORECASE,
)


def machine_agent(user_agent: str) -> bool:
    """Whether ``user_agent`` is empty or a known machine's (cached: readers' agents repeat)."""
    if len(user_agent) > MAX_CACHED_AGENT:  # no browser's is this long: not worth a cache slot
        return _machine_agent(user_agent)
    return _cached_machine_agent(user_agent)


def _machine_agent(user_agent: str) -> bool:
    return not user_agent.strip() or SCANNER_AGENTS.search(user_agent) is not None


_cached_machine_agent = lru_cache(maxsize=4096)(_machine_agent)  # the pattern costs ~25 µs a search


def classify(
    method: str, user_agent: str, at: datetime, send_started: datetime | None, prefetch_seconds: int
) -> str:
    """human | scanner | prefetch, for one request to ``/r/<token>``."""
    if method.upper() == "HEAD" or machine_agent(user_agent):
        return SCANNER
    if send_started is not None and at - send_started < timedelta(seconds=prefetch_seconds):
        return PREFETCH
    return HUMAN


def prune_clicks(settings: Settings, store: Store, now: datetime) -> int:
    """Delete raw click events older than ``analytics.retention`` (the hourly figures stay)."""
    return store.clicks.prune(now - settings.analytics.retention)
