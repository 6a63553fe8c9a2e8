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

Issues are planned and enqueued in one step (``hand_to_workers``). Every
other kind (digests, welcome mails, sequence steps) is planned by its own
code first, then handed over with ``hand_planned``: its pending rows go to
the same batch jobs, drained by the same ``send_batch`` task (same batch
locks, same stalled-job retry, same shared rate). What differs per kind is
only how a worker rebuilds the messages: one renderer function returning
``Messages`` (``worker.kinds.RENDERERS``), used by the in-process drain too.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from publisher.errors import PublisherError
from publisher.ops.drain import Personalisable
from publisher.render.email_mime import PreparedMessage
from publisher.store import PendingDelivery, SendInfo, Store
from publisher.store.jobs import live_workers


@dataclass(frozen=True)
class Enqueued:
    """What one fan-out did."""

    send: SendInfo
    created: bool  # this call wrote the plan
    jobs: int  # batch jobs this call put on the queue
    active: int  # batch jobs of this send already waiting or running before this call


@dataclass(frozen=True)
class Handed:
    """What ``hand_planned`` did with a send planned by its own code."""

    key: str
    jobs: int  # batch jobs put on the queue now (0: every pending row already has one)
    active: int  # batch jobs of this send waiting or running before this call
    queued: bool = True  # False: workers run but no queue was handed in; the scheduler enqueues it


@dataclass(frozen=True)
class Messages:
    """A send's rendered message(s): which one a row gets, and their fingerprint.

    One per send for issues and welcome mails; one per variant for digests.
    Made by the same function in the planner (for the fingerprint, or to drain
    in-process) and in the worker (to drain a batch), so both send alike.
    """

    pick: Callable[[PendingDelivery], Personalisable]
    fingerprint: str


def fingerprint_all(prepared: Iterable[tuple[object, PreparedMessage]]) -> str:
    """One fingerprint for several messages (a digest's variants), in the order given."""
    h = hashlib.sha256()
    for name, message in prepared:
        h.update(f"{name}={fingerprint(message)};".encode())
    return h.hexdigest()[:32]


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

    def enqueue_planned(
        self, store: Store, *, send_id: int, key: str, batch_size: int, args: Callable[[], dict[str, Any]]
    ) -> Handed:
        """Enqueue batch jobs for the pending rows of a planned send that no waiting or running job covers."""
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


def hand_planned(
    store: Store,
    workers: WorkerQueue | None,
    *,
    send_id: int,
    key: str,
    kind: str,
    date: datetime,
    batch_size: int,
    secret: bytes,
    message_fingerprint: Callable[[], str],
) -> Handed | None:
    """Give the pending rows of a send planned elsewhere (digest, welcome…) to the workers; None: drain here.

    With workers running, this process must not drain the send itself (it
    would race their batches), so without a queue handed in (the web app, a
    command run by hand) the rows are left for the scheduler, which enqueues
    them on its next tick. ``message_fingerprint()`` is called only when jobs are
    written; ``date`` goes into the job so the worker renders the same message.
    """
    live = workers.live_workers(store) if workers is not None else live_workers(store)
    if store.dialect != "postgresql" or not live:
        return None
    if workers is None:
        return Handed(key, 0, 0, queued=False)

    def args() -> dict[str, Any]:
        return {
            "fingerprint": message_fingerprint(),
            "check": secret_check(secret),
            "kind": kind,
            "date": date.isoformat(),
        }

    return workers.enqueue_planned(store, send_id=send_id, key=key, batch_size=batch_size, args=args)
