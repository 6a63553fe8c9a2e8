"""The procrastinate App of ``publisher worker``: built from settings, never at import time.

Two tasks:

- ``publisher.send_batch(send_id, lo, hi, fingerprint, check, kind, date)``:
  one batch of a send of any kind (an issue, a digest, a welcome mail: see
  ``kinds``). The worker renders each send once (cached per send and date in
  this process), then drains the batch over its own SMTP pool, keeping to the
  account's rate together with every other worker.
- ``publisher.retry_stalled_jobs``: periodic. A worker killed mid-batch
  (``kill -9``, a lost machine) leaves its job ``doing`` for ever unless
  someone puts it back; this task, run by whichever worker is alive, retries
  the jobs of workers whose heartbeat stopped ``stalled_after`` seconds ago.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import make_url

from publisher.config import Settings
from publisher.deliver import RateLimiter, RetryPolicy, Transport, signer_for
from publisher.errors import PublisherError, StoreError
from publisher.ops.scaleout import Messages, secret_check
from publisher.store import SendInfo, Store, open_store
from publisher.worker.batch import Retryable, run_batch
from publisher.worker.kinds import RENDERERS
from publisher.worker.limiter import shared_limiter
from publisher.worker.queue import QUEUE, TASK_BATCH, TASK_STALLED

log = logging.getLogger("publisher.worker")

STALLED_AFTER = 30.0  # seconds without a heartbeat before a worker's jobs are retried
MAX_ATTEMPTS = 8  # tries of one batch job (temporary SMTP trouble) before it is left failed
CACHED_SENDS = 8  # rendered messages kept per worker process


class NotRetryable(PublisherError):
    """The job can never succeed as it is (other content or secret than the planner's)."""


def conninfo(url: str) -> str:
    """SQLAlchemy's ``postgresql+psycopg://…`` as the libpq URI psycopg and procrastinate take."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise StoreError(
            f"the worker queue needs PostgreSQL, not {parsed.get_backend_name()}",
            hint="set database.url to postgresql+psycopg://user@host/db",
        )
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class BatchRunner:
    """What one worker process keeps between jobs: the store, the shared limiter, rendered sends."""

    settings: Settings
    store: Store
    clock: Callable[[], datetime] = _now
    retry: RetryPolicy | None = None
    transports: Callable[[], Transport] | None = None
    limiter: RateLimiter | None = None
    _prepared: OrderedDict[tuple[str, str], Messages] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.limiter = self.limiter or shared_limiter(self.settings, self.store)
        self.signer = signer_for(self.settings)
        self.check = secret_check(self.settings.secret_key())

    def messages(self, send: SendInfo, kind: str, date: datetime, expected: str) -> Messages:
        """The send's rendered message(s), made once per process (and checked against the plan)."""
        render = RENDERERS.get(kind)
        if render is None:
            raise NotRetryable(
                f"{send.key}: this worker does not know mail of kind {kind[:40]!r}",
                hint="run the same publisher version on every worker as on the scheduler",
            )
        key = (send.key, date.isoformat())
        with self._lock:  # concurrent batches of one send render it once
            hit = self._prepared.get(key)
            if hit is None or hit.fingerprint != expected:  # not made yet, or the send changed since
                try:
                    hit = self._prepared[key] = render(self.settings, self.store, send, date)
                except PublisherError as exc:
                    raise NotRetryable(f"{send.key}: {exc.message}", hint=exc.hint) from exc
                while len(self._prepared) > CACHED_SENDS:
                    self._prepared.popitem(last=False)
            self._prepared.move_to_end(key)
        if hit.fingerprint != expected:
            raise NotRetryable(
                f"{send.key}: this worker renders a different message than the one planned "
                f"(issues, templates or sequences differ on this machine)",
                hint="deploy the same issues/, templates/ and sequences/ to every worker, then "
                "`publisher send` again (digests and welcome mails: the scheduler queues them again)",
            )
        return hit

    def __call__(
        self,
        send_id: int,
        lo: int,
        hi: int,
        fingerprint: str,
        check: str,
        kind: str = "issue",
        date: str | None = None,
    ) -> dict[str, int]:
        send = self.store.ledger.get_send_by_id(send_id)
        if send is None:
            log.info("send %s is gone; batch %s-%s skipped", send_id, lo, hi)
            return {"sent": 0}
        if check != self.check:
            raise NotRetryable(
                f"{send.key}: this worker's secret key is not the planner's",
                hint="set the same PUBLISHER_SECRET_KEY for every worker and the scheduler",
            )
        try:
            when = datetime.fromisoformat(date) if date else send.created_at
        except ValueError:
            raise NotRetryable(f"{send.key}: the job's date is not a date: {(date or '')[:40]!r}") from None
        messages = self.messages(send, kind, when, fingerprint)
        report = run_batch(
            self.settings,
            self.store,
            send,
            lo,
            hi,
            None,
            pick=messages.pick,
            clock=self.clock,
            limiter=self.limiter,
            signer=self.signer,
            retry=self.retry,
            transports=self.transports,
        )
        left = report.counts.pending
        log.info(
            "batch %s #%s-%s: sent %s, failed %s, skipped %s, pending %s in %.2fs",
            send.key,
            lo,
            hi,
            report.sent,
            report.failed,
            report.skipped,
            left,
            report.seconds,
        )
        if report.fatal is not None:
            raise Retryable(f"{send.key} #{lo}-{hi}: {report.fatal.message}", hint=report.fatal.hint)
        if left:
            raise Retryable(f"{send.key} #{lo}-{hi}: {left} still pending after temporary failures")
        return {"sent": report.sent, "failed": report.failed, "skipped": report.skipped}


def _retry_strategy() -> Any:
    from procrastinate.retry import (  # heavy; only `publisher worker` needs it
        BaseRetryStrategy,
        RetryDecision,
    )

    class BatchRetry(BaseRetryStrategy):
        """Back off and retry what may pass (SMTP trouble, a busy batch); never what cannot."""

        def get_retry_decision(self, *, exception: BaseException, job: Any) -> RetryDecision | None:
            if not isinstance(exception, Retryable) or job.attempts + 1 >= MAX_ATTEMPTS:
                return None
            return RetryDecision(retry_in={"seconds": min(300, 2 * 2**job.attempts)})

    return BatchRetry()


def build_app(
    settings: Settings,
    runner: Callable[..., dict[str, int]] | None = None,
    *,
    stalled_after: float = STALLED_AFTER,
) -> Any:
    """A procrastinate App on ``database.url`` with the batch task and the stalled-job retry.

    ``runner`` does the batch work (a BatchRunner; opened lazily when None, so
    an App built only to defer or inspect never opens a store).
    """
    from procrastinate import App, PsycopgConnector  # heavy; only `publisher worker` needs it

    app = App(connector=PsycopgConnector(conninfo=conninfo(settings.database.url)))
    lazy: dict[str, Any] = {}

    def work() -> Callable[..., dict[str, int]]:
        if runner is not None:
            return runner
        if "runner" not in lazy:
            lazy["runner"] = BatchRunner(settings, open_store(settings.database.url))
        return lazy["runner"]

    @app.task(name=TASK_BATCH, queue=QUEUE, retry=_retry_strategy())
    def send_batch(
        send_id: int,
        lo: int,
        hi: int,
        fingerprint: str,
        check: str,
        kind: str = "issue",
        date: str | None = None,
    ) -> dict[str, int]:
        return work()(send_id, lo, hi, fingerprint, check, kind, date)

    every = max(1, min(59, int(stalled_after / 2)))

    @app.periodic(cron=f"* * * * * */{every}")
    @app.task(name=TASK_STALLED, queue=QUEUE, queueing_lock=TASK_STALLED, priority=10)
    async def retry_stalled_jobs(timestamp: int) -> int:
        stalled = await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after)
        n = 0
        for job in stalled:
            log.warning("retrying job %s (%s) of a worker gone silent", job.id, job.queueing_lock)
            await app.job_manager.retry_job(job)
            n += 1
        return n

    return app


def run_worker(
    app: Any,
    *,
    concurrency: int = 1,
    stalled_after: float = STALLED_AFTER,
    name: str | None = None,
    wait: bool = True,
) -> None:
    """Run ``app``'s worker in the foreground until SIGINT/SIGTERM (or, with wait=False, an empty queue).

    ``stalled_after`` must be the App's: heartbeats go three times within it.
    """
    app.run_worker(
        queues=[QUEUE],
        concurrency=concurrency,
        name=name,
        wait=wait,
        fetch_job_polling_interval=1.0,  # a missed NOTIFY (worker still connecting) costs a second at most
        delete_jobs="successful",  # the ledger keeps the history; the queue keeps what is left
        update_heartbeat_interval=max(0.5, stalled_after / 3),
        stalled_worker_timeout=stalled_after,
        install_signal_handlers=wait,
    )
