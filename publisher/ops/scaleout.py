"""Handing a send to ``publisher worker`` processes: the queue sending needs, and when to use it.

The choice is automatic, with no config key: on PostgreSQL, when at least one
``publisher worker`` has a recent heartbeat, the send goes to the workers;
with none running it is sent in-process as before (so a send never waits in a
queue nobody drains). ``publisher send --local`` forces the in-process path,
and is refused while running workers still hold jobs of that send, so the two
never send the same rows (workers that start later find the in-process send's
lease and wait for it).

``ops`` sits below ``worker/``, so it never imports it: it declares the small
``WorkerQueue`` it needs, and the edge (the CLI, the scheduler) hands in the
real one, ``worker.JobQueue``. The planner and the workers agree on the
message and the secret through ``fingerprint`` and ``secret_check``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from publisher.errors import PublisherError
from publisher.render.email_mime import PreparedMessage
from publisher.store import SendInfo, Store


@dataclass(frozen=True)
class Enqueued:
    """What one fan-out did."""

    send: SendInfo
    created: bool  # this call wrote the plan
    jobs: int  # batch jobs this call put on the queue
    active: int  # batch jobs of this send already waiting or running before this call


class WorkerQueue(Protocol):
    """What sending needs from the workers' job queue."""

    def live_workers(self, store: Store) -> int:
        """Workers with a recent heartbeat (0 on SQLite)."""
        ...

    def active_jobs(self, store: Store, send_id: int) -> int:
        """Batch jobs of ``send_id`` waiting or running."""
        ...

    def plan_and_enqueue(
        self,
        store: Store,
        *,
        kind: str,
        key: str,
        now: datetime,
        batch_size: int,
        args: Callable[[SendInfo], dict[str, Any]],
        issue_slug: str | None = None,
    ) -> Enqueued:
        """Plan ``key`` (if new) and enqueue its batch jobs in one transaction."""
        ...


def fingerprint(prepared: PreparedMessage) -> str:
    """A digest of a rendered message (slots included, not filled): planner and workers must agree.

    Workers render the issue themselves from their own copy of the project;
    if that copy differs from the planner's (an edited issue, other
    templates), their mail would differ from what was planned. The job
    carries the planner's fingerprint and a worker refuses a mismatch.
    """
    h = hashlib.sha256()
    for chunk in prepared.chunks:
        h.update(chunk if isinstance(chunk, bytes) else b"\0slot:" + chunk.encode() + b"\0")
    return h.hexdigest()[:32]


def secret_check(secret: bytes) -> str:
    """A tag of the signing secret (not the secret): a worker with another key refuses the job.

    Message-IDs and unsubscribe links are signed with the secret; a worker on a
    machine without PUBLISHER_SECRET_KEY would sign with its own generated key
    and send links that do not work.
    """
    return hmac.new(secret, b"publisher.worker.check", hashlib.sha256).hexdigest()[:16]


def hand_to_workers(
    store: Store,
    workers: WorkerQueue,
    *,
    key: str,
    slug: str,
    now: datetime,
    batch_size: int,
    secret: bytes,
    prepared_for: Callable[[datetime], PreparedMessage],
    local: bool,
    existing: SendInfo | None,
) -> Enqueued | None:
    """Plan issue ``slug`` and enqueue its batches in one transaction; None: send in this process.

    ``prepared_for(date)``: the message rendered for the send's date (the
    existing send's, else now; a send planned a moment earlier keeps its own).
    """
    live = workers.live_workers(store)
    if local or not live:
        # In-process. Workers that come back later find the send's lease taken and wait;
        # while workers run and hold jobs of this send, sending here too would double up.
        left = workers.active_jobs(store, existing.id) if existing is not None and live else 0
        if left:
            raise PublisherError(
                f"{key} is being sent by the workers ({left} batch job(s) left)",
                hint="`publisher status` shows their progress; --local is for when no worker runs",
            )
        return None

    def args(send: SendInfo) -> dict[str, str]:
        return {"fingerprint": fingerprint(prepared_for(send.created_at)), "check": secret_check(secret)}

    return workers.plan_and_enqueue(
        store, kind="issue", key=key, now=now, issue_slug=slug, batch_size=batch_size, args=args
    )
