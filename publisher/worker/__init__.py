"""Scale-out: the same send path, drained by ``publisher worker`` processes through procrastinate.

With ``database.url`` on PostgreSQL the database holds subscribers, the ledger
and the job queue. Planning a send writes its ledger rows and one job per
batch of ``scale.batch_size`` recipients in one transaction (``queue``); any
number of workers on any number of machines run those jobs (``app``), each
claiming its batch (``batch``) and keeping to the account's sending rate
together with the others (``limiter``). The embedded default (SQLite, one
process) does not use this package.
"""

from publisher.store.jobs import (
    Enqueued,
    JobCounts,
    QueueStatus,
    active_jobs,
    fingerprint,
    live_workers,
    plan_and_enqueue,
    queue_status,
    secret_check,
)
from publisher.worker.app import BatchRunner, build_app, conninfo, run_worker
from publisher.worker.batch import BatchBusyError, Retryable, run_batch
from publisher.worker.limiter import SharedRateLimiter, shared_limiter

__all__ = [
    "BatchBusyError",
    "BatchRunner",
    "Enqueued",
    "JobCounts",
    "QueueStatus",
    "Retryable",
    "SharedRateLimiter",
    "active_jobs",
    "build_app",
    "conninfo",
    "fingerprint",
    "live_workers",
    "plan_and_enqueue",
    "queue_status",
    "run_batch",
    "run_worker",
    "secret_check",
    "shared_limiter",
]
