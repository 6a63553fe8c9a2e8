"""Scale-out: the same send path, drained by ``publisher worker`` processes through procrastinate.

With ``database.url`` on PostgreSQL the database holds subscribers, the ledger
and the job queue. Planning a send writes its ledger rows and one job per
batch of ``scale.batch_size`` recipients in one transaction (``queue``); any
number of workers on any number of machines run those jobs (``app``), each
claiming its batch and draining it with ``ops.drain`` (``batch``), keeping to
the account's sending rate together with the others (``limiter``). The embedded default (SQLite, one
process) does not use this package.
"""

from publisher.ops.scaleout import Enqueued, fingerprint, secret_check
from publisher.store.jobs import live_workers
from publisher.worker.app import BatchRunner, build_app, conninfo, run_worker
from publisher.worker.batch import BatchBusyError, BatchClaim, Retryable, run_batch
from publisher.worker.limiter import SharedRateLimiter, shared_limiter
from publisher.worker.queue import (
    JobCounts,
    JobQueue,
    QueueStatus,
    active_jobs,
    plan_and_enqueue,
    queue_status,
)

__all__ = [
    "BatchBusyError",
    "BatchClaim",
    "BatchRunner",
    "Enqueued",
    "JobCounts",
    "JobQueue",
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
