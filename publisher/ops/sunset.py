"""Sunsetting: ask the long-silent once, then pause their mail (issue 16; per-subscriber analytics only).

Mailing people who stopped reading hurts everyone else's delivery (mailbox
providers watch engagement) and is unkind. With ``analytics.per_subscriber``
on, each scheduler tick (at most one sweep an hour, ``SWEEP_EVERY``):

1. pauses whoever was asked ``sunset_grace`` ago and has not clicked since
   (a paused subscriber is planned no issue or digest:
   ``store.records.NOT_PAUSED``);
2. finds the candidates (``store.engagement``: no human click for
   ``sunset_after`` over at least ``sunset_min_issues`` issues or digests)
   and asks each once: they enter the ``reengage`` sequence
   (``ops.sequences.enter_sequence``; ``sequences/reengage/NN-*.md``, sent by
   the sequence round in the reader's daytime window). Without that folder
   nobody is asked or paused, and ``publisher status`` counts the candidates.

A human click on any per-subscriber link, or saving their preferences page
(where the re-engagement mail should point), takes a subscriber out of it
(``store.engagement``; :func:`resume`). Entering a sequence is once per
subscriber, ever: a second lapse is paused after the grace period without a
second mail. Turning per-subscriber counting off erases what says who
clicked at the next tick, and with it every pause (nothing could resume one).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from publisher.config import Settings
from publisher.errors import ContentError, NotFoundError
from publisher.ops.drain import Clock
from publisher.ops.sequences import enter_sequence
from publisher.store import Store
from publisher.store.engagement import Engagement, SunsetCounts

log = logging.getLogger("publisher.sunset")
REENGAGE = "reengage"  # the sequence folder holding the re-engagement mail
SWEEP_EVERY = timedelta(hours=1)
MAX_PER_SWEEP = 5_000  # candidates asked per sweep: a first sweep over a large old list is spread out


@dataclass
class SunsetReport:
    """What one tick did (for the logs and tests)."""

    tracking: bool  # per-subscriber counting on
    forgotten: int = 0  # rows erased because it is off
    paused: int = 0
    asked: int = 0  # marked re-engaged now
    waiting: int = 0  # candidates not asked: no sequences/reengage/ mail


def tracking(settings: Settings) -> bool:
    """Whether clicks name their reader: rewriting on and per-subscriber counting on."""
    return settings.analytics.clicks and settings.analytics.per_subscriber


def sunset_tick(settings: Settings, store: Store, *, clock: Clock, force: bool = False) -> SunsetReport:
    """The scheduler's tick (``force``: sweep even if the last sweep is recent)."""
    now = clock()
    engagement = Engagement(store)
    on = tracking(settings)
    since = engagement.tracking_since(on=on, now=now)
    report = SunsetReport(tracking=on)
    if not on or since is None:
        report.forgotten = engagement.forget_readers()
        return report
    a = settings.analytics
    if not (force or engagement.due_sweep(now=now, every=SWEEP_EVERY)):
        return report
    engagement.prune(now - a.retention)
    if a.sunset:
        report.paused = engagement.pause_due(now=now, grace=a.sunset_grace)
        ids = engagement.candidates(
            since=since, now=now, after=a.sunset_after, min_issues=a.sunset_min_issues, limit=MAX_PER_SWEEP
        )
        if ids:
            asked = ask(settings, store, ids, now=now)
            report.asked, report.waiting = asked, len(ids) - asked
    if report.paused or report.asked or report.waiting:
        log.info(
            "sunsetting: %d asked, %d paused, %d waiting for sequences/reengage/",
            report.asked,
            report.paused,
            report.waiting,
        )
    return report


def ask(settings: Settings, store: Store, subscriber_ids: Sequence[int], *, now: datetime) -> int:
    """Put these candidates into the ``reengage`` sequence and start their grace period: how many.

    0 (nobody marked, so nobody is paused) when ``sequences/reengage/`` has no
    usable step: the candidates wait, logged, and ``publisher status`` counts them.
    """
    try:
        enter_sequence(settings, store, REENGAGE, subscriber_ids, now=now)
    except NotFoundError:
        log.warning(
            "%d subscriber(s) are due a re-engagement mail but sequences/reengage/ has none",
            len(subscriber_ids),
        )
        return 0
    except ContentError as exc:  # said with its file:line, each sweep, until fixed
        log.error("re-engagement mail waits: %s", "; ".join(exc.lines()))
        return 0
    return Engagement(store).mark_reengaged(subscriber_ids, now=now)


def sunset_counts(settings: Settings, store: Store, *, now: datetime) -> SunsetCounts:
    """Candidates (while per-subscriber counting is on), re-engaged and paused: for ``publisher status``."""
    a = settings.analytics
    since = Engagement(store).since() if tracking(settings) else None
    return Engagement(store).counts(
        since=since, now=now, after=a.sunset_after, min_issues=a.sunset_min_issues
    )


def resume(store: Store, subscriber_id: int, *, now: datetime) -> bool:
    """Take a subscriber out of sunsetting (they saved their preferences): True if they were in it."""
    return Engagement(store).resume(subscriber_id, now=now)
