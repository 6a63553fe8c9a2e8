"""The welcome mail: planned in the ledger when someone is confirmed, then drained like any send.

Planning writes the subscriber's delivery row (``store.welcome``: once per
subscriber, ever) before any mail goes out; draining is ``ops.drain``'s, so a
row becomes ``sent`` only after the server's 250 and a crash between the two
loses nothing: :func:`catch_up_welcome`, run on each tick of `publisher run`,
drains whatever a web process or an import planned and did not finish. The
web app calls :func:`welcome_confirmed` after its response has gone out (as
``ops.confirm`` does for the confirmation mail), so it logs, never raises.

Two drains of one send never run at once (the send's lease): a confirmation
that finds another process sending the welcome mail waits a little for the
lease rather than leaving its row to the next tick. On PostgreSQL with
``publisher worker`` processes running, no process drains it: the scheduler's
tick hands the pending rows to the workers (``ops.scaleout.hand_planned``),
which render it with :func:`welcome_messages`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from publisher.config import Settings
from publisher.content.sequences import SequenceStep, load_welcome
from publisher.deliver import RetryPolicy, Transport
from publisher.errors import ContentError, PublisherError
from publisher.ops.drain import Clock, DrainReport, drain
from publisher.ops.queue import Stopped, stop_check
from publisher.ops.scaleout import Messages, WorkerQueue, fingerprint, hand_planned
from publisher.render.email_mime import PreparedMessage
from publisher.render.welcome import prepare_welcome
from publisher.store import PendingDelivery, SendBusyError, SendInfo, Store
from publisher.store.welcome import WelcomeLedger

log = logging.getLogger("publisher.welcome")
BUSY_WAIT = 30.0  # seconds a confirmation waits for another process's drain of the welcome send
BUSY_POLL = 0.5


@dataclass
class WelcomeReport:
    """What one call planned and sent (for the CLI and the logs)."""

    planned: int = 0  # rows added now (0: no welcome mail, or everyone had theirs)
    drains: list[DrainReport] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(r.sent for r in self.drains)

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.drains)


@dataclass(frozen=True)
class Sending:
    """How a drain sends (defaults: the configured transport and retries)."""

    stop: threading.Event | None = None
    retry: RetryPolicy | None = None
    transports: Callable[[], Transport] | None = None
    busy_wait: float = BUSY_WAIT
    workers: WorkerQueue | None = None  # the scale-out queue (the scheduler's)


def plan_welcome(
    settings: Settings,
    store: Store,
    *,
    now: datetime,
    subscriber_ids: Sequence[int] | None = None,
    confirmed_since: datetime | None = None,
) -> tuple[SequenceStep | None, int]:
    """Plan the welcome mail for these subscribers: (the step, rows added); (None, 0) without one.

    Raises ContentError (file:line) when the welcome file is unusable: nothing is planned then.
    """
    step = load_welcome(settings)
    if step is None:
        return None, 0
    _, added = WelcomeLedger(store).plan(
        step.key, now=now, subscriber_ids=subscriber_ids, confirmed_since=confirmed_since
    )
    return step, added


def send_welcome(
    settings: Settings,
    store: Store,
    *,
    clock: Clock,
    subscriber_ids: Sequence[int] | None = None,
    confirmed_since: datetime | None = None,
    sending: Sending | None = None,
) -> WelcomeReport:
    """Plan, then drain every welcome send with rows pending (the CLI's and the web's one call)."""
    step, added = plan_welcome(
        settings, store, now=clock(), subscriber_ids=subscriber_ids, confirmed_since=confirmed_since
    )
    report = WelcomeReport(planned=added)
    if step is not None:
        report.drains = drain_welcome(settings, store, step, clock=clock, sending=sending or Sending())
    return report


def drain_welcome(
    settings: Settings, store: Store, step: SequenceStep, *, clock: Clock, sending: Sending
) -> list[DrainReport]:
    """Drain the pending rows of the welcome sends; a send of an earlier (renamed) file waits, logged."""
    reports: list[DrainReport] = []
    prepared: PreparedMessage | None = None
    for send in WelcomeLedger(store).unfinished():
        if send.key != step.key:
            log.warning("%s has mail pending but its file is gone; it waits until the file is back", send.key)
            continue
        if _handed(settings, store, step, send, clock(), sending.workers):
            continue
        if prepared is None:
            prepared = step_message(settings, store, step, send_key=send.key, date=clock())
        result = drain_when_free(settings, store, send, prepared, clock=clock, sending=sending)
        if result is not None:
            reports.append(result)
            if result.fatal is not None:
                log.error("welcome mail %s stopped: %s", send.key, result.fatal.message)
    return reports


def step_message(
    settings: Settings, store: Store, step: SequenceStep, *, send_key: str, date: datetime
) -> PreparedMessage:
    """A welcome or sequence step's message, its counted links recorded for the send first.

    The redirect follows only links a send recorded (``store.clicks``), so they
    are written before any mail can carry them; recording is idempotent, so
    every drain, scheduler tick and worker may call this.
    """
    prepared = prepare_welcome(settings, step, send_key=send_key, date=date)
    if prepared.links is not None:
        store.clicks.record_links(send_key, prepared.links.urls, now=date)
    return prepared


def welcome_messages(
    settings: Settings, store: Store, send: SendInfo, date: datetime, *, step: SequenceStep | None = None
) -> Messages:
    """The welcome send's message dated ``date``: what a worker renders for a batch (kind "welcome")."""
    step = step or load_welcome(settings)
    if step is None or step.key != send.key:
        raise PublisherError(f"{send.key}: this machine's sequences/welcome/ has no such welcome mail")
    prepared = step_message(settings, store, step, send_key=send.key, date=date)
    return Messages(lambda _row: prepared, fingerprint(prepared))


