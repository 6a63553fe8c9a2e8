"""Sending an issue: plan it in the ledger, render it once, drain it over the pool.

The drain itself lives in ``ops.drain`` (digests and workers share it), the
hand-over to ``publisher worker`` processes in ``ops.scaleout``; the names
other modules import from here are re-exported below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from publisher.config import Settings
from publisher.content import load_issue
from publisher.deliver import (
    Envelope,
    FatalDeliveryError,
    RetryPolicy,
    Status,
    Transport,
    describe_transport,
    send_one,
    signer_for,
    transport_factory,
)
from publisher.errors import PublisherError
from publisher.ops.drain import (
    CHUNK,
    LEASE_TTL,
    Clock,
    Drainer,
    DrainReport,
    Personalisable,
    Progress,
    drain,
    envelope_sender,
)
from publisher.ops.feedback import hasher_for
from publisher.ops.scaleout import Enqueued, WorkerQueue, hand_to_workers
from publisher.ops.subject_test import TestOutcome, run_subject_test
from publisher.render.email import prepare_issue_email
from publisher.render.email_mime import PreparedMessage, make_recipient
from publisher.store import Queue, Store
from publisher.store.values import normalise_email

__all__ = [
    "CHUNK",
    "LEASE_TTL",
    "Clock",
    "DrainReport",
    "Drainer",
    "Personalisable",
    "Progress",
    "SendOutcome",
    "Settlement",
    "WorkerQueue",
    "drain",
    "envelope_sender",
    "issue_key",
    "send_issue",
    "send_test_copy",
    "settlement",
]

# A send by hand settles a queue row left waiting, missed or failed; a row in
# ``sending`` belongs to the scheduler, which settles it itself.
SETTLES = ("queued", "missed", "failed")


# -- issue sends ---------------------------------------------------------------------------------------


def issue_key(slug: str) -> str:
    return f"issue:{slug}"


@dataclass
class SendOutcome:
    """What ``send_issue`` did, for the CLI to word."""

    key: str
    action: str  # "sent" | "already-sent" | "dry-run" | "nothing-to-send" | "queued" | "already-queued"
    transport: str
    planned: int = 0  # rows in the plan
    to_send: int = 0  # rows pending before this run (dry run: that would be sent now)
    created: bool = False  # this run wrote the plan
    drain: DrainReport | None = None
    warnings: tuple[str, ...] = ()
    jobs: int = 0  # "queued": batch jobs put on the workers' queue; "already-queued": jobs left
    waits_until: datetime | None = None  # "waiting": a subject test's sample is out, the rest goes then
    note: str = ""  # a subject test's state, in words


def send_issue(
    settings: Settings,
    store: Store,
    slug: str,
    *,
    clock: Clock,
    dry_run: bool = False,
    progress: Progress | None = None,
    retry: RetryPolicy | None = None,
    local: bool = False,
    workers: WorkerQueue | None = None,
) -> SendOutcome:
    """Send issue ``slug`` to every confirmed instant subscriber, once.

    Safe to re-run: an issue already sent is left alone, and after a crash only
    rows not yet accepted are sent. On PostgreSQL with ``publisher worker``
    processes running and their queue handed in (``workers``), the plan and one
    job per batch are written instead and the workers send (unless ``local``:
    drain in this process; see ``ops.scaleout``). The issue's
    queue row (if any) is settled as the scheduler's send would settle it, so
    `publisher status` does not go on showing a sent issue as queued.
    """
    outcome = _send_issue(settings, store, slug, clock, dry_run, progress, retry, local, workers)
    if not dry_run and outcome.waits_until is None:  # a waiting subject test re-queued itself
        settled = settlement(outcome)
        Queue(store).set_status(slug, settled.status, now=clock(), note=settled.note, expect=SETTLES)
    return outcome


def _send_issue(
    settings: Settings,
    store: Store,
    slug: str,
    clock: Clock,
    dry_run: bool,
    progress: Progress | None,
    retry: RetryPolicy | None,
    local: bool,
    workers: WorkerQueue | None,
) -> SendOutcome:
    issue = load_issue(settings, slug)
    if issue.draft:
        raise PublisherError(
            f"{slug} is a draft; drafts are never sent", hint="remove `draft: true` to send it"
        )
    key = issue_key(slug)
    where = describe_transport(settings, key)
    test = run_subject_test(
        settings, store, issue, clock=clock, dry_run=dry_run, progress=progress, retry=retry
    )
    if test is not None:  # a subject test: the sample, the decision, then the rest (ops.subject_test)
        return _test_outcome(test, where)
    existing = store.ledger.get_send(key)
    if existing is not None:
        counts = store.ledger.counts(existing.id)
        if counts.pending == 0:
            return SendOutcome(key, "already-sent", where, planned=counts.planned)
    now = clock()
    date = existing.created_at if existing else now
    prepared = prepare_issue_email(settings, issue, send_key=key, date=date)

    def prepared_for(when: datetime) -> PreparedMessage:
        """The message for the send's date: another process may have planned it a moment earlier."""
        return prepared if when == date else prepare_issue_email(settings, issue, send_key=key, date=when)

    if dry_run:
        to_send = store.ledger.counts(existing.id).pending if existing else store.ledger.audience_size()
        return SendOutcome(key, "dry-run", where, to_send=to_send, warnings=prepared.warnings)
    if prepared.links is not None:  # before any mail goes out: /r/ redirects only to recorded links
        store.clicks.record_links(key, prepared.links.urls, now=now)
    if store.dialect == "postgresql" and workers is not None:  # scale-out: the workers send, if any run
        queued = hand_to_workers(
            store,
            workers,
            key=key,
            slug=slug,
            now=now,
            batch_size=settings.scale.batch_size,
            secret=settings.secret_key(),
            prepared_for=prepared_for,
            local=local,
            existing=existing,
        )
        if queued is not None:
            return _queued_outcome(store, queued, where, now, prepared.warnings)
    return _send_here(settings, store, slug, where, now, prepared_for, clock, progress, retry)


