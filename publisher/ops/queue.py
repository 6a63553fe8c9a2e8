"""Queued issues: queue, unqueue, list, and send what is due.

The ``queued_issues`` table is the truth; ``publisher run`` (the scheduler)
only decides *when* to call :func:`send_due`. An issue whose time passed while
nothing was running is sent only if it is less than ``schedule.max_lateness``
late; otherwise it is marked ``missed`` and left for the editor, because a
newsletter arriving hours late (or twice) is worse than one that waits for a
decision. Sends interrupted mid-way (a crash, a stop) are resumed: the ledger
sends only rows not yet accepted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from publisher.config import Settings
from publisher.content import load_issue
from publisher.content.loader import Loader
from publisher.content.scan import scan
from publisher.errors import ContentError, Problem, PublisherError
from publisher.models import Issue, Library
from publisher.ops.send import Clock, Progress, WorkerQueue, issue_key, send_issue, settlement
from publisher.ops.subject_test import variant_key
from publisher.store import Store
from publisher.store.queue import ACTIVE, Queue, QueuedIssue, QueueStateError

__all__ = [
    "ACTIVE",
    "QueueError",
    "QueueEvent",
    "QueuedIssue",
    "Stopped",
    "list_queue",
    "load_tolerant",
    "not_yet_sent",
    "parse_when",
    "queue_issue",
    "reconcile_front_matter",
    "send_due",
    "span",
    "stop_check",
    "unqueue_issue",
]

log = logging.getLogger("publisher.queue")


class QueueError(PublisherError):
    """An issue cannot be queued (draft, unknown, past, already sent) or the time is unusable."""


class Stopped(BaseException):
    """Raised inside a drain's progress callback when a stop was asked for.

    The drainer then records what its connections had in flight and releases
    the send's lease, so a stop never loses an accepted message.
    """


def stop_check(stop: threading.Event, inner: Progress | None = None) -> Progress:
    """A progress callback that raises :class:`Stopped` (once) after ``stop`` is set."""
    raised = False

    def progress(done: int, total: int) -> None:
        nonlocal raised
        if inner is not None:
            inner(done, total)
        if stop.is_set() and not raised:
            raised = True
            raise Stopped()

    return progress


# -- the editor's commands -----------------------------------------------------------------------


def parse_when(text: str, tz: ZoneInfo) -> datetime:
    """'2026-12-01T08:00+01:00', '...Z', or '2026-12-01 08:00' (in ``tz``) -> an aware datetime."""
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    except ValueError:
        raise QueueError(
            f"not a time: {text!r}",
            hint="write it as 2026-12-01 08:00 (in site.timezone) or 2026-12-01T08:00+01:00",
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
        back = value.astimezone(UTC).astimezone(tz)
        if back.replace(tzinfo=None) != value.replace(tzinfo=None):
            raise QueueError(
                f"{text!r} does not exist in {tz.key}: the clocks skip it when summer time starts",
                hint="pick a time outside the skipped hour",
            )
    return value


def _aware(at: datetime, settings: Settings) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=settings.site.tz)


def queue_issue(settings: Settings, store: Store, slug: str, at: datetime, *, now: datetime) -> QueuedIssue:
    """Queue issue ``slug`` to be sent at ``at`` (re-queuing moves the time).

    Refused, with the reason: an unknown issue, a draft, a time not in the
    future, or an issue already sent (a ``sends`` row ``issue:<slug>`` exists).
    """
    at = _aware(at, settings)
    issue = load_issue(settings, slug)  # NotFoundError / ContentError name the problem
    if issue.draft:
        raise QueueError(
            f"{slug} is a draft and drafts are never sent",
            hint="remove `draft: true` from its front matter, then queue it",
        )
    if at <= now:
        local = at.astimezone(settings.site.tz)
        raise QueueError(
            f"{local:%Y-%m-%d %H:%M %Z} is in the past; a queued issue needs a time in the future",
            hint=f"to send it now, run `publisher send {slug}`",
        )
    _refuse_if_sent(store, slug)
    return Queue(store).put(slug, at.astimezone(UTC), now=now, source="editor")


def _refuse_if_sent(store: Store, slug: str) -> None:
    send = store.ledger.get_send(issue_key(slug))
    if send is not None:
        word = "was already sent" if send.status == "done" else f"is already being sent ({send.status})"
        raise QueueError(
            f"{slug} {word}; an issue goes out once",
            hint="`publisher status` shows that send; `publisher send` finishes an interrupted one",
        )


def unqueue_issue(settings: Settings, store: Store, slug: str, *, now: datetime | None = None) -> bool:
    """Take ``slug`` off the queue; False if it was not queued. Refused while it is being sent.

    If the issue's front matter has ``send_at``, it stays unqueued until that
    value is edited (the scheduler does not put it back).
    """
    try:
        return Queue(store).cancel(slug, now=now or datetime.now(UTC), note="unqueued by the editor")
    except QueueStateError as exc:
        raise QueueError(exc.message, exc.hint) from None


def list_queue(store: Store, statuses: tuple[str, ...] | None = ACTIVE) -> list[QueuedIssue]:
    """What is queued (and missed, failed or being sent), soonest first."""
    return Queue(store).list(statuses)


# -- content -------------------------------------------------------------------------------------


def load_tolerant(settings: Settings) -> tuple[Library, dict[str, list[Problem]]]:
    """Every issue that loads cleanly, and the problems of those that do not (by slug).

    The scheduler must keep sending while an editor has a half-written file
    open; `publisher check` is where problems are shown in full.
    """
    found = scan(settings)
    loader = Loader(settings)
    issues: list[Issue] = []
    broken: dict[str, list[Problem]] = {}
    for unit in found.units:
        before = len(loader.problems)
        issue, _ = loader.issue(unit)
        problems = found.problems_for(unit) + loader.problems[before:]
        if problems or issue is None:
            broken[unit.slug] = problems
        else:
            issues.append(issue)
    issues.sort(key=lambda i: (-i.date.timestamp(), i.slug))
    return Library(tuple(issues)), broken


def not_yet_sent(store: Store, past: dict[str, Problem]) -> dict[str, Problem]:
    """The past-``send_at`` problems (by slug) of issues with no send in the database.

    Those are what `publisher run` would report as missed; an issue sent (or
    being sent) already has its ``send_at`` as history, not as a mistake.
    """
    return {slug: p for slug, p in sorted(past.items()) if not _started(store, slug)}


def _started(store: Store, slug: str) -> bool:
    """Sent or being sent: the issue's send exists, or its subject test's sample does."""
    return any(store.ledger.get_send(key) is not None for key in (issue_key(slug), variant_key(slug, 0)))


def reconcile_front_matter(
    settings: Settings, store: Store, library: Library, broken: dict[str, list[Problem]], *, now: datetime
) -> list[str]:
    """Apply each issue's ``send_at`` to the queue; what changed, as log lines.

    A new or edited value queues the issue at that time; a value that
    disappeared (or an issue that became a draft or was deleted) cancels what
    it had queued. Issues with problems are left as they are until fixed.
    """
    queue = Queue(store)
    changes: list[str] = []
    wanted: dict[str, datetime] = {}
    for issue in library.issues:
        if issue.send_at is not None and not issue.draft:
            wanted[issue.slug] = issue.send_at.astimezone(UTC)
    for slug, at in sorted(wanted.items()):
        if store.ledger.get_send(issue_key(slug)) is not None:
            continue  # sent (or sending) already: the front matter is history now
        row = queue.apply_front_matter(slug, at, now=now)
        if row is not None:
            changes.append(f"queued {slug} for {at:%Y-%m-%d %H:%M} UTC (send_at in its front matter)")
    drafts = {i.slug for i in library.issues if i.draft}
    for slug in sorted(queue.front_matter_slugs() - set(wanted) - set(broken)):
        why = "the issue is now a draft" if slug in drafts else "send_at was removed (or the issue deleted)"
        if queue.drop_front_matter(slug, now=now, note=why):
            changes.append(f"unqueued {slug}: {why}")
    return changes


# -- sending what is due -------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueEvent:
    """What :func:`send_due` did with one queued issue."""

    slug: str
    action: str  # sent | missed | failed | partial | stopped
    message: str


def lateness(send_at: datetime, known_since: datetime) -> timedelta:
    """How late an issue is *because we could not send it*: 0 if it fell due while we were up and knew it."""
    return max(timedelta(0), known_since - send_at)


def send_due(
    settings: Settings,
    store: Store,
    *,
    clock: Clock,
    up_since: datetime,
    stop: threading.Event | None = None,
    progress: Callable[[str], Progress | None] | None = None,
    workers: WorkerQueue | None = None,
) -> list[QueueEvent]:
    """Send every queued issue whose time has come; resume any interrupted send.

    ``up_since`` is when the caller (the scheduler) started: an issue due
    before then (or before it was queued, e.g. a ``send_at`` already past when
    written) is sent only within ``schedule.max_lateness`` of that moment; one
    that fell due while we were up is sent however busy we were. Raises :class:`Stopped` if ``stop`` is set
    mid-send (the row stays ``sending`` and is resumed next time). ``workers``:
    the scale-out queue, handed to ``send_issue``.
    """
    queue = Queue(store)
    events: list[QueueEvent] = []
    limit = settings.schedule.max_lateness
    for row in queue.due(clock()):
        if stop is not None and stop.is_set():
            break
        now = clock()
        if row.status == "queued":
            # late counted from when we could first have sent it: the start, or when it was queued
            late = lateness(row.send_at, max(up_since, row.updated_at))
            if late > limit:
                note = (
                    f"due {row.send_at:%Y-%m-%d %H:%M} UTC while the scheduler was not running "
                    "(or before it was queued); "
                    f"{span(late)} late is over schedule.max_lateness ({span(limit)}): "
                    f"queue it again or run `publisher send {row.slug}`"
                )
                if queue.set_status(row.slug, "missed", now=now, note=note, expect=("queued",)):
                    events.append(QueueEvent(row.slug, "missed", note))
                continue
            if not queue.claim(row.slug, now=now):
                continue  # unqueued or moved in the meantime
        events.append(_send_one(settings, store, queue, row.slug, clock, stop, progress, workers))
    return events


def _send_one(
    settings: Settings,
    store: Store,
    queue: Queue,
    slug: str,
    clock: Clock,
    stop: threading.Event | None,
    progress: Callable[[str], Progress | None] | None,
    workers: WorkerQueue | None,
) -> QueueEvent:
    inner = progress(slug) if progress is not None else None
    check = stop_check(stop, inner) if stop is not None else inner
    log.info("sending queued issue %s", slug)
    try:
        outcome = send_issue(settings, store, slug, clock=clock, progress=check, workers=workers)
    except PublisherError as exc:
        note = exc.message + (f" ({exc.hint})" if exc.hint else "")
        if isinstance(exc, ContentError):
            note = "; ".join(exc.lines())
        queue.set_status(slug, "failed", now=clock(), note=note, expect=("sending",))
        return QueueEvent(slug, "failed", note)
    settled = settlement(outcome)
    queue.set_status(slug, settled.status, now=clock(), note=settled.note, expect=("sending",))
    return QueueEvent(slug, settled.action, settled.note)


def span(delta: timedelta) -> str:
    """A duration as people read it: '2 days 3 h', '1 h 5 min', '40 min' (never '60778 h 32 min')."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} day{'' if days == 1 else 's'}" if days else "", f"{hours} h" if hours else ""]
    parts.append(f"{minutes} min" if minutes or not (days or hours) else "")
    return " ".join(p for p in parts if p)
