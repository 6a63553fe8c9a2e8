"""Onboarding sequences: steps in order, in the reader's local window, once each, over real SMTP.

Rounds run in-process with an injected clock (an hour at a time, across DST changes) on
SQLite and PostgreSQL; two tests run a real `publisher run` process, one killed with -9
mid-round. A hostile step file is refused with file:line and nothing of its sequence is sent.
"""

from __future__ import annotations

import email
import email.policy
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from publisher.cli import app as cli_app
from publisher.config import Settings, load_settings
from publisher.content.sequences import load_sequence
from publisher.errors import ConfigError, ContentError, NotFoundError
from publisher.models import SubscriberStatus
from publisher.ops.feedback import suppress
from publisher.ops.sequences import (
    enter_sequence,
    open_windows,
    prepared_for_send,
    run_sequences,
    sequence_status,
)
from publisher.ops.welcome import send_welcome
from publisher.render.email import make_recipient
from publisher.store import Store, open_store
from publisher.store.sequences import SequenceStore
from tests.fixtures_email import SECRET
from tests.fixtures_web import Clock
from tests.polling import wait_for
from tests.test_run import Proc

SEQ = "onboard"


def step_text(subject: str, after: str, body: str = "Hello {{ name }}.") -> str:
    return f"---\ntitle: {subject}\nsubject: {subject}\nafter: {after}\n---\n\n{body}\n"


def write_step(project: Path, name: str, file: str, subject: str, after: str, seq: str = SEQ) -> Path:
    folder = project / "sequences" / seq
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file
    path.write_text(step_text(subject, after), encoding="utf-8")
    return path


@pytest.fixture
def seq_settings(make_settings, db_url: str, smtp_server, project: Path) -> Settings:
    """A project with the sequence ``onboard`` (0, 1 day, 2 days, 3 days), mailing the test server."""
    for i, after in enumerate(("0", "1 day", "2 days", "3 days"), start=1):
        write_step(project, SEQ, f"0{i}-step-{i}.md", f"Step {i}", after)
    return make_settings(
        database={"url": db_url},
        email={"transport": "smtp", "smtp": {"host": "127.0.0.1", "port": smtp_server.port, "timeout": 10}},
    )


class Sim:
    """A scheduler simulated hour by hour: rounds at ``clock``, each mail noted with the time it left."""

    def __init__(self, settings: Settings, store: Store, server, clock: Clock, up_since: datetime) -> None:
        self.settings, self.store, self.server, self.clock = settings, store, server, clock
        self.up_since = up_since
        self.log: list[tuple[datetime, str, str]] = []  # (when, rcpt, subject)

    def round(self, send: bool = True):
        seen = self.server.count()
        report = run_sequences(self.settings, self.store, clock=self.clock, up_since=self.up_since, send=send)
        for r in self.server.received()[seen:]:
            self.log.append((self.clock(), r.rcpt, str(r.message()["Subject"])))
        return report

    def hours(self, n: int, step: float = 1.0) -> None:
        for _ in range(n):
            self.clock.advance(hours=step)
            self.round()

    def subjects(self, rcpt: str) -> list[str]:
        return [s for _, r, s in self.log if r == rcpt]


def sim(seq_settings, store, smtp_server, start: datetime) -> Sim:
    clock = Clock(start)
    return Sim(seq_settings, store, smtp_server, clock, start)


def add(store: Store, email: str, when: datetime, tz: str = "UTC") -> int:
    return store.subscribers.add(email, now=when, name=email.split("@")[0].title(), timezone=tz).id


# -- order and local time, across DST ------------------------------------------------------------------


