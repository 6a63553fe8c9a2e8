"""A digest round planned, rendered and recorded a page of subscribers at a time.

A million subscribers never sit in memory at once: candidates come from the
store in pages by id (``DigestState.candidate_pages``, one short read each),
each page is planned (``plan``), any article list it holds that is new to the
round is rendered, and then the page is recorded in one transaction (per zone:
send, variants, recipients, deliveries, marks). Only counts and the few
distinct (zone, article list) pairs outlive a page.

Why that is safe to interrupt and to repeat: every subscriber's recipient row
is unique per (frequency, period) and is written in the same transaction as
their delivery and their mark, so a page is recorded whole or not at all; a
repeated round finds the recorded ones (the page query leaves them out, and the
unique row refuses them anyway) and records nobody twice, and a round stopped
between pages is finished by the next, which finds exactly those not yet
recorded. An article list is rendered before the first page that holds it is
recorded, so a template error never leaves a recorded plan that cannot be sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from publisher.config import Settings
from publisher.models import Article, Library
from publisher.ops.digest.messages import Renderers
from publisher.ops.digest.periods import Period, digest_key
from publisher.ops.digest.plan import PagePlan, Picker, RoundPlan, plan_page, zone_periods
from publisher.store import DigestState, Store
from publisher.store.digests import VariantPlan, ZoneShare

log = logging.getLogger("publisher.digest")


def virtual_arrivals(known: dict[str, int], articles: list[Article]) -> dict[str, int]:
    """What ``observe`` would number, without writing (for --dry-run)."""
    out = dict(known)
    nxt = max(known.values(), default=0)
    for a in sorted((a for a in articles if a.slug not in known), key=lambda a: (a.date, a.slug)):
        nxt += 1
        out[a.slug] = nxt
    return out


@contextmanager
def _timed(plan: RoundPlan, step: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        plan.seconds[step] = plan.seconds.get(step, 0.0) + time.perf_counter() - started


def start_round(
    settings: Settings,
    state: DigestState,
    frequency: str,
    articles: list[Article],
    *,
    now: datetime,
    up_since: datetime,
    dry_run: bool,
) -> tuple[RoundPlan, dict[str, Period], Picker]:
    """Observe arrivals (unless dry run), find each zone's period, and make the round's picker."""
    if dry_run:
        arrivals = virtual_arrivals(state.arrivals(), articles)
    else:
        arrivals = state.observe(((a.slug, a.id, a.date) for a in articles), now=now)
    periods, late = zone_periods(
        state.zones(frequency),
        now,
        frequency,
        settings.digests,
        up_since=up_since,
        max_lateness=settings.schedule.max_lateness,
    )
    # only just after a start: say so only where someone really misses a digest
    late = {z: p for z, p in late.items() if state.waiting(frequency, p.label, [z], p.starts)}
    picker = Picker(arrivals, articles, settings.digests.max_latest, state.seen_by())
    return RoundPlan(frequency, now, picker.to_seq, late), periods, picker


def plan_and_record(
    settings: Settings,
    store: Store,
    frequency: str,
    library: Library,
    renderers: Renderers,
    *,
    now: datetime,
    up_since: datetime,
    dry_run: bool = False,
    page_size: int | None = None,
) -> tuple[RoundPlan, list[str]]:
    """Plan the round page by page, render each new article list, record each page (unless dry run).

    ``page_size``: candidates per page (default ``store.digests.PAGE``). Returns
    the round's totals and the renderers' warnings.
    """
    state = DigestState(store)
    warnings: list[str] = []
    started = time.perf_counter()
    plan, periods, picker = start_round(
        settings, state, frequency, list(library.articles), now=now, up_since=up_since, dry_run=dry_run
    )
    plan.seconds["plan"] = time.perf_counter() - started
    by_label: dict[str, list[str]] = {}
    for name, period in sorted(periods.items()):
        by_label.setdefault(period.label, []).append(name)
    for label, zones in sorted(by_label.items()):
        pages = state.candidate_pages(frequency, label, zones, size=page_size)
        while True:
            with _timed(plan, "plan"):  # reading the page counts as planning: who is due
                candidates = next(pages, None)
                page = plan_page(candidates or (), periods, picker)
            if candidates is None:
                break
            with _timed(plan, "render"):
                warnings.extend(_render_new(renderers, frequency, plan, page))
            if not dry_run:
                with _timed(plan, "record"):
                    _record_page(state, frequency, plan, page)
            plan.add(page)
    (log.info if plan.due else log.debug)(
        "%s digest round: %d due, %d to mail in %d variant(s), %d with nothing new",
        frequency,
        plan.due,
        plan.mailed,
        plan.variant_count,
        plan.quiet,
    )
    return plan, warnings


def _render_new(renderers: Renderers, frequency: str, plan: RoundPlan, page: PagePlan) -> list[str]:
    """Render the page's article lists the round has not rendered yet: before any of them is recorded."""
    seen = plan.article_lists()
    new = {contents for z in page.zones for contents in z.variants if contents not in seen}
    if not new:
        return []
    renderers.warm(new)
    renderer = renderers.get(frequency)
    return [note for contents in sorted(new) for note in renderer.rendered(contents).notes]


def _record_page(state: DigestState, frequency: str, plan: RoundPlan, page: PagePlan) -> None:
    """Record the page, every zone's share of it in one transaction, before any of it is mailed."""
    shares = [
        ZoneShare(
            digest_key(frequency, z.period.label, z.zone),
            z.period.label,
            [VariantPlan(contents, tuple(ids)) for contents, ids in z.variants.items()],
            z.quiet,
            {"frequency": frequency, "period": z.period.label, "zone": z.zone},
        )
        for z in page.zones
    ]
    for z, rec in zip(
        page.zones, state.record(frequency, shares, now=plan.now, to_seq=plan.to_seq), strict=True
    ):
        if rec.mailed:
            plan.sends[rec.key] = z.zone
