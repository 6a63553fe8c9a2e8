"""An issue's subject test, on the ledger: a sample split between subjects, the winner to the rest.

One implementation for `publisher send` and the scheduler (both reach it
through ``ops.send.send_issue``). Each call moves the test as far as it can
and is safe to repeat at any point, after any crash:

1. **Split** (once): the audience is drawn from with a random seed; the seed,
   the population size and every sampled subscriber with their subject are
   recorded in one transaction (``store.subject_tests``). Later calls read
   that record, never draw again, so a restart resumes the same test.
2. **Sample**: each subject is its own ledger send, ``issue:<slug>:subject-N``,
   planned from its recorded members only and drained (exactly once, as any
   send: rows become ``sent`` after the server's 250).
3. **Wait**: until ``decide_at`` (the split's time plus ``wait``) the call
   answers "waiting" and queues the issue again for that moment.
4. **Decide** (once): the subject whose send has more human clicks wins (ties:
   the first); the winner and the clicks are recorded by a conditional update,
   so a second scheduler or a restart reads the same winner.
5. **Rest**: the send ``issue:<slug>`` (the issue's own key, so everything that
   asks "was this issue sent?" keeps working) is planned only now, for the
   audience minus every sampled subscriber, with the winning subject.

A subject test is always drained in this process: a ``publisher worker``
renders an issue from its file, which knows no subject per send.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from publisher.config import Settings
from publisher.deliver import RetryPolicy
from publisher.models import Issue
from publisher.ops.clicks import HUMAN
from publisher.ops.drain import Clock, DrainReport, Progress, drain
from publisher.render.email import prepare_issue_email
from publisher.store import Store
from publisher.store.subject_tests import SubjectTests, TestAudience, TestRecord

__all__ = [
    "TestOutcome",
    "TestRecord",
    "TestSummary",
    "VariantFigures",
    "human_clicks",
    "pick_winner",
    "run_subject_test",
    "sample_size",
    "split",
    "test_summary",
    "variant_key",
]


def rest_key(slug: str) -> str:
    """The rest's send is the issue's own send (``ops.send.issue_key``)."""
    return f"issue:{slug}"


def variant_key(slug: str, index: int) -> str:
    """Subject ``index`` (0-based) of the test's sample: ``issue:<slug>:subject-<index + 1>``."""
    return f"{rest_key(slug)}:subject-{index + 1}"


@dataclass
class TestOutcome:
    """How far one call moved the test, for ``send_issue`` to word."""

    stage: str  # "waiting" | "stopped" (a sample send stopped short) | "rest" | "dry-run"
    key: str  # the send spoken of: the rest's, or the sample send that stopped
    record: TestRecord | None = None
    drain: DrainReport | None = None  # the rest's drain, or the sample drain that stopped
    planned: int = 0
    to_send: int = 0
    created: bool = False
    warnings: tuple[str, ...] = ()
    note: str = ""


# -- the pure parts: who is in the sample, who won ----------------------------------------------------


def sample_size(population: int, sample_bp: int, subjects: int) -> int:
    """Subscribers in the sample: ``sample_bp`` of the population, at least one per subject if there are."""
    wanted = (population * sample_bp + 5000) // 10000  # rounded to the nearest
    return min(population, max(wanted, subjects))


def split(ids: Sequence[int], seed: str, sample_bp: int, subjects: int) -> list[tuple[int, int]]:
    """(subscriber id, subject index) of the sample: reproducible from the seed and the sorted ids.

    ``random.Random(seed)`` draws the sample from the ids in ascending order, and
    subjects are dealt round-robin in drawing order, so each subject's share
    differs by at most one.
    """
    population = sorted(ids)
    drawn = random.Random(seed).sample(population, sample_size(len(population), sample_bp, subjects))
    return [(sid, n % subjects) for n, sid in enumerate(drawn)]


def pick_winner(clicks: Sequence[int]) -> int:
    """The index of the most clicks; a tie goes to the first subject."""
    return max(range(len(clicks)), key=lambda i: (clicks[i], -i))