def _send_here(
    settings: Settings,
    store: Store,
    slug: str,
    where: str,
    now: datetime,
    prepared_for: Callable[[datetime], PreparedMessage],
    clock: Clock,
    progress: Progress | None,
    retry: RetryPolicy | None,
) -> SendOutcome:
    """Plan the send (if new) and drain it in this process."""
    key = issue_key(slug)
    plan = store.ledger.plan_send("issue", key, now=now, issue_slug=slug)
    message = prepared_for(plan.send.created_at)
    to_send = store.ledger.counts(plan.send.id).pending
    outcome = SendOutcome(
        key,
        "sent",
        where,
        planned=plan.send.planned,
        to_send=to_send,
        created=plan.created,
        warnings=message.warnings,
    )
    if to_send == 0:  # everyone planned has been dealt with (e.g. all failed or left)
        store.ledger.close_if_done(plan.send.id, now=now)
        outcome.action = "nothing-to-send"
        return outcome
    outcome.drain = drain(
        settings, store, plan.send.id, lambda _row: message, clock=clock, progress=progress, retry=retry
    )
    return outcome


def _queued_outcome(
    store: Store, queued: Enqueued, where: str, now: datetime, warnings: tuple[str, ...]
) -> SendOutcome:
    """What a hand-over to the workers did, worded as ``send_issue``'s outcome."""
    send = queued.send
    pending = store.ledger.counts(send.id).pending
    action = "queued" if queued.jobs else "already-queued" if queued.active else "nothing-to-send"
    if action == "nothing-to-send":
        store.ledger.close_if_done(send.id, now=now)
    return SendOutcome(
        send.key,
        action,
        where,
        planned=send.planned,
        to_send=pending,
        created=queued.created,
        warnings=warnings,
        jobs=queued.jobs or queued.active,
    )


def _test_outcome(test: TestOutcome, where: str) -> SendOutcome:
    """A subject test's step worded as ``send_issue``'s outcome."""
    if test.stage in ("waiting", "dry-run"):
        waits = test.record.decide_at if test.stage == "waiting" and test.record else None
        return SendOutcome(
            test.key, test.stage, where, to_send=test.to_send, waits_until=waits, note=test.note
        )
    idle = "nothing-to-send" if test.created else "already-sent"
    action = "sent" if test.drain is not None else idle
    return SendOutcome(
        test.key,
        action,
        where,
        planned=test.planned,
        to_send=test.to_send,
        created=test.created,
        drain=test.drain,
        note=test.note,
    )


@dataclass(frozen=True)
class Settlement:
    """What a finished send makes of the issue's queue row, whoever started it."""

    status: str  # the row's new status: sent | failed
    action: str  # for the scheduler's report: sent | failed | partial
    note: str  # shown by `publisher status` beside a row that needs the editor


def settlement(outcome: SendOutcome) -> Settlement:
    """Sent when nothing is left to send; failed (with what is left) when the drain stopped short."""
    report = outcome.drain
    counts = report.counts if report is not None else None
    if outcome.waits_until is not None:  # a subject test between its sample and its decision
        return Settlement("queued", "sample", outcome.note)
    if report is not None and report.fatal is not None:
        left = counts.pending if counts else "?"
        return Settlement("failed", "failed", f"stopped: {report.fatal.message}; {left} not sent yet")
    if counts is not None and counts.pending:
        note = f"{counts.sent} sent, {counts.failed} failed, {counts.pending} still pending after retries"
        return Settlement("failed", "partial", note)
    if counts is not None:
        return Settlement("sent", "sent", f"{counts.sent} sent, {counts.failed} failed of {counts.planned}")
    words = {"already-sent": "was already sent", "nothing-to-send": "no subscriber to send to"}
    return Settlement("sent", "sent", words.get(outcome.action, outcome.action))


def send_test_copy(
    settings: Settings,
    slug: str,
    to: str,
    *,
    now: datetime,
    retry: RetryPolicy | None = None,
    transports: Callable[[], Transport] | None = None,
    store: Store | None = None,
) -> str:
    """Send one copy of issue ``slug`` to ``to`` (no ledger, no subscriber needed); says where it went.

    ``store``: checks the suppression list first (an address that bounced or
    complained gets no mail at all, test copies included).
    """
    address = normalise_email(to)
    secret = settings.secret_key()
    reason = store.feedback.suppressed(address, hasher=hasher_for(secret)) if store is not None else None
    if reason is not None:
        raise FatalDeliveryError(
            f"{address} is on the suppression list ({reason}): no mail goes to it, test copies included",
            hint="`publisher suppress remove ADDRESS` if that was a mistake",
        )
    issue = load_issue(settings, slug)
    key = f"test:{slug}"
    prepared = prepare_issue_email(settings, issue, send_key=key, date=now, test_copy=True)
    recipient = make_recipient(settings, secret, key, address, "")
    data = prepared.personalise(recipient)
    env = Envelope(envelope_sender(settings), address, data, recipient.message_id, smtp_ready=True)
    result, fatal = send_one(
        transports or transport_factory(settings, key), env, retry=retry, signer=signer_for(settings)
    )
    if fatal is not None:
        raise fatal
    if result.status is not Status.SENT:
        raise FatalDeliveryError(f"the test copy to {address} was not accepted: {result.reason}")
    return describe_transport(settings, key)
