"""Digest periods in a subscriber's own time zone, by wall-clock comparison.

A daily period starts when the local wall clock reaches ``digests.daily.at``;
a weekly one when it does on ``digests.weekly.day``. The period is named by
its first local date (``2026-12-01``). Comparing wall-clock times (not adding
hours to instants) is what makes DST harmless: on the autumn change a 01:30
that happens twice still belongs to one period, and on the spring change a
02:30 that never happens starts the period at 03:00. Pure: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from publisher.config import WEEKDAYS, DigestsConfig


@dataclass(frozen=True)
class Period:
    """The period that contains some instant, in one zone."""

    frequency: str  # daily | weekly
    label: str  # first local date, ISO: the digest key's period
    starts: datetime  # the instant it began (aware, UTC)


def _hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


@lru_cache(maxsize=4096)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def wall(instant: datetime, tz: ZoneInfo) -> datetime:
    """The local wall-clock reading of ``instant`` (naive)."""
    return instant.astimezone(tz).replace(tzinfo=None)


def boundary(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The first instant at which the wall clock in ``tz`` reads ``day`` ``at`` or later (UTC).

    Normally that is ``day at`` itself (the first of two, in the autumn); in a
    spring-forward gap it is the moment the clocks jump.
    """
    naive = datetime.combine(day, at)
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if wall(first, tz) == naive:
        return first
    # In a gap: fold=1 reads the time with the later offset, which is an earlier instant.
    lo, hi = naive.replace(tzinfo=tz, fold=1).astimezone(UTC), first
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if wall(mid, tz) >= naive:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0)


def current_period(now: datetime, tz: ZoneInfo, frequency: str, cfg: DigestsConfig) -> Period:
    """The daily or weekly period that ``now`` falls in, for a subscriber in ``tz``."""
    local = wall(now, tz)
    if frequency == "daily":
        at = _hhmm(cfg.daily.at)
        day = local.date() if local.time() >= at else local.date() - timedelta(days=1)
    elif frequency == "weekly":
        at = _hhmm(cfg.weekly.at)
        back = (local.weekday() - WEEKDAYS.index(cfg.weekly.day)) % 7
        day = local.date() - timedelta(days=back)
        if back == 0 and local.time() < at:
            day -= timedelta(days=7)
    else:
        raise ValueError(f"no digest period for frequency {frequency!r}")
    return Period(frequency, day.isoformat(), boundary(day, at, tz))


def digest_key(frequency: str, period: str, zone_name: str) -> str:
    """The ledger key of one zone's digest for one period: unique, so it is planned once."""
    return f"digest:{frequency}:{period}:{zone_name}"
