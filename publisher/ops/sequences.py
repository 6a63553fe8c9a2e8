"""Onboarding sequences: enter readers, plan each due step in the ledger, drain it like any send.

A round (each scheduler check, or by hand) ends the membership of readers who
left, then for each ``sequences/<name>/`` plans every step that has come due
for a member in a zone whose ``sequences.send_at`` window is open now, at most
one sequence mail per reader per local day (a scheduler down for a day sends
the next step, never a burst), and not a step whose slot passed more than
``schedule.max_lateness`` before the scheduler came up (it waits for the next
window, as a digest waits for its next period). Then every sequence send with
rows pending is drained by ``ops.drain``: a row becomes ``sent`` only after the
server's 250, and a crash between plan and drain loses nothing.

A step's identity is its file name: editing the text never mails anyone again;
a step added later reaches only members who had not passed its point when it
was first seen; a removed step's pending rows are skipped and members move on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from publisher.config import Settings
from publisher.content.sequences import (
    WELCOME,
    SequenceStep,
    load_sequence,
    load_welcome,
    sequence_names,
    sequences_root,
)
from publisher.errors import ContentError, NotFoundError
from publisher.ops.digest.periods import boundary, wall
from publisher.ops.drain import Clock, DrainReport
from publisher.ops.queue import Stopped
from publisher.ops.scaleout import fingerprint, hand_planned
from publisher.ops.welcome import Sending, drain_when_free, step_message
from publisher.render.email_mime import PreparedMessage
from publisher.store import Filter, SendInfo, Store
from publisher.store.sequences import PREFIX, SequenceStore, StepRule, ZoneWindow
from publisher.store.welcome import is_welcome_key

log = logging.getLogger("publisher.sequences")
ENTER_CHUNK = 5_000  # subscriber ids per INSERT (SQLite's bound-parameter limit is far above)


@dataclass
class SequenceReport:
    """What one round did, for the scheduler's log and the CLI."""

    ended: int = 0  # memberships ended because the reader left the list
    planned: dict[str, int] = field(default_factory=dict)  # step send key -> rows added
    waiting: list[str] = field(default_factory=list)  # sequences not planned: their files have problems
    drains: list[DrainReport] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(r.sent for r in self.drains)


def steps_of(settings: Settings, name: str) -> list[SequenceStep]:
    """The steps of sequence ``name``; NotFoundError without any, ContentError (file:line) if broken."""
    steps = load_sequence(settings, name)
    if not steps:
        raise NotFoundError(
            f"no sequence {name!r}: sequences/{name}/ has no NN-slug.md step",
            hint=f"the sequences there are: {', '.join(sequence_names(settings)) or 'none'}",
        )
    return steps


def enter_sequence(
    settings: Settings, store: Store, name: str, subscriber_ids: Sequence[int], *, now: datetime
) -> int:
    """Put these subscribers into sequence ``name`` (confirmed, unsuppressed ones); how many newly entered.

    Entering is once per (subscriber, sequence): already in, or in before, is
    not entered again. The ``welcome`` sequence starts after its step 01 (the
    welcome mail, sent on confirmation only).
    """
    steps = steps_of(settings, name)
    seqs = SequenceStore(store)
    seqs.observe(name, [s.slug for s in steps], now=now)
    progress = 1 if name == WELCOME else 0
    ids = list(subscriber_ids)
    return sum(
        seqs.enter(name, now=now, ids=ids[i : i + ENTER_CHUNK], progress=progress)
        for i in range(0, len(ids), ENTER_CHUNK)
    )


def enter_matching(
    settings: Settings, store: Store, name: str, where: Filter, *, zone: str | None, now: datetime
) -> int:
    """Put every confirmed subscriber matching the list's filter (and zone) into ``name``: one statement."""
    steps = steps_of(settings, name)
    seqs = SequenceStore(store)
    seqs.observe(name, [s.slug for s in steps], now=now)
    return seqs.enter(name, now=now, where=where, zone=zone, progress=1 if name == WELCOME else 0)