def test_steps_arrive_in_order_one_a_day_in_the_local_window_across_dst(
    seq_settings: Settings, store: Store, smtp_server
) -> None:
    # Berlin leaves summer time on 25 Oct 2026, New York on 1 Nov; start 06:00 UTC on 23 Oct.
    start = datetime(2026, 10, 23, 6, 0, tzinfo=UTC)
    s = sim(seq_settings, store, smtp_server, start)
    zones = {"ber@example.org": "Europe/Berlin", "ny@example.org": "America/New_York"}
    ids = [add(store, e, start, tz) for e, tz in zones.items()]
    assert enter_sequence(seq_settings, store, SEQ, ids, now=start) == 2
    assert enter_sequence(seq_settings, store, SEQ, ids, now=start) == 0  # once per sequence
    s.round()
    s.hours(24 * 11)
    for rcpt, tz in zones.items():
        assert s.subjects(rcpt) == ["Step 1", "Step 2", "Step 3", "Step 4"]
        local = [when.astimezone(ZoneInfo(tz)) for when, r, _ in s.log if r == rcpt]
        assert all(9 <= t.hour < 17 for t in local), local
        assert len({t.date() for t in local}) == 4  # never two on one local day
    ber = [w.astimezone(ZoneInfo("Europe/Berlin")) for w, r, _ in s.log if r == "ber@example.org"]
    assert ber[0].date().isoformat() == "2026-10-23" and ber[0].hour == 9  # the window opened
    assert {t.utcoffset() for t in ber} == {timedelta(hours=2), timedelta(hours=1)}  # both sides of DST
    assert s.round().planned == {}  # all done; nothing more, ever


def test_a_step_is_never_planned_before_its_time(seq_settings: Settings, store: Store, smtp_server) -> None:
    start = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)  # 10:00 UTC, inside the window
    s = sim(seq_settings, store, smtp_server, start)
    enter_sequence(seq_settings, store, SEQ, [add(store, "a@example.org", start)], now=start)
    s.round()
    s.hours(23)  # 23 hours later: step 2 (after 1 day) not yet
    assert s.subjects("a@example.org") == ["Step 1"]
    s.hours(1)
    assert s.subjects("a@example.org") == ["Step 1", "Step 2"]


# -- leaving -------------------------------------------------------------------------------------------


def test_unsubscribe_mid_sequence_stops_the_rest(seq_settings: Settings, store: Store, smtp_server) -> None:
    start = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    s = sim(seq_settings, store, smtp_server, start)
    ids = [add(store, "stay@example.org", start), add(store, "go@example.org", start)]
    enter_sequence(seq_settings, store, SEQ, ids, now=start)
    s.round()
    s.hours(24)
    store.subscribers.set_status("go@example.org", SubscriberStatus.UNSUBSCRIBED, now=s.clock())
    s.hours(24 * 4)
    assert s.subjects("go@example.org") == ["Step 1", "Step 2"]
    assert s.subjects("stay@example.org") == ["Step 1", "Step 2", "Step 3", "Step 4"]
    store.subscribers.set_status("go@example.org", SubscriberStatus.CONFIRMED, now=s.clock())
    s.hours(48)  # coming back does not restart an old onboarding
    assert s.subjects("go@example.org") == ["Step 1", "Step 2"]


def test_unsubscribed_or_suppressed_between_plan_and_drain_is_skipped(
    seq_settings: Settings, store: Store, smtp_server
) -> None:
    start = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    s = sim(seq_settings, store, smtp_server, start)
    ids = [add(store, f"{n}@example.org", start) for n in ("left", "supp", "ok")]
    enter_sequence(seq_settings, store, SEQ, ids, now=start)
    assert s.round(send=False).planned == {"sequence:onboard:01-step-1": 3}
    store.subscribers.set_status("left@example.org", SubscriberStatus.UNSUBSCRIBED, now=start)
    suppress(store, seq_settings, "supp@example.org", reason="complained", now=start)
    [report] = s.round().drains
    assert report.sent == 1 and report.skipped == 2
    assert [r for _, r, _ in s.log] == ["ok@example.org"]


def test_suppressed_and_unconfirmed_are_never_entered(seq_settings: Settings, store: Store) -> None:
    now = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    ids = [add(store, "x@example.org", now), add(store, "y@example.org", now)]
    store.subscribers.add("p@example.org", now=now, status=SubscriberStatus.PENDING)
    pending = store.subscribers.get("p@example.org").id
    suppress(store, seq_settings, "y@example.org", reason="bounced", now=now)
    assert enter_sequence(seq_settings, store, SEQ, [*ids, pending, 999_999], now=now) == 1
    with pytest.raises(NotFoundError):
        enter_sequence(seq_settings, store, "nope", ids, now=now)


