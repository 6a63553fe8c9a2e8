"""Every issue with its state and its ``check`` problems, for the console's Issues page.

The problems are exactly `publisher check`'s: ``load_content`` (every problem
in every file, and the warnings), and on failure the issues that do load
(``load_tolerant``) for the late-``send_at`` check (``past_send_at`` filtered by
``not_yet_sent``). This module only sorts them under the issue whose file they
name; anything naming no issue's file (config, a stray file) is kept apart.

An issue's state comes from the store: ``sent`` when its send has nothing
pending, ``sending`` while a send of it has rows left (or the scheduler has
claimed it), ``queued`` with an active queue row, ``draft`` by its front
matter, else ``ready``; ``broken`` when it does not load at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from publisher.config import Settings
from publisher.content import load_content, past_send_at
from publisher.content.scan import Unit, relative, scan
from publisher.errors import ContentError, Problem
from publisher.models import Article, Issue, Library
from publisher.ops.queue import list_queue, load_tolerant, not_yet_sent
from publisher.ops.send import issue_key
from publisher.store import SendCounts, SendInfo, Store
from publisher.store.queue import QueuedIssue

__all__ = ["STATES", "ContentReport", "IssueRow", "content_report", "state_of"]

STATES = ("draft", "ready", "queued", "sending", "sent", "broken")


@dataclass(frozen=True)
class IssueRow:
    """One issue as the console lists it."""

    slug: str
    state: str
    issue: Issue | None  # None: it does not load (see ``problems``)
    problems: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()
    send: SendInfo | None = None
    counts: SendCounts | None = None
    queued: QueuedIssue | None = None

    @property
    def title(self) -> str:
        return self.issue.title if self.issue is not None else self.slug

    @property
    def articles(self) -> tuple[Article, ...]:
        return self.issue.articles if self.issue is not None else ()


@dataclass(frozen=True)
class ContentReport:
    """The rows, newest first (broken ones last), and problems that name no issue."""

    rows: tuple[IssueRow, ...]
    general: tuple[Problem, ...] = ()
    general_warnings: tuple[Problem, ...] = ()

    def row(self, slug: str) -> IssueRow | None:
        return next((r for r in self.rows if r.slug == slug), None)


def state_of(
    issue: Issue | None, send: SendInfo | None, counts: SendCounts | None, queued: QueuedIssue | None
) -> str:
    """The issue's state among ``STATES`` (see the module docstring for the order of the tests)."""
    if issue is None:
        return "broken"
    if send is not None and counts is not None:
        return "sent" if counts.pending == 0 else "sending"
    if queued is not None and queued.status == "sending":
        return "sending"
    if issue.draft:
        return "draft"
    return "queued" if queued is not None and queued.status == "queued" else "ready"


def _checked(settings: Settings, store: Store, now: datetime) -> tuple[Library, list[Problem], list[Problem]]:
    """The library, problems and warnings, as `publisher check` finds them."""
    try:
        result = load_content(settings)
        library, problems, warnings = result.library, [], list(result.warnings)
    except ContentError as exc:
        library, problems, warnings = load_tolerant(settings)[0], list(exc.problems), []
    past = past_send_at(settings, library, now)
    if past:  # the common case needs no database
        problems.extend(not_yet_sent(store, past).values())
    return library, problems, warnings


def _owner(units: tuple[Unit, ...], settings: Settings) -> dict[str, str]:
    """Each file (as problems name it) -> the slug of the issue it belongs to."""
    return {relative(path, settings): unit.slug for unit in units for path in unit.paths}


def content_report(settings: Settings, store: Store, *, now: datetime) -> ContentReport:
    """Every issue on disk with its state and its own problems and warnings."""
    library, problems, warnings = _checked(settings, store, now)
    units = scan(settings).units
    owner = _owner(units, settings)
    mine: dict[str, list[Problem]] = {}
    theirs: dict[str, list[Problem]] = {}
    general: list[Problem] = []
    general_warnings: list[Problem] = []
    for found, into, rest in ((problems, mine, general), (warnings, theirs, general_warnings)):
        for p in found:
            slug = owner.get(p.where)
            (into.setdefault(slug, []) if slug is not None else rest).append(p)
    queued = {q.slug: q for q in list_queue(store)}
    loaded = {i.slug: i for i in library.issues}
    rows = []
    for slug in [i.slug for i in library.issues] + sorted(u.slug for u in units if u.slug not in loaded):
        issue = loaded.get(slug)
        send = store.ledger.get_send(issue_key(slug))
        counts = store.ledger.counts(send.id) if send is not None else None
        row = IssueRow(
            slug=slug,
            state=state_of(issue, send, counts, queued.get(slug)),
            issue=issue,
            problems=tuple(mine.get(slug, ())),
            warnings=tuple(theirs.get(slug, ())),
            send=send,
            counts=counts,
            queued=queued.get(slug),
        )
        rows.append(row)
    return ContentReport(tuple(rows), tuple(general), tuple(general_warnings))


def send_running(store: Store, slug: str, *, now: datetime) -> bool:
    """Whether a process holds the lease of ``slug``'s send now (a send of it is under way)."""
    send = store.ledger.get_send(issue_key(slug))
    lease = send.lease_expires_at if send is not None else None
    return send is not None and send.lease_owner is not None and lease is not None and lease > now
