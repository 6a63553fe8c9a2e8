"""One digest round: see new articles, plan who is due, render, record it, drain.

Recording happens before any mail goes out, one transaction per page of
subscribers (per zone: send, variants, recipients, deliveries, marks;
``record``, so a million are never in memory at once), so the round is safe to
repeat at any moment: a second round for the same period finds every
subscriber already recorded and sends nothing; a round interrupted while
draining is finished by the next one (the ledger sends only rows not yet
accepted). Draining reuses ``ops.send.drain``, with one prepared message per
variant (``messages``; the rendering itself is ``render.digest``'s). On
PostgreSQL with ``publisher worker`` processes running, the round's sends
go to them instead (``ops.scaleout.hand_planned``); a worker rebuilds the
variants with the same :func:`digest_messages` from its own copy of the project.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from publisher.config import Settings
from publisher.deliver import RetryPolicy, Transport
from publisher.errors import PublisherError
from publisher.models import Library
from publisher.ops.digest.messages import Renderers, prepared_messages
from publisher.ops.digest.plan import RoundPlan
from publisher.ops.digest.record import plan_and_record
from publisher.ops.queue import load_tolerant, stop_check
from publisher.ops.scaleout import Handed, Messages, WorkerQueue, fingerprint_all, hand_planned
from publisher.ops.send import Clock, DrainReport, Progress, drain
from publisher.render.email_mime import PreparedMessage
from publisher.store import DigestState, PendingDelivery, SendInfo, Store
from publisher.store.digests import DigestSend

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
    handed: list[Handed] = field(default_factory=list)  # sends given to the workers instead
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
    workers: WorkerQueue | None = None,
) -> DigestReport:
    """Run one ``frequency`` round at ``clock()``: plan, record, render, then drain every digest send left.

    ``up_since`` is when the scheduler came up (default: now, for a round run
    by hand); periods that began more than ``schedule.max_lateness`` before it
    are skipped. ``send=False`` records the round but leaves the draining to a
    later round (or a worker). ``workers``: the scale-out queue; with workers
    running (PostgreSQL) they send, and without a queue this process leaves
    the rows to the scheduler's. Raises ``ops.queue.Stopped`` if ``stop`` is set
    mid-drain.
    """
    if frequency not in FREQUENCIES:
        raise ValueError(f"no digest for frequency {frequency!r}")
    now = clock()
    if library is None:
        library, _ = load_tolerant(settings)
    renderers = Renderers(settings, library)
    plan, warnings = plan_and_record(
        settings, store, frequency, library, renderers, now=now, up_since=up_since or now, dry_run=dry_run
    )
    report = _planned(frequency, now, dry_run, plan)
    report.warnings.extend(warnings)
    if dry_run or not send:
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
        workers=workers,
    )
    report.seconds["drain"] = time.perf_counter() - started
    return report


def _planned(frequency: str, now: datetime, dry_run: bool, plan: RoundPlan) -> DigestReport:
    """The report of a round as planned: who is due, and in how many zones and variants."""
    report = DigestReport(frequency, now, dry_run)
    report.due, report.mailed, report.quiet, report.not_yet = plan.due, plan.mailed, plan.quiet, plan.not_yet
    report.zones = plan.zones_mailed
    report.variants = plan.variant_count
    report.rendered = len(plan.article_lists())
    report.too_late = [f"{z} {p.label}" for z, p in sorted(plan.too_late.items())]
    report.sends = sorted(plan.sends, key=lambda key: (plan.sends[key], key))  # by zone, as before
    report.seconds.update(plan.seconds)
    return report


def digest_messages(
    settings: Settings,
    store: Store,
    send: DigestSend | SendInfo,
    date: datetime | None = None,
    *,
    renderers: Renderers | None = None,
) -> Messages:
    """A digest send's variants and which one each row gets: the in-process drain's and the workers'.

    ``date`` is unused: a digest is always dated by its send (``created_at``).
    Rows are matched to variants by subscriber, read on the first row (and
    again for a row the map has not seen: a send topped up since).
    """
    state = DigestState(store)
    if renderers is None:
        renderers = Renderers(settings, load_tolerant(settings)[0])
    digest = DigestSend(send.id, send.key, send.created_at, send.meta)
    prepared = prepared_messages(settings, state, renderers, digest)
    vmap: dict[int, int] = {}
    lock = threading.Lock()

    def pick(row: PendingDelivery) -> PreparedMessage:
        vid = vmap.get(row.subscriber_id)
        if vid is None:
            with lock:
                if row.subscriber_id not in vmap:
                    vmap.update(state.variant_map(send.id))
            vid = vmap.get(row.subscriber_id)
        if vid is None or vid not in prepared:
            raise PublisherError(f"{send.key}: no digest variant recorded for delivery {row.id}")
        return prepared[vid]

    return Messages(pick, fingerprint_all(sorted(prepared.items())))


def _hand_over(
    settings: Settings,
    store: Store,
    workers: WorkerQueue | None,
    send: DigestSend,
    messages: Callable[[], Messages],
) -> Handed | None:
    """The send to the workers when they run (rendered only if jobs are written); None: drain it here."""
    return hand_planned(
        store,
        workers,
        send_id=send.id,
        key=send.key,
        kind="digest",
        date=send.created_at,
        batch_size=settings.scale.batch_size,
        secret=settings.secret_key(),
        message_fingerprint=lambda: messages().fingerprint,
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
    workers: WorkerQueue | None = None,
) -> None:
    """Drain every digest send with rows pending (this round's, and any left before), or hand it over."""
    for send in DigestState(store).unfinished():
        if stop is not None and stop.is_set():
            return
        messages = functools.cache(
            functools.partial(digest_messages, settings, store, send, renderers=renderers)
        )
        handed = _hand_over(settings, store, workers, send, messages)
        if handed is not None:
            report.handed.append(handed)
            continue
        inner = progress(send.key) if progress is not None else None
        check = stop_check(stop, inner) if stop is not None else inner
        result = drain(
            settings,
            store,
            send.id,
            messages().pick,
            clock=clock,
            progress=check,
            retry=retry,
            transports=transports(send.key) if transports is not None else None,
        )
        report.drains.append(result)
        if result.fatal is not None:
            log.error("digest %s stopped: %s", send.key, result.fatal.message)
            return  # the server is unusable now; the next round resumes
