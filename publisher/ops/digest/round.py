"""One digest round: see new articles, plan who is due, render, record it, drain.

Recording happens before any mail goes out and is one transaction per zone
(send, variants, recipients, deliveries, marks), so the round is safe to
repeat at any moment: a second round for the same period finds every
subscriber already recorded and sends nothing; a round interrupted while
draining is finished by the next one (the ledger sends only rows not yet
accepted). Draining reuses ``ops.send.drain``, with one prepared message per
variant (``messages``; the rendering itself is ``render.digest``'s).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from publisher.config import Settings
from publisher.deliver import RetryPolicy, Transport
from publisher.models import Article, Library
from publisher.ops.digest.messages import Renderers, prepared_messages
from publisher.ops.digest.periods import digest_key
from publisher.ops.digest.plan import RoundPlan, plan_round, zone_periods
from publisher.ops.queue import load_tolerant, stop_check
from publisher.ops.send import Clock, DrainReport, Progress, drain
from publisher.render.email_mime import PreparedMessage
from publisher.store import DigestState, PendingDelivery, Store
from publisher.store.digests import VariantPlan

log = logging.getLogger("publisher.digest")
FREQUENCIES = ("daily", "weekly")


@dataclass
class DigestReport:
    """What one round found and did, for the CLI and the scheduler's log."""

    frequency: str
    now: datetime
    dry_run: bool
    due: int = 0  # subscribers whose period has come and who have no digest for it
    mailed: int = 0  # of them, with something new: one message each
    quiet: int = 0  # of them, with nothing new: no mail, period recorded
    not_yet: int = 0  # subscribed after their period began: from the next one
    zones: int = 0
    variants: int = 0  # (zone, article list) pairs
    rendered: int = 0  # distinct article lists rendered
    too_late: list[str] = field(default_factory=list)  # "zone period" skipped: began before downtime ended
    sends: list[str] = field(default_factory=list)  # send keys written by this round
    drains: list[DrainReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # plan, render, record, drain

    @property
    def sent(self) -> int:
        return sum(r.sent for r in self.drains)

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.drains)

    @property
    def pending(self) -> int:
        return sum(r.counts.pending for r in self.drains)


def _virtual_arrivals(known: dict[str, int], articles: list[Article]) -> dict[str, int]:
    """What ``observe`` would number, without writing (for --dry-run)."""
    out = dict(known)
    nxt = max(known.values(), default=0)
    for a in sorted((a for a in articles if a.slug not in known), key=lambda a: (a.date, a.slug)):
        nxt += 1
        out[a.slug] = nxt
    return out


def plan_digest(
    settings: Settings,
    store: Store,
    frequency: str,
    library: Library,
    *,
    now: datetime,
    up_since: datetime,
    dry_run: bool = False,
) -> RoundPlan:
    """Observe arrivals (unless dry run) and plan the round: who is due and what each gets."""
    state = DigestState(store)
    articles = list(library.articles)
    if dry_run:
        arrivals = _virtual_arrivals(state.arrivals(), articles)
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
    candidates = state.candidates(frequency, {z: p.label for z, p in periods.items()})
    if late:  # only just after a start: say so only where someone really misses a digest
        waiting = state.candidates(frequency, {z: p.label for z, p in late.items()})
        missed = {c.timezone for c in waiting if c.created_at <= late[c.timezone].starts}
        late = {z: p for z, p in late.items() if z in missed}
    return plan_round(
        frequency,
        now,
        candidates,
        periods,
        arrivals,
        articles,
        settings.digests.max_latest,
        late,
        seen_by=state.seen_by(),
    )


