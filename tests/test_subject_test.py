"""Subject tests (issue 17, item 5): a sample split between subjects, the winner to exactly the rest.

Real parts: the issue file, SQLite and PostgreSQL, the aiosmtpd test server in
another process, the scheduler's ``send_due`` with an injected clock, and the
CLI in-process. Clicks are written through ``store.clicks`` as the /r/ endpoint
writes them (its classification is tested in ``test_clicks``).
"""

from __future__ import annotations

import signal
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from publisher.content import load_issue
from publisher.errors import ContentError
from publisher.ops.queue import (
    Stopped,
    load_tolerant,
    queue_issue,
    reconcile_front_matter,
    send_due,
    stop_check,
)
from publisher.ops.send import issue_key, send_issue
from publisher.ops.subject_test import human_clicks, pick_winner, split, variant_key
from publisher.store import Queue, Store, open_store
from publisher.store.clicks import Click
from publisher.store.queue import queued_issues
from publisher.store.schema import sends, subject_test_members, subject_tests
from publisher.store.subject_tests import SubjectTests
from tests.fixtures_content import article
from tests.fixtures_send import FAST, SLUG, T0
from tests.fixtures_store import add_subscribers
from tests.test_run import CONCURRENCY, Proc, add, wait_for

A, B = "Trams are back", "The trams return"
TEST_FM = f"subjects: [{A}, {B}]\nsubject_test: {{sample: 20%, wait: 4h}}"
LINK = "https://trams.example.com/news"
BODY = f"The [trams]({LINK}) are back."