# -- the steps change ----------------------------------------------------------------------------------


def test_a_step_added_later_reaches_only_those_not_yet_past_it(
    seq_settings: Settings, store: Store, smtp_server, project: Path
) -> None:
    for f in ("02-step-2.md", "03-step-3.md"):
        (project / "sequences" / SEQ / f).unlink()  # steps: 01 (0), 04 (3 days)
    start = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    s = sim(seq_settings, store, smtp_server, start)
    enter_sequence(seq_settings, store, SEQ, [add(store, "early@example.org", start)], now=start)
    s.round()
    s.hours(36)  # day 2, 22:00: early is 1.5 days in
    enter_sequence(seq_settings, store, SEQ, [add(store, "late@example.org", s.clock())], now=s.clock())
    s.hours(12)  # day 3, 10:00: early 2 days in (past a 1-day step), late 0.5 day in (not yet)
    write_step(project, SEQ, "02-added.md", "Added", "1 day")
    s.hours(24 * 5)
    assert s.subjects("early@example.org") == ["Step 1", "Step 4"]
    assert s.subjects("late@example.org") == ["Step 1", "Added", "Step 4"]


def test_editing_a_step_never_resends_it(
    seq_settings: Settings, store: Store, smtp_server, project: Path
) -> None:
    start = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    s = sim(seq_settings, store, smtp_server, start)
    enter_sequence(seq_settings, store, SEQ, [add(store, "ed@example.org", start)], now=start)
    s.round()
    path = project / "sequences" / SEQ / "01-step-1.md"
    path.write_text(step_text("Step 1, reworded", "0", "New words."), encoding="utf-8")
    s.hours(24 * 4)
    assert s.subjects("ed@example.org") == ["Step 1", "Step 2", "Step 3", "Step 4"]


def test_a_removed_step_stops_and_members_move_on(
    seq_settings: Settings, store: Store, smtp_server, project: Path
) -> None:
    start = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    s = sim(seq_settings, store, smtp_server, start)
    enter_sequence(seq_settings, store, SEQ, [add(store, "rm@example.org", start)], now=start)
    s.round()
    s.clock.advance(hours=24)
    assert s.round(send=False).planned == {"sequence:onboard:02-step-2": 1}  # planned, not yet sent
    (project / "sequences" / SEQ / "02-step-2.md").unlink()
    (project / "sequences" / SEQ / "03-step-3.md").unlink()
    s.hours(24 * 4)
    assert s.subjects("rm@example.org") == ["Step 1", "Step 4"]
    send = store.ledger.get_send("sequence:onboard:02-step-2")
    assert send is not None and store.ledger.counts(send.id).skipped == 1


# -- downtime ------------------------------------------------------------------------------------------


def test_after_a_day_down_one_mail_a_day_and_lateness_obeyed(
    seq_settings: Settings, store: Store, smtp_server
) -> None:
    start = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)  # before the window
    s = sim(seq_settings, store, smtp_server, start)
    enter_sequence(seq_settings, store, SEQ, [add(store, "down@example.org", start)], now=start)
    s.clock.advance(days=4, hours=4)  # down for four days; up again at 12:00 UTC
    s.up_since = s.clock()
    s.round()
    s.hours(4)  # every step is overdue, but their slots passed long before we came up
    assert s.subjects("down@example.org") == []
    s.hours(24 * 5)
    times = [w for w, r, _ in s.log if r == "down@example.org"]
    assert s.subjects("down@example.org") == ["Step 1", "Step 2", "Step 3", "Step 4"]
    assert len({w.date() for w in times}) == 4 and all(w.hour == 9 for w in times)


def test_one_sequence_mail_a_day_across_sequences(
    seq_settings: Settings, store: Store, smtp_server, project: Path
) -> None:
    write_step(project, "other", "01-hi.md", "Other 1", "0", seq="other")
    start = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    s = sim(seq_settings, store, smtp_server, start)
    sid = add(store, "both@example.org", start)
    enter_sequence(seq_settings, store, SEQ, [sid], now=start)
    enter_sequence(seq_settings, store, "other", [sid], now=start)
    s.round()
    s.hours(6)
    assert len(s.subjects("both@example.org")) == 1
    s.hours(24)
    assert len(s.subjects("both@example.org")) == 2
    write_step(project, "third", "01-hi.md", "Third 1", "0", seq="third")
    enter_sequence(seq_settings, store, "third", [sid], now=s.clock())  # entered after today's mail
    s.hours(4)
    assert len(s.subjects("both@example.org")) == 2
    s.hours(24)
    assert len(s.subjects("both@example.org")) == 3


