"""What the console's dashboard and report pages share: the page helper, times, `check` problems, send rows.

Every number comes from the functions ``publisher status`` and
``GET /api/sends`` use (``store.ledger``, ``store.feedback``,
``ops.feedback.send_warnings``), and the content problems from the ones
``publisher check`` uses, so the console never disagrees with the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from publisher.config import Settings
from publisher.content import load_content, past_send_at
from publisher.errors import ContentError, Problem
from publisher.ops.feedback import send_warnings
from publisher.ops.queue import load_tolerant, not_yet_sent
from publisher.store import SendCounts, SendInfo, Store
from publisher.store.reports import running_sends


@dataclass(frozen=True)
class When:
    """A moment as the editor reads it: in the site's time zone and in UTC."""

    iso: str
    local: str
    utc: str


def when(settings: Settings, at: datetime | None) -> When | None:
    if at is None:
        return None
    local = at.astimezone(settings.site.tz)
    return When(at.isoformat(), f"{local:%Y-%m-%d %H:%M} {local.tzname()}", f"{at:%Y-%m-%d %H:%M} UTC")


@dataclass(frozen=True)
class SendRow:
    """One send as the console lists it: the ledger's counts and what came back after the 250."""

    id: int
    key: str
    status: str
    counts: SendCounts
    bounced: int
    complained: int
    unsubscribed: int
    percent: int  # of the planned rows settled (sent, failed or skipped)
    started: When | None
    finished: When | None
    warnings: tuple[str, ...]


def percent_done(counts: SendCounts) -> int:
    done = counts.sent + counts.failed + counts.skipped
    return 100 if counts.planned <= 0 else min(100, done * 100 // counts.planned)


def send_row(settings: Settings, info: SendInfo, counts: SendCounts, outcomes: dict[str, int]) -> SendRow:
    return SendRow(
        id=info.id,
        key=info.key,
        status=info.status,
        counts=counts,
        bounced=outcomes.get("hard_bounce", 0) + outcomes.get("soft_bounce", 0),
        complained=outcomes.get("complaint", 0),
        unsubscribed=outcomes.get("unsubscribe", 0),
        percent=percent_done(counts),
        started=when(settings, info.started_at),
        finished=when(settings, info.finished_at),
        warnings=tuple(send_warnings(info.key, counts.sent, outcomes)),
    )


def check_problems(settings: Settings, store: Store, now: datetime) -> list[Problem]:
    """What ``publisher check`` reports: every content problem, and each past ``send_at`` not yet sent."""
    try:
        library = load_content(settings).library
        problems: list[Problem] = []
    except ContentError as exc:
        problems = list(exc.problems)
        library = load_tolerant(settings)[0]
    late = not_yet_sent(store, past_send_at(settings, library, now))
    return sorted([*problems, *late.values()], key=lambda p: (p.where, p.line or 0))


def running_rows(settings: Settings, store: Store, also: Sequence[int] = ()) -> list[SendRow]:
    """The sends being drained now, and those of ``also`` (watched ones that may have finished)."""
    infos = {i.id: i for i in running_sends(store)}
    for send_id in also:
        if send_id not in infos:
            found = store.ledger.get_send_by_id(send_id)
            if found is not None:
                infos[send_id] = found
    if not infos:
        return []
    ids = sorted(infos, reverse=True)
    counts = store.ledger.all_counts(ids)
    outcomes = store.feedback.outcomes_for(ids)
    return [send_row(settings, infos[i], counts[i], outcomes.get(i, {})) for i in ids if i in counts]