def window(settings: Settings) -> tuple[time, time | None]:
    """``sequences.send_at`` as (start, end); end None for 24:00."""
    start, end = settings.sequences.send_at.split("-")
    h, mi = start.split(":")
    if end == "24:00":
        return time(int(h), int(mi)), None
    eh, em = end.split(":")
    return time(int(h), int(mi)), time(int(eh), int(em))


def open_windows(
    settings: Settings, zones: Sequence[str], now: datetime, *, up_since: datetime
) -> list[ZoneWindow]:
    """The zones whose local window is open at ``now``, with their day start and lateness floor."""
    start, end = window(settings)
    cutoff = up_since - settings.schedule.max_lateness
    out: list[ZoneWindow] = []
    for name in zones:
        try:
            tz = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("time zone %r of some subscribers is unknown; their sequence mail waits", name)
            continue
        local = wall(now, tz)
        if local.time() < start or (end is not None and local.time() >= end):
            continue
        opened = boundary(local.date(), start, tz)
        day_start = boundary(local.date(), time(0, 0), tz)
        out.append(ZoneWindow(name, day_start, cutoff if opened < cutoff else None))
    return out


def step_rules(
    name: str, steps: Sequence[SequenceStep], first_seen: dict[str, datetime]
) -> list[tuple[SequenceStep, StepRule]]:
    """Each plannable step with who it reaches (the welcome mail, welcome's step 01, is not one)."""
    out: list[tuple[SequenceStep, StepRule]] = []
    earlier: list[tuple[int, datetime]] = []
    for step in steps:
        threshold = first_seen[step.slug] - step.after
        if not (name == WELCOME and step.number == 1):
            out.append((step, StepRule(name, step.number, step.after, threshold, tuple(earlier))))
        earlier.append((step.number, threshold))
    return out


def plan_sequences(
    settings: Settings, store: Store, *, now: datetime, up_since: datetime, report: SequenceReport
) -> None:
    """Plan every due step of every sequence (one INSERT ... SELECT per step and batch)."""
    seqs = SequenceStore(store)
    report.ended = seqs.end_left(now=now)
    windows = open_windows(settings, seqs.zones(), now, up_since=up_since)
    for name in sequence_names(settings):
        try:
            steps = load_sequence(settings, name)
        except ContentError as exc:  # said with file:line each round, until fixed; other sequences go on
            log.error("sequence %s waits: %s", name, "; ".join(exc.lines()))
            report.waiting.append(name)
            continue
        first_seen = seqs.observe(name, [s.slug for s in steps], now=now)
        if not windows:
            continue
        for step, rule in step_rules(name, steps, first_seen):
            meta = {"sequence": name, "step": step.slug}
            added = seqs.plan_step(rule, step.key, windows, now=now, meta=meta)
            if added:
                report.planned[step.key] = report.planned.get(step.key, 0) + added


def run_sequences(
    settings: Settings,
    store: Store,
    *,
    clock: Clock,
    up_since: datetime | None = None,
    sending: Sending | None = None,
    send: bool = True,
) -> SequenceReport:
    """One round: plan what is due now, then (unless ``send`` is False) drain every sequence send left."""
    now = clock()
    report = SequenceReport()
    plan_sequences(settings, store, now=now, up_since=up_since or now, report=report)
    if send:
        report.drains = drain_sequences(settings, store, clock=clock, sending=sending or Sending(busy_wait=0))
    return report


def _find_step(settings: Settings, key: str) -> SequenceStep | None:
    """The step file behind a sequence send key; None when it (or its folder) is gone."""
    if is_welcome_key(key):
        return load_welcome(settings)
    name, _, slug = key[len(PREFIX) :].partition(":")
    if not (sequences_root(settings) / name).is_dir():
        return None
    return next((s for s in load_sequence(settings, name) if s.slug == slug), None)