def human_clicks(store: Store, key: str) -> int:
    """Human clicks of one send, every link (machine clicks never count)."""
    return sum(link.by_kind.get(HUMAN, 0) for link in store.clicks.by_link(key))


# -- the steps ------------------------------------------------------------------------------------------


def run_subject_test(
    settings: Settings,
    store: Store,
    issue: Issue,
    *,
    clock: Clock,
    dry_run: bool = False,
    progress: Progress | None = None,
    retry: RetryPolicy | None = None,
) -> TestOutcome | None:
    """Move ``issue``'s subject test on; None when it has none (the caller sends it as usual).

    A test once recorded goes on even if the front matter no longer asks for it:
    sending the whole list now would mail the sample twice.
    """
    tests = SubjectTests(store)
    record = tests.get(issue.slug)
    if record is None:
        if issue.subject_test is None or store.ledger.get_send(rest_key(issue.slug)) is not None:
            return None  # no test, or the issue went out before the front matter asked for one
        if dry_run:
            return _dry_run_new(store, issue)
        record = _start(store, issue, clock())
    if dry_run:
        pending = _pending(store, record)
        return TestOutcome("dry-run", rest_key(issue.slug), record, to_send=pending)
    stopped = _send_sample(settings, store, issue, record, clock, progress, retry)
    if stopped is not None:
        return stopped
    now = clock()
    if record.winner is None:
        if now < record.decide_at:
            note = _waiting_note(store, record)
            tests.wait_in_queue(issue.slug, record.decide_at, now=now, note=note)
            return TestOutcome("waiting", rest_key(issue.slug), record, note=note)
        clicks = [human_clicks(store, variant_key(issue.slug, i)) for i in range(len(record.subjects))]
        record = tests.decide(record.id, pick_winner(clicks), clicks, now=now)
    return _send_rest(settings, store, issue, record, clock, progress, retry)


def _start(store: Store, issue: Issue, now: datetime) -> TestRecord:
    """Draw and record the split (or read the one another process recorded first)."""
    test = issue.subject_test
    assert test is not None
    seed = secrets.token_hex(16)
    bp = round(test.sample * 100)
    ids = SubjectTests(store).eligible_ids()
    members = split(ids, seed, bp, len(test.subjects))
    record, _ = SubjectTests(store).create(
        issue.slug,
        subjects=test.subjects,
        sample_bp=bp,
        wait=test.wait,
        seed=seed,
        population=len(ids),
        members=members,
        now=now,
    )
    return record


def _dry_run_new(store: Store, issue: Issue) -> TestOutcome:
    test = issue.subject_test
    assert test is not None
    population = store.ledger.audience_size()
    size = sample_size(population, round(test.sample * 100), len(test.subjects))
    note = f"would start a subject test: {size} of {population} in the sample, the rest after the wait"
    return TestOutcome("dry-run", rest_key(issue.slug), None, to_send=size, note=note)


def _pending(store: Store, record: TestRecord) -> int:
    """Rows not yet sent in the test's sends so far (a dry run's answer once it started)."""
    keys = [variant_key(record.issue_slug, i) for i in range(len(record.subjects))]
    sends = [store.ledger.get_send(k) for k in [*keys, rest_key(record.issue_slug)]]
    return sum(store.ledger.counts(s.id).pending for s in sends if s is not None)


def _send_sample(
    settings: Settings,
    store: Store,
    issue: Issue,
    record: TestRecord,
    clock: Clock,
    progress: Progress | None,
    retry: RetryPolicy | None,
) -> TestOutcome | None:
    """Plan and drain each subject's send; the outcome of the first that stopped short, else None."""
    for index, subject in enumerate(record.subjects):
        key = variant_key(issue.slug, index)
        audience = TestAudience(test_id=record.id, variant=index)
        report = _plan_and_drain(settings, store, issue, key, subject, audience, clock, progress, retry)
        if report is not None and (report.fatal is not None or report.counts.pending):
            return TestOutcome("stopped", key, record, drain=report, planned=report.counts.planned)
    return None