def _handed(
    settings: Settings,
    store: Store,
    step: SequenceStep,
    send: SendInfo,
    now: datetime,
    workers: WorkerQueue | None,
) -> bool:
    """With workers running (PostgreSQL) they send it: queued now, or at the scheduler's next tick."""
    handed = hand_planned(
        store,
        workers,
        send_id=send.id,
        key=send.key,
        kind="welcome",
        date=now,
        batch_size=settings.scale.batch_size,
        secret=settings.secret_key(),
        message_fingerprint=lambda: welcome_messages(settings, store, send, now, step=step).fingerprint,
    )
    if handed is None:
        return False
    if handed.jobs:
        log.info("welcome mail %s: %d batch job(s) queued for the workers", send.key, handed.jobs)
    elif not handed.queued:
        log.info("welcome mail %s: the workers send it once the scheduler queues it", send.key)
    return True


def drain_when_free(
    settings: Settings,
    store: Store,
    send: SendInfo,
    prepared: PreparedMessage,
    *,
    clock: Clock,
    sending: Sending,
) -> DrainReport | None:
    """Drain a one-message send (welcome, sequence step); while another drain holds it, wait and retry.

    None when it was still busy after ``sending.busy_wait`` seconds: that drain, or the next
    scheduler tick, sends its rows.
    """

    def prepared_for(row: PendingDelivery) -> PreparedMessage:
        return prepared

    stop = sending.stop or threading.Event()
    waited = 0.0
    while True:
        try:
            return drain(
                settings,
                store,
                send.id,
                prepared_for,
                clock=clock,
                progress=stop_check(stop),
                retry=sending.retry,
                transports=sending.transports,
            )
        except SendBusyError as busy:
            if waited >= sending.busy_wait or stop.wait(BUSY_POLL):
                log.info("%s; its rows are sent by that drain or the next scheduler tick", busy.message)
                return None
            waited += BUSY_POLL


def welcome_confirmed(
    settings: Settings, store: Store, subscriber_id: int, *, clock: Clock, stop: threading.Event
) -> None:
    """After a confirmation's response: plan and send their welcome mail; log, never raise."""
    try:
        report = send_welcome(
            settings, store, clock=clock, subscriber_ids=[subscriber_id], sending=Sending(stop=stop)
        )
    except ContentError as exc:
        log.error("welcome mail not sent: %s: %s", exc.message, "; ".join(exc.lines()))
        return
    except PublisherError as exc:
        log.error("welcome mail not sent: %s", exc.message)
        return
    except Stopped:
        log.info("welcome mail: stopped; the next scheduler tick sends what is left")
        return
    except Exception:  # runs after the response: a bug here must be logged, not lost
        log.exception("welcome mail for subscriber %d not sent", subscriber_id)
        return
    if report.planned or report.sent:
        log.info("welcome mail: %d planned, %d sent", report.planned, report.sent)


def catch_up_welcome(
    settings: Settings,
    store: Store,
    *,
    clock: Clock,
    stop: threading.Event | None = None,
    workers: WorkerQueue | None = None,
) -> list[DrainReport]:
    """The scheduler's tick: drain welcome rows planned and left pending (a crash, a busy lease).

    Raises what a drain raises (Stopped, PublisherError): the scheduler's loop logs them.
    """
    unfinished = WelcomeLedger(store).unfinished()
    if not unfinished:
        return []
    try:
        step = load_welcome(settings)
    except ContentError as exc:  # said with its file:line, each tick, until fixed
        log.error("welcome mail waits: %s", "; ".join(exc.lines()))
        return []
    if step is None:
        log.warning("welcome mail pending for %s but sequences/welcome/ is gone", unfinished[0].key)
        return []
    sending = Sending(stop=stop, busy_wait=0, workers=workers)
    reports = drain_welcome(settings, store, step, clock=clock, sending=sending)
    for r in reports:
        log.info("welcome mail %s: %d sent, %d failed, %d pending", r.key, r.sent, r.failed, r.counts.pending)
    return reports
