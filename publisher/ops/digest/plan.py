"""Who is due for a digest now, and what each of them gets. Pure: the caller brings the data.

A subscriber is due when their zone's current period (see ``periods``) has
no digest for them yet, the period began after they subscribed (so a new
subscriber's first digest comes at their next delivery time, not the
minute they join), and it did not begin longer than ``max_lateness`` before
the scheduler came up (a digest does not go out hours late after downtime; its
articles simply roll into the next one). What they get: the articles that
*arrived* after their mark, matching their topics, newest first, at most
``max_latest``. A first digest (issue 13.6) holds what arrived after they
subscribed, said so in its lede; if nothing did, the latest ``max_latest``,
once, as a start. Subscribers of one zone with the same contents share a variant.

A round is planned a page of candidates at a time (:func:`plan_page`), so a
million subscribers are never in memory at once; :class:`RoundPlan` keeps only
the counts and the distinct (zone, contents) pairs, which are few.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from publisher.config import DigestsConfig
from publisher.content import slugify
from publisher.models import Article
from publisher.ops.digest.periods import Period, current_period, zone
from publisher.store.digests import Candidate, Contents, Lede


@dataclass
class ZonePlan:
    """One zone's share of a page: the variants (contents -> subscriber ids) and who gets no mail."""

    zone: str
    period: Period
    variants: dict[Contents, list[int]] = field(default_factory=dict)
    quiet: list[int] = field(default_factory=list)  # due, but nothing new for them: no mail

    @property
    def mailed(self) -> int:
        return sum(len(ids) for ids in self.variants.values())


@dataclass
class PagePlan:
    """One page of candidates, planned: a ZonePlan per zone present (sorted), and who must wait."""

    zones: list[ZonePlan]
    not_yet: int = 0  # due by the clock, but subscribed after the period began


@dataclass
class RoundPlan:
    """What a round found, summed over its pages: counts and the distinct pairs, never the ids."""

    frequency: str
    now: datetime
    to_seq: int  # the newest arrival considered: every planned subscriber's mark moves here
    too_late: dict[str, Period]  # zones whose period began too long before the scheduler came up
    due: int = 0
    mailed: int = 0
    quiet: int = 0
    not_yet: int = 0
    pairs: set[tuple[str, Contents]] = field(default_factory=set)  # (zone, contents): one variant each
    sends: dict[str, str] = field(default_factory=dict)  # send key -> zone, for sends that got rows
    seconds: dict[str, float] = field(default_factory=dict)  # plan, render, record: summed over pages

    @property
    def variant_count(self) -> int:
        return len(self.pairs)

    @property
    def zones_mailed(self) -> int:
        return len({z for z, _ in self.pairs})

    def article_lists(self) -> set[Contents]:
        """Every distinct contents of the round so far: each is rendered once."""
        return {contents for _, contents in self.pairs}

    def add(self, page: PagePlan) -> None:
        self.not_yet += page.not_yet
        for z in page.zones:
            self.mailed += z.mailed
            self.quiet += len(z.quiet)
            self.due += z.mailed + len(z.quiet)
            self.pairs.update((z.zone, contents) for contents in z.variants)


def zone_periods(
    zones: Iterable[str],
    now: datetime,
    frequency: str,
    cfg: DigestsConfig,
    *,
    up_since: datetime,
    max_lateness: timedelta,
) -> tuple[dict[str, Period], dict[str, Period]]:
    """(zones whose period may be sent now, zones whose period began too long before ``up_since``)."""
    ok: dict[str, Period] = {}
    late: dict[str, Period] = {}
    for name in zones:
        period = current_period(now, zone(name), frequency, cfg)
        if up_since - period.starts > max_lateness:
            late[name] = period
        else:
            ok[name] = period
    return ok, late


class Picker:
    """Chooses a subscriber's articles; cached per (mark, topics), which most subscribers share.

    Made once per round and kept across its pages, so the cache is too.
    """

    def __init__(
        self,
        arrivals: dict[str, int],
        articles: Sequence[Article],
        max_latest: int,
        seen_by: Sequence[tuple[datetime, int]] = (),
    ) -> None:
        published = [(arrivals[a.slug], a) for a in articles if not a.draft and a.slug in arrivals]
        # newest first by date (ties by slug) so every list is already in display order
        self.pool = sorted(published, key=lambda p: (-p[1].date.timestamp(), p[1].slug))
        self.tags = {a.slug: frozenset(a.tags) for _, a in self.pool}
        self.max_latest = max_latest
        self.to_seq = max(arrivals.values(), default=0)
        self.times = [when for when, _ in seen_by]  # ``DigestState.seen_by()``: where a first digest starts
        self.marks = [seq for _, seq in seen_by]
        self.cache: dict[tuple[int, tuple[str, ...]], tuple[str, ...]] = {}

    def contents(self, c: Candidate) -> Contents:
        """What ``c`` gets: since their mark, or, in a first digest, since they joined (else the latest)."""
        if c.mailed:
            return Contents(self.pick(c.last_seq or 0, c.topics), Lede.LAST)
        joined = bisect_right(self.times, c.created_at)  # arrivals first seen by the time they subscribed
        since = self.pick(max(c.last_seq or 0, self.marks[joined - 1] if joined else 0), c.topics)
        if since:
            return Contents(since, Lede.SUBSCRIBED)
        return Contents(self.pick(0, c.topics), Lede.LATEST)

    def pick(self, last_seq: int, topics: tuple[str, ...]) -> tuple[str, ...]:
        key = (last_seq, topics)
        got = self.cache.get(key)
        if got is None:
            wanted = frozenset(slugify(t) for t in topics)
            out: list[str] = []
            for seq, a in self.pool:
                if seq > key[0] and (not wanted or wanted & self.tags[a.slug]):
                    out.append(a.slug)
                    if len(out) == self.max_latest:
                        break
            got = self.cache[key] = tuple(out)
        return got


def plan_page(candidates: Iterable[Candidate], periods: dict[str, Period], picker: Picker) -> PagePlan:
    """Group one page of due candidates into per-zone variants; candidates outside ``periods`` are ignored."""
    plans: dict[str, ZonePlan] = {}
    not_yet = 0
    for c in candidates:
        period = periods.get(c.timezone)
        if period is None:
            continue
        if c.created_at > period.starts:
            not_yet += 1
            continue
        plan = plans.get(c.timezone)
        if plan is None:
            plan = plans[c.timezone] = ZonePlan(c.timezone, period)
        contents = picker.contents(c)
        if contents.articles:
            plan.variants.setdefault(contents, []).append(c.id)
        else:
            plan.quiet.append(c.id)
    return PagePlan([plans[z] for z in sorted(plans)], not_yet)