def _send_rest(
    settings: Settings,
    store: Store,
    issue: Issue,
    record: TestRecord,
    clock: Clock,
    progress: Progress | None,
    retry: RetryPolicy | None,
) -> TestOutcome:
    """The winner's send to everyone not in the sample (planned on the first call after the decision)."""
    assert record.winner is not None
    key = rest_key(issue.slug)
    existing = store.ledger.get_send(key)
    subject = record.subjects[record.winner]
    audience = TestAudience(test_id=record.id, variant=None)
    report = _plan_and_drain(settings, store, issue, key, subject, audience, clock, progress, retry)
    send = store.ledger.get_send(key)
    assert send is not None
    counts = report.counts if report is not None else store.ledger.counts(send.id)
    note = f"subject test decided: {subject!r} won ({_clicks_words(record)})"
    return TestOutcome(
        "rest",
        key,
        record,
        drain=report,
        planned=send.planned,
        to_send=counts.pending if report is None else report.sent + counts.pending,
        created=existing is None,
        note=note,
    )


def _plan_and_drain(
    settings: Settings,
    store: Store,
    issue: Issue,
    key: str,
    subject: str,
    audience: TestAudience,
    clock: Clock,
    progress: Progress | None,
    retry: RetryPolicy | None,
) -> DrainReport | None:
    """Plan ``key`` (idempotent) and drain what is pending with ``subject``; None when nothing was."""
    now = clock()
    plan = store.ledger.plan_send("issue", key, now=now, issue_slug=issue.slug, audience=audience)
    if store.ledger.counts(plan.send.id).pending == 0:
        store.ledger.close_if_done(plan.send.id, now=now)
        return None
    message = prepare_issue_email(
        settings, replace(issue, subject=subject), send_key=key, date=plan.send.created_at
    )
    if message.links is not None:  # before any mail goes out: /r/ redirects only to recorded links
        store.clicks.record_links(key, message.links.urls, now=now)
    return drain(
        settings, store, plan.send.id, lambda _row: message, clock=clock, progress=progress, retry=retry
    )


def _waiting_note(store: Store, record: TestRecord) -> str:
    sizes = SubjectTests(store).member_counts(record.id)
    shares = ", ".join(f"{s!r} to {sizes.get(i, 0)}" for i, s in enumerate(record.subjects))
    return (
        f"subject test: sample sent ({shares}); the winner goes to the rest at "
        f"{record.decide_at:%Y-%m-%d %H:%M} UTC"
    )


def _clicks_words(record: TestRecord) -> str:
    return ", ".join(f"{n} human click{'' if n == 1 else 's'}" for n in record.clicks) + " by subject"


# -- the report -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantFigures:
    """One subject of a test as `publisher report` shows it."""

    subject: str
    key: str
    sample: int  # subscribers drawn for it
    delivered: int
    human_clicks: int  # now (the decision's figure is ``TestRecord.clicks``)
    won: bool


@dataclass(frozen=True)
class TestSummary:
    record: TestRecord
    variants: tuple[VariantFigures, ...]
    rest_delivered: int | None  # None: the rest is not planned yet


def test_summary(store: Store, ref: str | None, send_id: int | None) -> TestSummary | None:
    """The subject test behind a send (by id) or a reference (slug, ``issue:<slug>[:subject-N]``)."""
    slug: str | None = None
    if send_id is not None:
        info = store.ledger.get_send_by_id(send_id)
        slug = info.issue_slug if info is not None else None
    elif ref is not None:
        slug = ref.removeprefix("issue:").split(":", 1)[0]
    record = SubjectTests(store).get(slug) if slug else None
    if record is None:
        return None
    sizes = SubjectTests(store).member_counts(record.id)
    variants = []
    for index, subject in enumerate(record.subjects):
        key = variant_key(record.issue_slug, index)
        send = store.ledger.get_send(key)
        delivered = store.ledger.counts(send.id).sent if send is not None else 0
        won = record.winner == index
        figures = VariantFigures(subject, key, sizes.get(index, 0), delivered, human_clicks(store, key), won)
        variants.append(figures)
    rest = store.ledger.get_send(rest_key(record.issue_slug))
    rest_delivered = store.ledger.counts(rest.id).sent if rest is not None else None
    return TestSummary(record, tuple(variants), rest_delivered)