class Clock:
    """An injected clock: 1 ms a call, moved on by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def write_test_issue(write_issue: Any, extra: str = TEST_FM) -> Path:
    return write_issue(f"issues/{SLUG}.md", article(title="Spring News", extra=extra, body=BODY))


def subjects_by_rcpt(server: Any) -> dict[str, list[str]]:
    got: dict[str, list[str]] = {}
    for m in server.received():
        got.setdefault(m.rcpt, []).append(str(m.message()["Subject"]))
    return got


def click(store: Store, key: str, kind: str, n: int, at: datetime) -> None:
    link = next(lk for lk in store.clicks.by_link(key) if lk.url == LINK)
    target = store.clicks.target(key, link.link_no)
    assert target is not None
    store.clicks.record([Click(target.link_id, at, kind)] * n)


def ids_by_email(store: Store) -> dict[str, int]:
    with store.read() as conn:
        return dict(conn.exec_driver_sql("SELECT email, id FROM subscribers").all())  # type: ignore[arg-type]


# -- the pure parts ------------------------------------------------------------------------------------


def test_split_is_seeded_balanced_and_never_repeats_a_subscriber() -> None:
    ids = list(range(1, 1001))
    one = split(ids, "seed-1", 2000, 2)
    assert split(list(reversed(ids)), "seed-1", 2000, 2) == one  # the order given does not matter
    assert split(ids, "seed-2", 2000, 2) != one
    assert len(one) == 200 and len({s for s, _ in one}) == 200
    assert Counter(v for _, v in one) == {0: 100, 1: 100}
    assert Counter(v for _, v in split(ids, "s", 1000, 3)) == {0: 34, 1: 33, 2: 33}
    assert len(split([1, 2, 3], "s", 100, 2)) == 2  # at least one reader per subject
    assert split([], "s", 2000, 2) == []


def test_the_winner_has_the_most_clicks_and_a_tie_goes_to_the_first() -> None:
    assert pick_winner([3, 5]) == 1
    assert pick_winner([5, 5]) == 0
    assert pick_winner([0, 0, 0]) == 0
    assert pick_winner([1, 4, 4]) == 1


# -- front matter --------------------------------------------------------------------------------------


def test_front_matter_gives_the_test_and_check_shows_it(write_issue, make_settings, cli) -> None:
    write_test_issue(write_issue)
    issue = load_issue(make_settings(), SLUG)
    assert issue.subject_test is not None
    assert issue.subject_test.subjects == (A, B)
    assert issue.subject_test.sample == 20.0 and issue.subject_test.wait == timedelta(hours=4)
    assert issue.subject == A  # test copies and previews show the first subject
    result = cli("check")
    assert result.exit_code == 0, result.output
    assert f"subject test: {SLUG}: 20% split between '{A}' / '{B}'" in result.output
    assert "after 4 h" in result.output


HOSTILE = [
    ('subjects: ["A\\r\\nBcc: x@evil.example", B]', "item 1", "line break"),
    ('subjects: [A, "B\\u0000"]', "item 2", "control"),
    ('subjects: ["=?utf-8?q?Free?=", B]', "item 1", "encoded"),
    ('subjects: ["Hello \\u202egnp.exe", B]', "item 1", "bidi"),
    (f'subjects: [A, "{"x" * 10_000}"]', "item 2", "10000 characters"),
    ("subjects: [Same, same]", "item 2", "same as item 1"),
    ("subjects: [Only one]", "subjects: 1 given", "2 to 10"),
    ("subjects: Trams", "subjects: expected a list", "list"),
    ("subjects: [A, '']", "item 2", "empty"),
    ("subjects: [A, [B]]", "item 2", "expected text"),
]


@pytest.mark.parametrize(("line", "where", "words"), HOSTILE)
def test_hostile_subjects_are_refused_with_file_and_line(write_issue, make_settings, line, where, words):
    write_test_issue(write_issue, f"{line}\nsubject_test: {{sample: 20%, wait: 4h}}")
    with pytest.raises(ContentError) as exc:
        load_issue(make_settings(), SLUG)
    (problem,) = exc.value.problems
    assert problem.where == f"issues/{SLUG}.md" and problem.line == 4  # the subjects: line
    assert where in problem.message and words in problem.message, problem.message


BAD_SPEC = [
    ("{sample: 0%, wait: 4h}", "sample", "outside 1% to 50%"),
    ("{sample: 60%, wait: 4h}", "sample", "outside"),
    ("{sample: lots, wait: 4h}", "sample", "percent"),
    ("{sample: 20%, wait: forever}", "wait", "duration"),
    ("{sample: 20%, wait: 30s}", "wait", "between 1 minute and 7 days"),
    ("{sample: 20%, wait: 30d}", "wait", "between"),
    ("{sample: 20%, wait: 4h, winner: A}", "unknown key", "winner"),
    ("{sample: 20%}", "wait: missing", "wait"),
    ("20%", "expected a mapping", "sample"),
]


@pytest.mark.parametrize(("spec", "where", "words"), BAD_SPEC)
def test_a_bad_subject_test_is_refused_with_its_line(write_issue, make_settings, spec, where, words):
    write_test_issue(write_issue, f"subjects: [{A}, {B}]\nsubject_test: {spec}")
    with pytest.raises(ContentError) as exc:
        load_issue(make_settings(), SLUG)
    (problem,) = exc.value.problems
    assert problem.line == 5 and where in problem.message and words in problem.message, problem.message


def test_half_a_test_or_two_subject_keys_are_refused(write_issue, make_settings) -> None:
    cases = [
        (f"subjects: [{A}, {B}]", 4, "subject_test"),
        ("subject_test: {sample: 20%, wait: 4h}", 4, "needs the subjects"),
        (f"subject: One\n{TEST_FM}", 4, "either subject: or subjects:"),
    ]
    for extra, line, words in cases:
        write_test_issue(write_issue, extra)
        with pytest.raises(ContentError) as exc:
            load_issue(make_settings(), SLUG)
        assert [(p.line, words in p.message) for p in exc.value.problems] == [(line, True)], extra


def test_hostile_front_matter_sends_nothing_and_writes_nothing(sending, write_issue) -> None:
    settings, store, server = sending
    add_subscribers(store, 10)
    write_test_issue(write_issue, f'subjects: [A, "B\\nBcc: x@evil.example"]\n{TEST_FM.split(chr(10))[1]}')
    with pytest.raises(ContentError):
        send_issue(settings, store, SLUG, clock=Clock(), retry=FAST)
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(subject_tests)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(sends)).scalar() == 0
    assert server.count() == 0


# -- the test on the ledger --------------------------------------------------------------------------------


def test_the_split_is_reproducible_from_the_record(sending, write_issue) -> None:
    settings, store, server = sending
    emails = add_subscribers(store, 200)
    write_test_issue(write_issue)
    outcome = send_issue(settings, store, SLUG, clock=Clock(), retry=FAST)
    record = SubjectTests(store).get(SLUG)
    assert record is not None and record.population == 200 and record.winner is None
    assert outcome.action == "waiting" and outcome.waits_until == record.decide_at
    assert record.decide_at == record.created_at + timedelta(hours=4)
    members = SubjectTests(store).members(record.id)
    ids = ids_by_email(store)
    assert sorted(members.items()) == sorted(split(list(ids.values()), record.seed, record.sample_bp, 2))
    assert Counter(members.values()) == {0: 20, 1: 20}
    # the sample got exactly its subjects, once each, and nobody else got anything
    got = subjects_by_rcpt(server)
    by_id = {ids[e]: e for e in emails}
    assert got == {by_id[sid]: [(A, B)[v]] for sid, v in members.items()}
    # the scheduler will come back for the decision
    row = Queue(store).get(SLUG)
    assert row is not None and row.status == "queued" and row.send_at == record.decide_at
    assert store.ledger.get_send(issue_key(SLUG)) is None  # the rest is not planned before the decision


def test_the_winner_reaches_exactly_the_rest_and_machine_clicks_do_not_count(
    sending, write_issue, cli
) -> None:
    settings, store, server = sending
    emails = add_subscribers(store, 150)
    write_test_issue(write_issue)
    clock = Clock()
    send_issue(settings, store, SLUG, clock=clock, retry=FAST)
    sample = set(subjects_by_rcpt(server))
    at = T0 + timedelta(hours=1)
    click(store, variant_key(SLUG, 0), "human", 2, at)
    click(store, variant_key(SLUG, 0), "scanner", 40, at)
    click(store, variant_key(SLUG, 0), "prefetch", 9, at)
    click(store, variant_key(SLUG, 1), "human", 3, at)
    clock.now = T0 + timedelta(hours=3, minutes=59)
    assert send_issue(settings, store, SLUG, clock=clock, retry=FAST).action == "waiting"
    assert server.count() == 30  # nothing more before the wait is over
    write_test_issue(write_issue, "")  # the front matter dropped the test: the record still rules
    clock.now = T0 + timedelta(hours=4, seconds=1)
    outcome = send_issue(settings, store, SLUG, clock=clock, retry=FAST)
    assert outcome.action == "sent" and outcome.key == issue_key(SLUG) and outcome.planned == 120
    record = SubjectTests(store).get(SLUG)
    assert record is not None and record.winner == 1 and record.clicks == (2, 3)
    got = subjects_by_rcpt(server)
    assert set(got) == set(emails) and all(len(v) == 1 for v in got.values())  # each reader once
    assert {e for e, v in got.items() if v == [B] and e not in sample} == set(emails) - sample
    assert Queue(store).get(SLUG).status == "sent"  # type: ignore[union-attr]
    # later clicks on the loser change nothing: the decision is recorded once
    click(store, variant_key(SLUG, 0), "human", 50, at)
    again = send_issue(settings, store, SLUG, clock=clock, retry=FAST)
    assert again.action == "already-sent" and server.count() == 150
    assert SubjectTests(store).get(SLUG).winner == 1  # type: ignore[union-attr]
    result = cli("report", SLUG)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(A in ln and ln.split()[-4:-3] == ["52"] for ln in lines), result.output  # 2 + 50 now
    assert any(ln.startswith("->") and B in ln for ln in lines), result.output
    assert "decided on 2, 3 human click(s)" in result.output


def test_a_tie_goes_to_the_first_subject(sending, write_issue) -> None:
    settings, store, server = sending
    add_subscribers(store, 20)
    write_test_issue(write_issue)
    clock = Clock()
    send_issue(settings, store, SLUG, clock=clock, retry=FAST)
    click(store, variant_key(SLUG, 0), "human", 1, T0 + timedelta(hours=1))
    click(store, variant_key(SLUG, 1), "human", 1, T0 + timedelta(hours=1))
    clock.now += timedelta(hours=5)
    send_issue(settings, store, SLUG, clock=clock, retry=FAST)
    assert SubjectTests(store).get(SLUG).winner == 0  # type: ignore[union-attr]
    assert Counter(s for v in subjects_by_rcpt(server).values() for s in v) == {A: 18, B: 2}


def _interrupt_after(done_at_least: int) -> Any:
    stop = threading.Event()

    def tick(done: int, _total: int) -> None:
        if done >= done_at_least:
            stop.set()

    return stop_check(stop, tick)


def test_a_crash_mid_sample_then_restart_resumes_the_same_test(sending, write_issue, db_url) -> None:
    settings, store, server = sending
    emails = add_subscribers(store, 500)
    write_test_issue(write_issue)
    clock = Clock()
    with pytest.raises(Stopped):
        send_issue(settings, store, SLUG, clock=clock, retry=FAST, progress=_interrupt_after(5))
    first = SubjectTests(store).get(SLUG)
    assert first is not None and 0 < server.count() < 100
    store.close()
    restarted = open_store(db_url)  # a new process: only the database remembers
    try:
        outcome = send_issue(settings, restarted, SLUG, clock=clock, retry=FAST)
        assert outcome.action == "waiting"
        assert SubjectTests(restarted).get(SLUG) == first  # same seed, same decision time
        members = SubjectTests(restarted).members(first.id)
        got = subjects_by_rcpt(server)
        ids = ids_by_email(restarted)
        assert {ids[e] for e in got} == set(members) and all(len(v) == 1 for v in got.values())
        assert len(members) == 100
        clock.now += timedelta(hours=4)
        send_issue(settings, restarted, SLUG, clock=clock, retry=FAST)
        assert sorted(Counter(m.rcpt for m in server.received()).values()) == [1] * len(emails)
    finally:
        restarted.close()


def test_a_kill_after_the_decision_resumes_the_rest_without_doubles(sending, write_issue, db_url) -> None:
    settings, store, server = sending
    emails = add_subscribers(store, 600)
    write_test_issue(write_issue)
    clock = Clock()
    queue_issue(settings, store, SLUG, T0 + timedelta(minutes=5), now=T0)
    clock.now = T0 + timedelta(minutes=5)
    events = send_due(settings, store, clock=clock, up_since=T0)  # the scheduler sends the sample
    assert [e.action for e in events] == ["sample"] and server.count() == 120
    clock.now = T0 + timedelta(minutes=5, hours=4, seconds=1)
    stop = threading.Event()
    with pytest.raises(Stopped):
        send_due(
            settings,
            store,
            clock=clock,
            up_since=T0,
            stop=stop,
            progress=lambda _slug: stop_check(stop, lambda d, _t: stop.set() if d >= 20 else None),
        )
    record = SubjectTests(store).get(SLUG)
    assert record is not None and record.winner == 0  # no clicks: the first subject
    assert 120 < server.count() < 600 and Queue(store).get(SLUG).status == "sending"  # type: ignore[union-attr]
    store.close()
    restarted = open_store(db_url)
    try:
        click(restarted, variant_key(SLUG, 1), "human", 9, clock.now)  # too late to matter
        later = clock.now + timedelta(minutes=2)
        events = send_due(settings, restarted, clock=Clock(later), up_since=later)
        assert [e.action for e in events] == ["sent"]
        assert SubjectTests(restarted).get(SLUG).winner == 0  # type: ignore[union-attr]
        got = subjects_by_rcpt(server)
        assert set(got) == set(emails) and all(len(v) == 1 for v in got.values())
        ids, members = ids_by_email(restarted), SubjectTests(restarted).members(record.id)
        rest = [e for e in got if ids[e] not in members]
        assert len(rest) == 480 and {got[e][0] for e in rest} == {A}
        assert Queue(restarted).get(SLUG).status == "sent"  # type: ignore[union-attr]
        assert human_clicks(restarted, variant_key(SLUG, 1)) == 9
    finally:
        restarted.close()


def test_members_never_overlap_and_the_record_lives_in_the_tables(sending, write_issue) -> None:
    settings, store, _server = sending
    add_subscribers(store, 50)
    write_test_issue(write_issue)
    send_issue(settings, store, SLUG, clock=Clock(), retry=FAST)
    with store.read() as conn:
        rows = conn.execute(select(subject_test_members.c.subscriber_id)).scalars().all()
    assert len(rows) == len(set(rows)) == 10


# -- a real `publisher run` ---------------------------------------------------------------------------------


def _jump_to_the_decision(store: Store) -> None:
    """The clock of a real process cannot be injected: bring the decision time to now instead."""
    at = datetime.now(UTC)
    with store.write() as conn:
        conn.execute(update(subject_tests).values(decide_at=at))
        conn.execute(update(queued_issues).where(queued_issues.c.slug == SLUG).values(send_at=at))


@pytest.fixture
def live(project, make_settings, smtp_server):
    """(settings, store, server, start) as in ``test_run``: SQLite, mail to the test SMTP server."""
    settings = make_settings(
        database={"url": f"sqlite:///{project / 'publisher.db'}"},
        email={
            "transport": "smtp",
            "concurrency": CONCURRENCY,
            "smtp": {"host": "127.0.0.1", "port": smtp_server.port, "timeout": 10},
        },
    )
    store = open_store(settings.database.url)
    procs: list[Proc] = []

    def start() -> Proc:
        procs.append(Proc(project, len(procs)))
        return procs[-1]

    yield settings, store, smtp_server, start
    for p in procs:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()
        p.fh.close()
    store.close()


@pytest.mark.slow
def test_publisher_run_killed_at_each_stage_finishes_the_test_once(project, live) -> None:
    settings, store, server, start = live
    write_test_issue(
        lambda rel, text: (project / rel).write_text(text, encoding="utf-8"),
        f"subjects: [{A}, {B}]\nsubject_test: {{sample: 20%, wait: 1h}}",
    )
    emails = add(store, 300)
    server.set_faults(data_delay_ms=15)
    queue_issue(settings, store, SLUG, datetime.now(UTC) + timedelta(seconds=1), now=datetime.now(UTC))
    run = start()
    run.wait_up()
    wait_for(lambda: server.count() >= 10)
    run.stop(signal.SIGKILL)  # mid-sample
    record = SubjectTests(store).get(SLUG)
    assert record is not None and server.count() < 60
    again = start()
    again.wait_up()
    wait_for(
        lambda: (row := Queue(store).get(SLUG)) is not None and row.status == "queued" and server.count()
    )
    wait_for(lambda: len(subjects_by_rcpt(server)) == 60)
    assert SubjectTests(store).get(SLUG) == record  # the same split after the restart
    click(store, variant_key(SLUG, 1), "human", 4, datetime.now(UTC))
    _jump_to_the_decision(store)
    wait_for(lambda: server.count() >= 100, timeout=60)
    again.stop(signal.SIGKILL)  # mid-rest, after the decision
    decided = SubjectTests(store).get(SLUG)
    assert decided is not None and decided.winner == 1 and server.count() < 300
    server.set_faults()
    last = start()
    last.wait_up()
    wait_for(lambda: len(subjects_by_rcpt(server)) == 300, timeout=60)
    wait_for(lambda: Queue(store).get(SLUG).status == "sent")  # type: ignore[union-attr]
    assert last.stop() == 0
    got = subjects_by_rcpt(server)
    assert set(got) == set(emails)
    assert sum(len(v) - 1 for v in got.values()) <= 2 * CONCURRENCY  # two kills, one in flight each
    members = SubjectTests(store).members(record.id)
    ids = ids_by_email(store)
    rest = {e for e in got if ids[e] not in members}
    assert len(rest) == 240 and all(set(got[e]) == {B} for e in rest)  # the winner, to exactly the rest
    assert all(set(v) == {(A, B)[members[ids[e]]]} for e, v in got.items() if ids[e] in members)


def test_between_sample_and_decision_check_is_clean_and_removing_send_at_cancels_nothing(
    sending, write_issue, cli
) -> None:
    settings, store, server = sending
    add_subscribers(store, 40)
    send_at = "send_at: 2026-03-02T08:05:00+00:00"
    write_test_issue(write_issue, f"{TEST_FM}\n{send_at}")
    library, broken = load_tolerant(settings)
    assert reconcile_front_matter(settings, store, library, broken, now=T0)
    events = send_due(settings, store, clock=Clock(T0 + timedelta(minutes=5)), up_since=T0)
    assert [e.action for e in events] == ["sample"] and server.count() == 8
    result = cli("check")  # send_at is long past, but the issue is on its way: not a problem
    assert result.exit_code == 0 and "has not been sent" not in result.output, result.output
    write_test_issue(write_issue)  # send_at removed while the test waits
    library, broken = load_tolerant(settings)
    assert reconcile_front_matter(settings, store, library, broken, now=T0 + timedelta(hours=1)) == []
    row = Queue(store).get(SLUG)
    assert row is not None and row.status == "queued" and "subject test" in row.note
    later = row.send_at + timedelta(seconds=1)
    events = send_due(settings, store, clock=Clock(later), up_since=T0)
    assert [e.action for e in events] == ["sent"] and server.count() == 40


def test_send_dry_run_and_the_cli_say_what_the_test_does(sending, write_issue, cli) -> None:
    _settings, store, server = sending
    add_subscribers(store, 50)
    write_test_issue(write_issue)
    dry = cli("send", SLUG, "--dry-run")
    assert dry.exit_code == 0 and "would start a subject test: 10 of 50 in the sample" in dry.output
    assert SubjectTests(store).get(SLUG) is None and server.count() == 0  # a dry run writes nothing
    sent = cli("send", SLUG)
    assert sent.exit_code == 0, sent.output
    assert f"'{A}' to 5, '{B}' to 5" in sent.output and "the winner goes to the rest at" in sent.output
    report = cli("report", SLUG)  # only the sample is out: the test's figures alone
    assert report.exit_code == 0 and "20% of 50 in the sample; deciding at" in report.output
    assert sum(ln.split()[:2] == ["5", "5"] for ln in report.output.splitlines()) == 2, report.output