def prepared_for_send(
    settings: Settings, store: Store, send: SendInfo, *, date: datetime
) -> PreparedMessage | None:
    """The rendered, slotted message of a sequence step's send (or the welcome mail's), for any drain.

    None when the step file was removed: its pending rows are then marked
    skipped (a removed step stops). ContentError (file:line) while the file is
    broken: its rows wait, pending.
    """
    step = _find_step(settings, send.key)
    if step is None:
        if is_welcome_key(send.key):
            return None  # the welcome mail waits for its file (``ops.welcome``'s rule)
        skipped = SequenceStore(store).skip_pending(send.id, "the step's file was removed")
        store.ledger.close_if_done(send.id, now=date)
        log.warning("%s: step file removed; %d pending row(s) skipped", send.key, skipped)
        return None
    return step_message(settings, store, step, send_key=send.key, date=date)


def drain_sequences(settings: Settings, store: Store, *, clock: Clock, sending: Sending) -> list[DrainReport]:
    """Drain every sequence send with rows pending; one whose file is broken waits, logged."""
    reports: list[DrainReport] = []
    for send in SequenceStore(store).unfinished():
        if sending.stop is not None and sending.stop.is_set():
            raise Stopped
        now = clock()  # the message's date: a worker renders the same one from the job (fingerprint)
        try:
            prepared = prepared_for_send(settings, store, send, date=now)
        except ContentError as exc:
            log.error("%s waits: %s", send.key, "; ".join(exc.lines()))
            continue
        if prepared is None or _handed(settings, store, send, prepared, now, sending):
            continue
        result = drain_when_free(settings, store, send, prepared, clock=clock, sending=sending)
        if result is None:  # another process drains it; its rows are theirs
            continue
        reports.append(result)
        if result.fatal is not None:
            log.error("sequence mail %s stopped: %s", send.key, result.fatal.message)
            break  # the server is unusable now; the next round resumes
    return reports


def _handed(
    settings: Settings,
    store: Store,
    send: SendInfo,
    prepared: PreparedMessage,
    now: datetime,
    sending: Sending,
) -> bool:
    """With workers running (PostgreSQL) they send the step: queued now, or at the scheduler's next tick."""
    handed = hand_planned(
        store,
        sending.workers,
        send_id=send.id,
        key=send.key,
        kind="sequence",
        date=now,
        batch_size=settings.scale.batch_size,
        secret=settings.secret_key(),
        message_fingerprint=lambda: fingerprint(prepared),
    )
    if handed is None:
        return False
    if handed.jobs:
        log.info("sequence mail %s: %d batch job(s) queued for the workers", send.key, handed.jobs)
    return True


@dataclass(frozen=True)
class StepStatus:
    """One line of `publisher sequences status`."""

    sequence: str
    step: str  # file slug
    after: timedelta
    at_step: int  # active members whose last planned step is this one
    due_24h: int  # members for whom it is the next step and due within 24 hours


def sequence_status(settings: Settings, store: Store, *, now: datetime) -> tuple[list[StepStatus], list[str]]:
    """Members at each step and what comes due in the next 24 hours; (lines, sequences with problems)."""
    seqs = SequenceStore(store)
    at = seqs.at_steps()
    lines: list[StepStatus] = []
    broken: list[str] = []
    for name in sequence_names(settings):
        try:
            steps = load_sequence(settings, name)
        except ContentError as exc:
            broken.extend(exc.lines())
            continue
        first_seen = seqs.observe(name, [s.slug for s in steps], now=now)
        rules = {s.slug: r for s, r in step_rules(name, steps, first_seen)}
        if at.get((name, 0)):
            lines.append(StepStatus(name, "(entered, none yet)", timedelta(0), at[(name, 0)], 0))
        for step in steps:
            rule = rules.get(step.slug)
            due = seqs.due_by(rule, now + timedelta(hours=24)) if rule is not None else 0
            lines.append(StepStatus(name, step.slug, step.after, at.get((name, step.number), 0), due))
    return lines, broken
