"""Digest periods in a subscriber's own time zone, by wall-clock comparison.

A daily period starts when the local wall clock first reaches ``digests.daily.at``;
a weekly one when it does on ``digests.weekly.day``. The period is named by
its first local date (``2026-12-01``). Each period's start is an instant
(:func:`boundary`), and the current period is the latest one whose start has
passed, so it is monotonic in ``now`` whatever the clocks do: on the autumn
change a 02:30 that happens twice starts the period at the first one, and
the repeated 02:00-02:30 after it stays in that period (reading the wall
clock alone would put it back in the previous day's, issue 13.7); on the
spring change a 02:30 that never happens starts the period at 03:00. Pure: no
clock, no I/O.
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


def _days_back(local: date, frequency: str, cfg: DigestsConfig) -> tuple[time, list[date]]:
    """The digest time and the period first dates that may hold a local date, latest first.

    The day after ``local`` is included: after a clock goes back over midnight
    the wall clock can read a date whose next period has already started.
    """
    if frequency == "daily":
        return _hhmm(cfg.daily.at), [local + timedelta(days=1), local, local - timedelta(days=1)]
    if frequency == "weekly":
        last = local - timedelta(days=(local.weekday() - WEEKDAYS.index(cfg.weekly.day)) % 7)
        days = [last + timedelta(days=7)] if last + timedelta(days=6) == local else []
        return _hhmm(cfg.weekly.at), [*days, last, last - timedelta(days=7)]
    raise ValueError(f"no digest period for frequency {frequency!r}")


def current_period(now: datetime, tz: ZoneInfo, frequency: str, cfg: DigestsConfig) -> Period:
    """The daily or weekly period that ``now`` falls in, for a subscriber in ``tz``.

    The latest period whose :func:`boundary` is not after ``now``: a period that
    has started never un-starts, even while a repeated hour reads earlier.
    """
    at, days = _days_back(wall(now, tz).date(), frequency, cfg)
    for day in days:
        starts = boundary(day, at, tz)
        if starts <= now:
            return Period(frequency, day.isoformat(), starts)
    raise AssertionError(f"no {frequency} period started by {now.isoformat()} in {tz.key}")  # unreachable


def digest_key(frequency: str, period: str, zone_name: str) -> str:
    """The ledger key of one zone's digest for one period: unique, so it is planned once."""
    return f"digest:{frequency}:{period}:{zone_name}"