def run_digest(
    settings: Settings,
    store: Store,
    frequency: str,
    *,
    clock: Clock,
    up_since: datetime | None = None,
    dry_run: bool = False,
    library: Library | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[str], Progress | None] | None = None,
    retry: RetryPolicy | None = None,
    transports: Callable[[str], Callable[[], Transport]] | None = None,
    send: bool = True,
) -> DigestReport:
    """Run one ``frequency`` round at ``clock()``: plan, record, render, then drain every digest send left.

    ``up_since`` is when the scheduler came up (default: now, for a round run
    by hand); periods that began more than ``schedule.max_lateness`` before it
    are skipped. ``send=False`` records the round but leaves the draining to a
    later round (or a worker). Raises ``ops.queue.Stopped`` if ``stop`` is set
    mid-drain.
    """
    if frequency not in FREQUENCIES:
        raise ValueError(f"no digest for frequency {frequency!r}")
    now = clock()
    if library is None:
        library, _ = load_tolerant(settings)
    started = time.perf_counter()
    plan = plan_digest(
        settings, store, frequency, library, now=now, up_since=up_since or now, dry_run=dry_run
    )
    report = _planned(frequency, now, dry_run, plan)
    report.seconds["plan"] = time.perf_counter() - started
    started = time.perf_counter()
    renderers = _render_round(settings, library, frequency, plan, report)
    report.seconds["render"] = time.perf_counter() - started
    if dry_run:
        return report
    started = time.perf_counter()
    _record_round(store, frequency, plan, now, report)
    report.seconds["record"] = time.perf_counter() - started
    if not send:
        return report
    started = time.perf_counter()
    drain_digests(
        settings,
        store,
        renderers,
        report,
        clock=clock,
        stop=stop,
        progress=progress,
        retry=retry,
        transports=transports,
    )
    report.seconds["drain"] = time.perf_counter() - started
    return report


def _planned(frequency: str, now: datetime, dry_run: bool, plan: RoundPlan) -> DigestReport:
    """The report of a round as planned: who is due, and in how many zones and variants."""
    report = DigestReport(frequency, now, dry_run)
    report.due, report.mailed, report.quiet, report.not_yet = plan.due, plan.mailed, plan.quiet, plan.not_yet
    report.zones = sum(1 for z in plan.zones if z.variants)
    report.variants = plan.variant_count
    report.too_late = [f"{z} {p.label}" for z, p in sorted(plan.too_late.items())]
    return report


def _render_round(
    settings: Settings, library: Library, frequency: str, plan: RoundPlan, report: DigestReport
) -> Renderers:
    """Render every article list of the plan before recording: a template error must not strand a plan."""
    renderers = Renderers(settings, library)
    lists = plan.article_lists()
    renderers.warm(lists)
    renderer = renderers.get(frequency)
    for contents in sorted(lists):
        report.warnings.extend(renderer.rendered(contents).notes)
    report.rendered = len(lists)
    return renderers


def _record_round(store: Store, frequency: str, plan: RoundPlan, now: datetime, report: DigestReport) -> None:
    """Record each zone's share of the round (one transaction per zone), before any mail goes out."""
    state = DigestState(store)
    for z in plan.zones:
        key = digest_key(frequency, z.period.label, z.zone)
        rec = state.record(
            frequency,
            z.period.label,
            key,
            now=now,
            to_seq=plan.to_seq,
            variants=[VariantPlan(contents, tuple(ids)) for contents, ids in z.variants.items()],
            quiet=z.quiet,
            meta={"frequency": frequency, "period": z.period.label, "zone": z.zone},
        )
        if rec.mailed:
            report.sends.append(key)
    (log.info if plan.due else log.debug)(
        "%s digest round: %d due, %d to mail in %d variant(s), %d with nothing new",
        frequency,
        plan.due,
        plan.mailed,
        plan.variant_count,
        plan.quiet,
    )


def drain_digests(
    settings: Settings,
    store: Store,
    renderers: Renderers,
    report: DigestReport,
    *,
    clock: Clock,
    stop: threading.Event | None,
    progress: Callable[[str], Progress | None] | None,
    retry: RetryPolicy | None,
    transports: Callable[[str], Callable[[], Transport]] | None,
) -> None:
    """Drain every digest send with rows pending: this round's, and any an earlier run left."""
    state = DigestState(store)
    for send in state.unfinished():
        if stop is not None and stop.is_set():
            return
        prepared = prepared_messages(settings, state, renderers, send)
        vmap = state.variant_map(send.id)

        def prepared_for(
            row: PendingDelivery,
            vmap: dict[int, int] = vmap,
            prepared: dict[int, PreparedMessage] = prepared,
        ) -> PreparedMessage:
            return prepared[vmap[row.subscriber_id]]

        inner = progress(send.key) if progress is not None else None
        check = stop_check(stop, inner) if stop is not None else inner
        result = drain(
            settings,
            store,
            send.id,
            prepared_for,
            clock=clock,
            progress=check,
            retry=retry,
            transports=transports(send.key) if transports is not None else None,
        )
        report.drains.append(result)
        if result.fatal is not None:
            log.error("digest %s stopped: %s", send.key, result.fatal.message)
            return  # the server is unusable now; the next round resumes