# -- the welcome sequence ------------------------------------------------------------------------------


def test_confirm_welcomes_at_once_and_later_welcome_steps_follow(
    seq_settings: Settings, store: Store, smtp_server, project: Path
) -> None:
    write_step(project, "welcome", "01-hello.md", "Welcome", "0", seq="welcome")
    write_step(project, "welcome", "02-tips.md", "Tips", "0", seq="welcome")
    start = datetime(2026, 6, 1, 20, 0, tzinfo=UTC)  # after the window: the welcome mail still goes now
    s = sim(seq_settings, store, smtp_server, start)
    sid = add(store, "new@example.org", start)
    report = send_welcome(seq_settings, store, clock=s.clock, subscriber_ids=[sid])
    assert report.sent == 1
    s.log.append((start, "new@example.org", "Welcome"))
    s.hours(12)  # 08:00 next day: window closed
    s.hours(2)
    assert s.subjects("new@example.org") == ["Welcome", "Tips"]
    send_welcome(seq_settings, store, clock=s.clock, subscriber_ids=[sid])  # confirming again
    s.hours(48)
    assert [r.message()["Subject"] for r in smtp_server.received()] == ["Welcome", "Tips"]


# -- hostile step files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("after: soon", "after: expected 0 or a duration"),
        ("after: -1 day", "after: expected 0 or a duration"),
        ("after: " + "2 days " * 1_500, "after: expected 0 or a duration"),
        ("after: 99999 weeks", "after: expected 0 or a duration"),
        ('subject: "Hi\\r\\nBcc: all@evil.example"', "line break or control character"),
        ('subject: "Hi\\u202ethere"', "line break or control character"),
        ("subject: " + "x" * 10_240, "keep it under 200"),
        ("subject: =?utf-8?q?Hi=0D=0ABcc:_x@evil.example?=", "'=?'"),
    ],
)
def test_a_hostile_step_is_refused_with_file_and_line_and_its_sequence_waits(
    line: str, expected: str, seq_settings: Settings, store: Store, smtp_server, project: Path, caplog
) -> None:
    (project / "sequences" / SEQ / "02-step-2.md").write_text(f"---\ntitle: Hi\n{line}\n---\n\nHi.\n")
    with pytest.raises(ContentError) as err:
        load_sequence(seq_settings, SEQ)
    [problem] = err.value.lines()
    assert problem.startswith(f"sequences/{SEQ}/02-step-2.md:3: ") and expected in problem
    now = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    sid = add(store, "h@example.org", now)
    with pytest.raises(ContentError):
        enter_sequence(seq_settings, store, SEQ, [sid], now=now)
    report = run_sequences(seq_settings, store, clock=Clock(now))
    assert report.waiting == [SEQ] and smtp_server.count() == 0
    assert f"sequences/{SEQ}/02-step-2.md:3:" in caplog.text


def test_a_nul_in_a_body_and_two_steps_with_one_number_are_refused(
    seq_settings: Settings, project: Path
) -> None:
    (project / "sequences" / SEQ / "02-step-2.md").write_bytes(b"---\ntitle: Hi\n---\n\nA \x00 here.\n")
    write_step(project, SEQ, "03-again.md", "Again", "0")
    with pytest.raises(ContentError) as err:
        load_sequence(seq_settings, SEQ)
    lines = err.value.lines()
    assert any(x.startswith(f"sequences/{SEQ}/02-step-2.md:5: contains a NUL") for x in lines)
    assert any(x.startswith(f"sequences/{SEQ}/03-") and "step 3 twice" in x for x in lines)


