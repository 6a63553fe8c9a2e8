"""``send_issue``'s scale-out path: when workers run, plan + enqueue instead of draining here.

The choice is automatic, with no config key: on PostgreSQL, when at least one
``publisher worker`` has a recent heartbeat, the send goes to the workers;
with none running it is sent in-process as before (so a send never waits in a
queue nobody drains). ``publisher send --local`` forces the in-process path,
and is refused while running workers still hold jobs of that send, so the two
never send the same rows (workers that start later find the in-process send's
lease and wait for it).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from publisher.config import Settings
from publisher.errors import PublisherError
from publisher.models import Issue
from publisher.ops.send import SendOutcome, issue_key
from publisher.store import SendInfo, Store
from publisher.store.jobs import active_jobs, fingerprint, live_workers, plan_and_enqueue, secret_check

if TYPE_CHECKING:
    from publisher.render.email_mime import PreparedMessage


def queue_for_workers(
    settings: Settings,
    store: Store,
    issue: Issue,
    where: str,
    now: datetime,
    date: datetime,
    prepared: PreparedMessage,
    local: bool,
    existing: SendInfo | None,
) -> SendOutcome | None:
    """Plan ``issue`` and enqueue its batches in one transaction; None: send in this process.

    ``prepared`` was rendered for ``date`` (the existing send's, else now).
    """
    from publisher.render.email import prepare_issue_email

    key = issue_key(issue.slug)
    workers = live_workers(store)
    if local or not workers:
        # In-process. Workers that come back later find the send's lease taken and wait;
        # while workers run and hold jobs of this send, sending here too would double up.
        left = active_jobs(store, existing.id) if existing is not None and workers else 0
        if left:
            raise PublisherError(
                f"{key} is being sent by the workers ({left} batch job(s) left)",
                hint="`publisher status` shows their progress; --local is for when no worker runs",
            )
        return None

    def args(send: SendInfo) -> dict[str, str]:
        message = prepared
        if send.created_at != date:  # another process planned it first: its date is in the mail
            message = prepare_issue_email(settings, issue, send_key=key, date=send.created_at)
        return {"fingerprint": fingerprint(message), "check": secret_check(settings.secret_key())}

    queued = plan_and_enqueue(
        store,
        kind="issue",
        key=key,
        now=now,
        issue_slug=issue.slug,
        batch_size=settings.scale.batch_size,
        args=args,
    )
    pending = store.ledger.counts(queued.send.id).pending
    action = "queued" if queued.jobs else "already-queued" if queued.active else "nothing-to-send"
    if action == "nothing-to-send":
        store.ledger.close_if_done(queued.send.id, now=now)
    return SendOutcome(
        key,
        action,
        where,
        planned=queued.send.planned,
        to_send=pending,
        created=queued.created,
        warnings=prepared.warnings,
        jobs=queued.jobs or queued.active,
    )
