"""Every APScheduler call in publisher lives here, so moving to APScheduler 4 stays local.

APScheduler only *wakes the runner up*; what is due is decided from our
tables. That is deliberate, because of how 3.x behaves (checked against 3.11):

- a one-shot (date) job missed by more than ``misfire_grace_time`` is removed
  without running. We set ``misfire_grace_time=None`` (always run, however
  late) and the runner applies its own ``schedule.max_lateness`` from the
  queue table, so a job lost or deleted can never lose an issue;
- ``coalesce=True``: several missed run times of one job fire once;
- two schedulers on one job store both fire: ``publisher run`` refuses to
  start twice (see ``guard``);
- ``CronTrigger`` with zoneinfo has had DST bugs (a repeated hour fires twice;
  3.11 issue #1021 loops at a boundary). We use no cron trigger: digests are
  checked on a UTC interval and the period is computed in each subscriber's
  zone by ``ops.digest.periods``; issue wake-ups are date triggers in UTC.

The job store is persistent (its own SQLite file under ``paths.state``, or a
table in the PostgreSQL database) as asked, but it is rebuilt from our
tables on every start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

Sink = Callable[[str, str], None]  # (kind, argument): "issue", slug | "digests", ""

ISSUE_PREFIX = "issue:"
DIGESTS = "digests"
JOB_TABLE = "publisher_scheduler_jobs"
_FIRE = "publisher.schedule.apscheduler_adapter:fire"

_sink: Sink | None = None
_sink_lock = threading.Lock()
log = logging.getLogger("publisher.schedule")


def fire(kind: str, arg: str) -> None:
    """The job function (referenced by name so the persistent store can reload it): pass the wake-up on."""
    with _sink_lock:
        sink = _sink
    if sink is not None:
        sink(kind, arg)


class Wakeups:
    """A background APScheduler that calls ``sink(kind, arg)`` at given instants and on an interval."""

    def __init__(
        self, jobstore_url: str, sink: Sink, *, engine_options: dict[str, object] | None = None
    ) -> None:
        self._url = jobstore_url
        self._sink = sink
        self._engine_options = engine_options or {}
        self._scheduler: BackgroundScheduler | None = None

    def start(self) -> None:
        """Start paused: the caller syncs the jobs from its tables, then calls :meth:`resume`."""
        global _sink
        with _sink_lock:
            _sink = self._sink
        store = SQLAlchemyJobStore(url=self._url, tablename=JOB_TABLE, engine_options=self._engine_options)
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            jobstores={"default": store},
            executors={"default": ThreadPoolExecutor(max_workers=1)},  # the job only enqueues
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._scheduler.start(paused=True)

    def resume(self) -> None:
        self._sched().resume()

    def _sched(self) -> BackgroundScheduler:
        if self._scheduler is None:
            raise RuntimeError("Wakeups.start() first")
        return self._scheduler

    def issue_jobs(self) -> dict[str, datetime | None]:
        """slug -> next wake-up of every issue job in the store."""
        return {
            job.id[len(ISSUE_PREFIX) :]: job.next_run_time
            for job in self._sched().get_jobs()
            if job.id.startswith(ISSUE_PREFIX)
        }

    def sync_issues(self, wanted: dict[str, datetime]) -> tuple[int, int]:
        """Make the issue wake-ups exactly ``wanted`` (slug -> aware instant); (added or moved, removed)."""
        sched = self._sched()
        have = self.issue_jobs()
        changed = removed = 0
        due = datetime.now(UTC) + timedelta(seconds=1)
        for slug in set(have) - set(wanted):
            when = have[slug]
            if when is not None and when <= due:
                # APScheduler's own thread is about to run it and then remove it: removing it here
                # too makes that thread raise JobLookupError and die. The job finds the queue
                # row settled and does nothing.
                continue
            try:
                sched.remove_job(ISSUE_PREFIX + slug)
            except JobLookupError:  # it ran and went in the meantime
                continue
            removed += 1
        for slug, at in wanted.items():
            at = at.astimezone(UTC)
            current = have.get(slug)
            if current is not None and current.astimezone(UTC) == at:
                continue
            sched.add_job(
                _FIRE,
                trigger=DateTrigger(run_date=at, timezone=UTC),
                args=("issue", slug),
                id=ISSUE_PREFIX + slug,
                name=f"send queued issue {slug}",
                replace_existing=True,
            )
            changed += 1
        return changed, removed

    def every(self, seconds: float, kind: str = DIGESTS) -> None:
        """Wake ``sink(kind, "")`` every ``seconds`` (UTC interval: no DST in it)."""
        self._sched().add_job(
            _FIRE,
            trigger=IntervalTrigger(seconds=seconds, timezone=UTC),
            args=(kind, ""),
            id=kind,
            name=f"check {kind}",
            replace_existing=True,
        )

    def shutdown(self) -> None:
        """Stop waking anyone; running jobs only enqueue, so there is nothing to wait for."""
        global _sink
        with _sink_lock:
            if _sink is self._sink:
                _sink = None
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._scheduler = None