def test_prepared_for_send_renders_a_step_and_skips_a_removed_one(
    seq_settings: Settings, store: Store, project: Path
) -> None:
    now = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    enter_sequence(seq_settings, store, SEQ, [add(store, "p@example.org", now)], now=now)
    run_sequences(seq_settings, store, clock=Clock(now), send=False)
    send = store.ledger.get_send("sequence:onboard:01-step-1")
    prepared = prepared_for_send(seq_settings, store, send, date=now)
    assert prepared is not None
    raw = prepared.personalise(make_recipient(seq_settings, SECRET, send.key, "p@example.org", "Pat"))
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == "Step 1" and "Hello Pat." in msg.get_body(("plain",)).get_content()
    (project / "sequences" / SEQ / "01-step-1.md").unlink()
    assert prepared_for_send(seq_settings, store, send, date=now) is None
    assert store.ledger.counts(send.id).skipped == 1


def test_a_steps_links_are_counted_and_recorded_for_its_send_before_it_leaves(
    seq_settings: Settings, store: Store, project: Path
) -> None:
    """A re-engagement mail is answered by a click: a step's links go through /r/ like an issue's."""
    now = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    body = "Still reading? [Yes, keep me](https://example.org/still-here) or [mail us](mailto:a@example.org)."
    (project / "sequences" / SEQ / "01-step-1.md").write_text(
        step_text("Step 1", "0", body), encoding="utf-8"
    )
    enter_sequence(seq_settings, store, SEQ, [add(store, "p@example.org", now)], now=now)
    run_sequences(seq_settings, store, clock=Clock(now), send=False)
    send = store.ledger.get_send("sequence:onboard:01-step-1")
    prepared = prepared_for_send(seq_settings, store, send, date=now)
    assert prepared is not None and prepared.links is not None
    urls = prepared.links.urls
    assert "https://example.org/still-here" in urls and not any(u.startswith("mailto:") for u in urls)
    target = store.clicks.target(send.key, urls.index("https://example.org/still-here") + 1)
    assert target is not None and target.url == "https://example.org/still-here"
    raw = prepared.personalise(make_recipient(seq_settings, SECRET, send.key, "p@example.org", "Pat"))
    html = email.message_from_bytes(raw, policy=email.policy.default).get_body(("html",)).get_content()
    assert "/r/" in html and 'href="https://example.org/still-here"' not in html
    assert (
        "https://example.org/still-here"
        in email.message_from_bytes(raw, policy=email.policy.default).get_body(("plain",)).get_content()
    )  # the text part keeps the real URL


# -- the CLI -------------------------------------------------------------------------------------------


def test_cli_enter_with_a_filter_and_status(seq_settings: Settings, store: Store, project: Path) -> None:
    now = datetime.now(UTC)
    for i in range(3):
        store.subscribers.add(f"g{i}@example.org", now=now, topics="gardening")
    store.subscribers.add("other@example.org", now=now, topics="cooking")
    runner = CliRunner()
    cfg = ["--config", str(project / "config.yaml")]
    nothing = runner.invoke(cli_app, ["sequences", "enter", SEQ, *cfg])
    assert nothing.exit_code == 1 and "--all" in nothing.output
    got = runner.invoke(cli_app, ["sequences", "enter", SEQ, "--topic", "gardening", *cfg])
    assert got.exit_code == 0, got.output
    assert "3 entered" in got.output
    again = runner.invoke(cli_app, ["sequences", "enter", SEQ, "--topic", "gardening", *cfg])
    assert "0 entered" in again.output
    status = runner.invoke(cli_app, ["sequences", "status", *cfg])
    assert status.exit_code == 0, status.output
    rows = [x.split("\t") for x in status.output.splitlines()]
    assert rows[0] == ["sequence", "step", "after", "at this step", "due in 24 h"]
    assert [SEQ, "(entered, none yet)", "0", "3", "0"] in rows
    assert [SEQ, "01-step-1", "0", "0", "3"] in rows and [SEQ, "02-step-2", "1 day(s)", "0", "0"] in rows
    bad = runner.invoke(cli_app, ["sequences", "enter", "no-such", "--all", *cfg])
    assert bad.exit_code == 1 and "no sequence" in bad.output


