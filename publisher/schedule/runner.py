"""`publisher run`: the one long-running process that sends queued issues and digests on time.

The loop is plain: reconcile (content and queue table -> wake-ups), send what
is due, run the digest rounds when their check is due, then wait for a wake-up
(APScheduler at an issue's exact time or the digest interval) or the poll
interval, whichever comes first. All work happens on this one thread, so a
stop (SIGTERM/SIGINT) is a flag: a send in progress records what its
connections had in flight and gives its lease back (rows become ``sent`` only
after the server's 250), the scheduler lease is released, and the next start
resumes from the tables.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from publisher.config import Settings
from publisher.content import signature as content_files_signature
from publisher.errors import Problem, PublisherError
from publisher.models import Library
from publisher.ops.clicks import prune_clicks
from publisher.ops.digest import FREQUENCIES, run_digest
from publisher.ops.opens import prune_opens
from publisher.ops.queue import (
    Stopped,
    list_queue,
    load_tolerant,
    reconcile_front_matter,
    send_due,
)
from publisher.ops.scaleout import WorkerQueue
from publisher.ops.sequences import run_sequences
from publisher.ops.sunset import sunset_tick
from publisher.ops.welcome import Sending, catch_up_welcome
from publisher.schedule.apscheduler_adapter import Wakeups
from publisher.schedule.guard import RunGuard
from publisher.schedule.web import WebServer, start_web
from publisher.store import Store

log = logging.getLogger("publisher.run")
POLL_SECONDS = 5.0  # content and queue changes are picked up at least this often
DIGEST_SECONDS = 60.0  # how often the digest planner looks for subscribers whose time has come
PRUNE_EVERY = 3600.0  # seconds between deletions of raw click and open events past analytics.retention


def utc_now() -> datetime:
    return datetime.now(UTC)


def jobstore_url(settings: Settings) -> str:
    """The job store: its own SQLite file under paths.state, or a table beside ours in PostgreSQL."""
    if settings.database.url.startswith("postgresql"):
        return settings.database.url
    return f"sqlite:///{settings.paths.state / 'scheduler-jobs.sqlite'}"


@dataclass
class RunOptions:
    poll: float = POLL_SECONDS
    digest_every: float = DIGEST_SECONDS
    web: bool = True
    digests: bool = True
    sequences: bool = True  # sequence rounds, checked as often as digests (``digest_every``)
    workers: WorkerQueue | None = None  # the scale-out queue (the CLI hands in ``worker.JobQueue``)


@dataclass
class _State:
    signature: tuple[tuple[str, int, int], ...] | None = None
    library: Library = field(default_factory=Library)
    broken: dict[str, list[Problem]] = field(default_factory=dict)
    last_digest: float = float("-inf")
    last_sequences: float = float("-inf")
    last_prune: float = float("-inf")
    reported_late: set[str] = field(default_factory=set)  # "zone period" already logged as skipped


class Runner:
    """Holds the pieces of one `publisher run`; :meth:`run` blocks until stopped."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Callable[[], datetime] = utc_now,
        options: RunOptions | None = None,
    ) -> None:
        self.settings, self.store, self.clock = settings, store, clock
        self.options = options or RunOptions()
        self.stop = threading.Event()
        self.wake: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self.guard = RunGuard(settings, store, clock)
        self.wakeups = Wakeups(jobstore_url(settings), lambda kind, arg: self.wake.put((kind, arg)))
        self.state = _State()
        self.up_since = clock()
        self.web: WebServer | None = None

    # -- life cycle -------------------------------------------------------------------------------
    def run(self) -> None:
        """Refuse if another run holds the database; otherwise serve until stopped."""
        self.guard.acquire()  # AlreadyRunningError, with who and since when
        self.up_since = self.clock()
        try:
            self.wakeups.start()
            self.wakeups.every(self.options.digest_every)
            self._reconcile(startup=True)
            self.wakeups.resume()
            if self.options.web:
                self.web = start_web(self.settings, self.options.workers)
            log.info(
                "publisher run: up (pid lease %s); %d issue(s) queued; digests checked every %gs%s",
                self.guard.owner,
                len(list_queue(self.store, ("queued",))),
                self.options.digest_every,
                f"; web on {self.web.url}" if self.web else "",
            )
            self._loop()
        finally:
            self._shutdown()

    def request_stop(self, *_: Any) -> None:
        if not self.stop.is_set():
            log.info("stopping: finishing the message(s) in flight, then giving the send back")
        self.stop.set()
        self.wake.put(("stop", ""))

    def install_signals(self) -> None:
        """SIGTERM/SIGINT ask for a clean stop (main thread only; a second ^C is the usual interrupt)."""
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, frame: Any) -> None:
            if self.stop.is_set() and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.request_stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _shutdown(self) -> None:
        self.wakeups.shutdown()
        if self.web is not None:
            self.web.stop()
        self.guard.release()
        log.info("publisher run: stopped")

    # -- the loop ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self.stop.is_set():
            if self.guard.lost.is_set():
                raise PublisherError(
                    "lost the scheduler lease to another process; stopped to avoid double sends"
                )
            try:
                self._cycle()
            except Stopped:
                break
            except PublisherError as exc:
                log.error("%s%s", exc.message, f" ({exc.hint})" if exc.hint else "")
            except Exception:  # keep the scheduler alive; the tables say what is left to do
                log.exception("unexpected error in the scheduler loop; retrying at the next wake-up")
            self._wait()

    def _wait(self) -> None:
        try:
            self.wake.get(timeout=self.options.poll)
        except queue.Empty:
            return
        while True:  # several wake-ups at once are one cycle
            try:
                self.wake.get_nowait()
            except queue.Empty:
                return

    def _cycle(self) -> None:
        self._reconcile()
        catch_up_welcome(  # after a crash; with workers running, they send it
            self.settings, self.store, clock=self.clock, stop=self.stop, workers=self.options.workers
        )
        self._sequences()  # plan the steps come due, then send them (each ``digest_every``)
        sunset_tick(self.settings, self.store, clock=self.clock)  # per-subscriber analytics: ask, then pause
        self._prune()
        for event in send_due(
            self.settings,
            self.store,
            clock=self.clock,
            up_since=self.up_since,
            stop=self.stop,
            workers=self.options.workers,
        ):  # send_due only reports: each event (its lateness included) is logged here, once
            (log.warning if event.action in ("missed", "failed", "partial") else log.info)(
                "%s %s: %s", event.action, event.slug, event.message
            )
        if (
            self.options.digests
            and time.monotonic() - self.state.last_digest >= self.options.digest_every - 0.5
        ):
            self.state.last_digest = time.monotonic()
            for frequency in FREQUENCIES:
                if self.stop.is_set():
                    return
                report = run_digest(
                    self.settings,
                    self.store,
                    frequency,
                    clock=self.clock,
                    up_since=self.up_since,
                    library=self.state.library,
                    stop=self.stop,
                    workers=self.options.workers,
                )
                late = [z for z in report.too_late if z not in self.state.reported_late]
                self.state.reported_late.update(late)
                queued = sum(h.jobs for h in report.handed)
                if queued:
                    log.info("%s digests: %d batch job(s) queued for the workers", frequency, queued)
                if report.due or report.sent or late:
                    log.info(
                        "%s digests: %d due, %d sent, %d with nothing new%s",
                        frequency,
                        report.due,
                        report.sent,
                        report.quiet,
                        f"; skipped, their time passed while down: {', '.join(late)}" if late else "",
                    )

    def _prune(self) -> None:
        """Delete raw click and open events past ``analytics.retention``, hourly (the rollups stay)."""
        if time.monotonic() - self.state.last_prune < PRUNE_EVERY:
            return
        self.state.last_prune = time.monotonic()
        now = self.clock()
        gone = prune_clicks(self.settings, self.store, now) + prune_opens(self.settings, self.store, now)
        if gone:
            days = self.settings.analytics.retention.days
            log.info("analytics: deleted %d raw event(s) older than %d days", gone, days)

    def _sequences(self) -> None:
        """A sequence round when due: plan the steps come due in open windows, then drain them here."""
        if not self.options.sequences or self.stop.is_set():
            return
        if time.monotonic() - self.state.last_sequences < self.options.digest_every - 0.5:
            return
        self.state.last_sequences = time.monotonic()
        report = run_sequences(
            self.settings,
            self.store,
            clock=self.clock,
            up_since=self.up_since,
            sending=Sending(stop=self.stop, busy_wait=0, workers=self.options.workers),
        )
        if report.planned or report.drains or report.ended:
            log.info(
                "sequences: %d planned, %d sent, %d membership(s) ended (left the list)",
                sum(report.planned.values()),
                report.sent,
                report.ended,
            )

    def _reconcile(self, *, startup: bool = False) -> None:
        """Content changed? Re-read it and apply send_at. Then make the wake-ups match the queue table."""
        signature = content_files_signature(self.settings.paths.issues)
        if signature != self.state.signature:
            library, broken = load_tolerant(self.settings)
            self.state.signature, self.state.library, self.state.broken = signature, library, broken
            for slug, problems in sorted(broken.items()):
                log.warning(
                    "issue %s has problems and is left as it is: %s", slug, problems[0] if problems else ""
                )
            for line in reconcile_front_matter(self.settings, self.store, library, broken, now=self.clock()):
                log.info("%s", line)
        wanted = {q.slug: q.send_at for q in list_queue(self.store, ("queued",))}
        added, removed = self.wakeups.sync_issues(wanted)
        if startup or added or removed:
            log.info("wake-ups: %d queued issue(s) (%d set, %d dropped)", len(wanted), added, removed)


def run_scheduler(settings: Settings, store: Store, *, options: RunOptions | None = None) -> None:
    """Entry point for the CLI: signals, then :meth:`Runner.run`."""
    runner = Runner(settings, store, options=options)
    runner.install_signals()
    runner.run()