def test_status_counts_members_at_each_step(seq_settings: Settings, store: Store, smtp_server) -> None:
    start = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    s = sim(seq_settings, store, smtp_server, start)
    enter_sequence(
        seq_settings, store, SEQ, [add(store, f"s{i}@example.org", start) for i in range(3)], now=start
    )
    s.round()
    lines, broken = sequence_status(seq_settings, store, now=s.clock())
    by_step = {x.step: (x.at_step, x.due_24h) for x in lines}
    assert broken == [] and by_step["01-step-1"] == (3, 0) and by_step["02-step-2"] == (0, 3)
    assert SequenceStore(store).at_steps() == {(SEQ, 1): 3}


# -- a real `publisher run` ----------------------------------------------------------------------------


def _day_zone() -> str:
    """A zone where it is now mid-day, so "once a local day" cannot straddle midnight during the test."""
    for tz in (
        "UTC",
        "Asia/Tokyo",
        "America/Los_Angeles",
        "Asia/Kolkata",
        "Europe/Berlin",
        "America/New_York",
    ):
        if 6 <= datetime.now(ZoneInfo(tz)).hour < 18:
            return tz
    return "Pacific/Kiritimati"


@pytest.fixture
def live_seq(project: Path, make_settings, smtp_server):
    settings = make_settings(
        database={"url": f"sqlite:///{project / 'publisher.db'}"},
        email={
            "transport": "smtp",
            "concurrency": 2,
            "smtp": {"host": "127.0.0.1", "port": smtp_server.port, "timeout": 10},
        },
        sequences={"send_at": "00:00-24:00"},
    )
    write_step(project, SEQ, "01-first.md", "First", "0")
    write_step(project, SEQ, "02-second.md", "Second", "0")
    store = open_store(settings.database.url)
    procs: list[Proc] = []

    def start() -> Proc:
        procs.append(Proc(project, len(procs)))
        procs[-1].wait_up()
        return procs[-1]

    yield settings, store, start
    for p in procs:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()
        p.fh.close()
    store.close()


@pytest.mark.slow
def test_publisher_run_sends_the_first_step_and_holds_the_second_for_tomorrow(
    live_seq, smtp_server, project: Path
) -> None:
    _, store, start = live_seq
    zone = _day_zone()
    now = datetime.now(UTC)
    for i in range(3):
        store.subscribers.add(f"run{i}@example.org", now=now, timezone=zone)
    runner = CliRunner()
    got = runner.invoke(
        cli_app, ["sequences", "enter", SEQ, "--all", "--config", str(project / "config.yaml")]
    )
    assert got.exit_code == 0 and "3 entered" in got.output, got.output
    run = start()
    try:
        wait_for(lambda: smtp_server.count() >= 3, timeout=20)
        wait_for(lambda: "sequences: 3 planned, 3 sent" in run.log(), timeout=10)
        time.sleep(2.5)  # several more rounds (one a second): "Second" must not follow today
    finally:
        assert run.stop() == 0
    subjects = Counter(str(r.message()["Subject"]) for r in smtp_server.received())
    assert subjects == {"First": 3}  # "Second" (after 0) waits for the readers' next local day


@pytest.mark.slow
def test_kill_9_mid_round_then_restart_loses_nothing_and_doubles_at_most_in_flight(
    live_seq, smtp_server
) -> None:
    settings, store, start = live_seq
    zone = _day_zone()
    now = datetime.now(UTC)
    ids = [store.subscribers.add(f"k{i:04d}@example.org", now=now, timezone=zone).id for i in range(300)]
    enter_sequence(settings, store, SEQ, ids, now=now)
    smtp_server.set_faults(data_delay_ms=15)
    run = start()
    wait_for(lambda: smtp_server.count() >= 30, timeout=30)
    run.proc.send_signal(signal.SIGKILL)
    run.proc.wait()
    assert smtp_server.count() < 300
    smtp_server.set_faults()
    again = start()
    wait_for(lambda: len({r.rcpt for r in smtp_server.received()}) == 300, timeout=60)
    wait_for(lambda: "sequences:" in again.log(), timeout=10)
    assert again.stop() == 0
    counts = Counter(r.rcpt for r in smtp_server.received())
    assert set(counts) == {f"k{i:04d}@example.org" for i in range(300)}
    assert sum(c - 1 for c in counts.values()) <= 2  # at most the one in flight on each connection
    assert {str(r.message()["Subject"]) for r in smtp_server.received()} == {"First"}
    send = store.ledger.get_send("sequence:onboard:01-first")
    assert send is not None and store.ledger.counts(send.id).sent == 300
    assert SequenceStore(store).at_steps() == {(SEQ, 1): 300}


def test_the_repos_sample_welcome_steps_load(mail_settings: Settings) -> None:
    steps = load_sequence(mail_settings, "welcome")
    assert steps and steps[0].key == "welcome:01-hello"
    assert all(s.key == f"sequence:welcome:{s.slug}" for s in steps[1:])


# -- config and hostile names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("17:00-09:00", "must end after it starts"),
        ("9-5", "expected a window such as 09:00-17:00"),
        ("9:00-17:00", "expected a time as HH:MM"),
        ("09:00", "expected a window such as 09:00-17:00"),
        ("09:00-25:00", "expected a window such as 09:00-17:00"),
        ("09:00-17:00\\r\\nx", "expected a window such as 09:00-17:00"),
    ],
)
def test_a_bad_send_at_window_is_refused_naming_the_key_and_line(
    value: str, expected: str, tmp_path: Path
) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f'site:\n  title: T\nsequences:\n  send_at: "{value}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={"PUBLISHER_SECRET_KEY": "test-secret-0123456789abcdef0123456789"})
    text = "\n".join(err.value.lines())
    assert "config.yaml:4" in text and "sequences.send_at" in text and expected in text


def test_the_window_takes_24_00_and_is_open_all_day(make_settings, project: Path) -> None:
    settings = make_settings(sequences={"send_at": "00:00-24:00"})
    now = datetime(2026, 6, 1, 23, 59, tzinfo=UTC)
    assert [w.zone for w in open_windows(settings, ["UTC", "Bogus/Zone"], now, up_since=now)] == ["UTC"]


@pytest.mark.parametrize(
    "name", ["../etc", "On Board", "onboard\r\nx", "=?utf-8?q?x?=", "a\u202eb", "x" * 10_240, "onboard\x00"]
)
def test_cli_refuses_a_hostile_sequence_name_and_enters_nobody(
    name: str, seq_settings: Settings, store: Store, project: Path
) -> None:
    store.subscribers.add("n@example.org", now=datetime.now(UTC))
    got = CliRunner().invoke(
        cli_app, ["sequences", "enter", name, "--all", "--config", str(project / "config.yaml")]
    )
    assert got.exit_code == 1 and "Traceback" not in got.output
    assert "\r" not in got.output and "\x00" not in got.output and "\u202e" not in got.output
    assert SequenceStore(store).at_steps() == {}


@pytest.mark.parametrize(
    ("flags", "code", "entered"),
    [
        (["--search", "%"], 0, 0),  # a LIKE wildcard is a character here, not "everyone"
        (["--search", "_"], 0, 0),
        (["--search", "=?utf-8?q?x?="], 0, 0),
        (["--search", "x" * 10_240], 0, 0),
        (["--topic", "a;b\r\nc"], 0, 0),
        (["--zone", "UTC\r\nX"], 1, None),
        (["--zone", "../../etc/passwd"], 1, None),
        (["--search", "ann"], 0, 1),
    ],
)
def test_cli_filters_take_hostile_values_as_plain_text(
    flags: list[str], code: int, entered: int | None, seq_settings: Settings, store: Store, project: Path
) -> None:
    store.subscribers.add("ann@example.org", now=datetime.now(UTC), name="Ann")
    store.subscribers.add("bob@example.org", now=datetime.now(UTC), name="Bob")
    got = CliRunner().invoke(
        cli_app, ["sequences", "enter", SEQ, *flags, "--config", str(project / "config.yaml")]
    )
    assert got.exit_code == code, got.output
    assert "Traceback" not in got.output and "\r" not in got.output
    if entered is not None:
        assert f"{entered} entered" in got.output
    assert sum(SequenceStore(store).at_steps().values()) == (entered or 0)
