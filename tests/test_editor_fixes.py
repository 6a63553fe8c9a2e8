"""Issue 13, items 9, 10 and 12: what a new editor trips over.

A send by hand settles the issue's queue row; `check` reports a past send_at
of an issue not yet sent; lateness reads in days and is logged once; hints that
list choices say how many were left out; config typos get "did you mean"; an
unreachable SMTP server names the settings to check.
"""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from publisher.cli import app
from publisher.config import load_settings
from publisher.content import load_issue
from publisher.deliver import RetryPolicy
from publisher.deliver.envelope import Deferred
from publisher.deliver.smtp import SmtpParams, SmtpTransport
from publisher.errors import ConfigError, NotFoundError, and_more
from publisher.ops.queue import list_queue, queue_issue, send_due, span
from publisher.ops.send import send_issue
from publisher.schedule.runner import Runner, RunOptions
from publisher.store import Queue
from tests.fixtures_schedule import FakeClock

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SECRET = "test-secret-0123456789abcdef0123456789"
QUICK = RetryPolicy(attempts=2, initial=0.01, maximum=0.01, give_up_after=1, jitter=0)
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, project: Path):
    """`publisher ...` in-process against ``project`` (the scene's config)."""
    monkeypatch.setenv("PUBLISHER_SECRET_KEY", SECRET)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    cfg = str(project / "config.yaml")
    return lambda *args: runner.invoke(app, [*args, "--config", cfg])


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- item 9: a send by hand settles the queue entry ----------------------------------------------


@SQLITE
def test_send_by_hand_settles_the_queued_entry(scene, cli) -> None:
    scene.article("news")
    scene.store.subscribers.add("a@example.org", now=T0)
    assert cli("queue", "news", "--at", "2099-12-01 08:00").exit_code == 0
    result = cli("send", "news")
    assert result.exit_code == 0, result.output
    row = Queue(scene.store).get("news")
    assert row is not None and row.status == "sent" and row.note == "1 sent, 0 failed of 1"
    assert list_queue(scene.store) == []
    status = cli("status").stdout
    assert "news: queued" not in status and "nothing queued" in status
    again = cli("queue", "news", "--at", "2099-12-01 08:00")
    assert again.exit_code == 1 and "news was already sent" in again.stderr


@SQLITE
def test_send_by_hand_that_stops_short_marks_the_entry_failed_then_sent(scene) -> None:
    s, store = scene.settings, scene.store
    scene.article("news")
    store.subscribers.add("a@example.org", now=T0)
    queue_issue(s, store, "news", T0 + timedelta(days=1), now=T0)
    s.paths.outbox.parent.mkdir(parents=True, exist_ok=True)
    s.paths.outbox.write_text("a file where the outbox folder should be")
    outcome = send_issue(s, store, "news", clock=lambda: T0, retry=QUICK)
    assert outcome.drain is not None and outcome.drain.fatal is not None
    row = Queue(store).get("news")
    assert row is not None and row.status == "failed" and "1 not sent yet" in row.note
    s.paths.outbox.unlink()
    assert send_issue(s, store, "news", clock=lambda: T0, retry=QUICK).action == "sent"
    assert Queue(store).get("news").status == "sent"  # type: ignore[union-attr]


@SQLITE
def test_a_missed_issue_sent_by_hand_leaves_the_queue(scene) -> None:
    s, store = scene.settings, scene.store
    scene.article("news")
    store.subscribers.add("a@example.org", now=T0)
    queue_issue(s, store, "news", T0 + timedelta(minutes=1), now=T0)
    back = T0 + timedelta(days=2)
    assert [e.action for e in send_due(s, store, clock=FakeClock(back), up_since=back)] == ["missed"]
    send_issue(s, store, "news", clock=lambda: back)
    assert list_queue(store) == []


# -- item 10: a past send_at, and lateness in days, logged once ---------------------------------


@SQLITE
def test_check_reports_a_past_send_at_until_the_issue_is_sent(scene, cli) -> None:
    scene.article("old", extra="send_at: 2020-01-01 08:00")
    scene.article("later", extra="send_at: 2099-01-01 08:00")
    scene.article("old-draft", extra="send_at: 2020-01-01 08:00\ndraft: true")
    result = cli("check")
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert (
        lines[0].removeprefix("error: ")
        == "issues/old.md:4: send_at: 2020-01-01 08:00 GMT is in the past and old has not been sent"
    )
    assert lines[1].startswith("hint:") and "`publisher send old`" in result.stderr
    assert "later" not in result.stderr and "old-draft" not in result.stderr
    scene.store.subscribers.add("a@example.org", now=T0)
    assert cli("send", "old").exit_code == 0
    result = cli("check")
    assert result.exit_code == 0, result.output


@SQLITE
def test_check_lists_a_past_send_at_beside_other_problems(scene, cli) -> None:
    scene.article("old", extra="send_at: 2020-01-01 08:00")
    scene.article("broken", date="2021-13-01")
    result = cli("check")
    assert result.exit_code == 1
    assert "issues/broken.md:3: date: not a date" in result.stderr
    assert "issues/old.md:4: send_at: 2020-01-01 08:00 GMT is in the past" in result.stderr


def test_lateness_reads_in_days_hours_and_minutes() -> None:
    assert span(timedelta(days=2, hours=3)) == "2 days 3 h"
    assert span(timedelta(hours=60778, minutes=32)) == "2532 days 10 h 32 min"
    assert span(timedelta(days=1)) == "1 day"
    assert span(timedelta(hours=1, minutes=5)) == "1 h 5 min"
    assert span(timedelta(seconds=20)) == "0 min"


@SQLITE
def test_a_long_missed_issue_is_logged_once_in_days(scene, caplog) -> None:
    scene.article("old", extra="send_at: 2020-01-01 08:00")
    runner = Runner(
        scene.settings, scene.store, clock=FakeClock(T0), options=RunOptions(web=False, digests=False)
    )
    scene.settings.paths.state.mkdir(parents=True, exist_ok=True)
    runner.wakeups.start()
    try:
        with caplog.at_level(logging.INFO, logger="publisher"):
            runner._cycle()
    finally:
        runner.wakeups.shutdown()
    row = Queue(scene.store).get("old")
    assert row is not None and row.status == "missed"
    assert "2525 days 4 h late is over schedule.max_lateness (1 h)" in row.note
    late = [r.getMessage() for r in caplog.records if "max_lateness" in r.getMessage()]
    assert len(late) == 1 and late[0].startswith("missed old: "), late


# -- item 12: "and N more", "did you mean", SMTP settings to check -------------------------------


def test_and_more_says_how_many_were_left_out() -> None:
    assert and_more(["a", "b", "c"], 2) == "a, b … and 1 more"
    assert and_more(["a", "b"], 2) == "a, b"


@SQLITE
def test_unknown_issue_hint_says_how_many_more_exist(scene, cli) -> None:
    for n in range(10):
        scene.article(f"issue-{n}")
    with pytest.raises(NotFoundError) as exc:
        load_issue(scene.settings, "nope")
    assert (exc.value.hint or "").endswith("… and 2 more)")
    result = cli("send", "nope")
    assert result.exit_code == 1 and "and 2 more" in result.stderr


def test_config_typo_gets_did_you_mean(tmp_path: Path, cli, project: Path) -> None:
    path = tmp_path / "typo" / "config.yaml"
    path.parent.mkdir()
    path.write_text("email:\n  concurency: 8\n  nonsense: 1\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ={"PUBLISHER_SCHEDULE__MAX_LATENES": "2h"})
    lines = exc.value.lines()
    assert f"{path}:2: email.concurency: unknown key (did you mean 'concurrency'?)" in lines
    assert any(
        line.startswith(f"{path}:3: email.nonsense: unknown key (known here: from, reply_to,")
        and "more)" in line
        for line in lines
    ), lines
    assert (
        "PUBLISHER_SCHEDULE__MAX_LATENES (environment): schedule.max_latenes: unknown key "
        "(did you mean 'max_lateness'?)"
    ) in lines
    (project / "config.yaml").write_text("email:\n  concurency: 8\n")
    result = cli("check")
    assert result.exit_code == 1 and "did you mean 'concurrency'?" in result.stderr


@SQLITE
def test_smtp_connect_error_names_the_settings_to_check(scene) -> None:
    settings = scene.reconfigure(
        email={"transport": "smtp", "smtp": {"host": "127.0.0.1", "port": closed_port()}}
    )
    with pytest.raises(Deferred) as exc:
        SmtpTransport(SmtpParams.from_settings(settings, environ={})).open()
    for name in (
        "email.smtp.host",
        "email.smtp.port",
        "PUBLISHER_EMAIL__SMTP__HOST",
        "PUBLISHER_EMAIL__SMTP__PORT",
    ):
        assert name in exc.value.reason
    scene.article("news")
    scene.store.subscribers.add("a@example.org", now=T0)
    report = send_issue(settings, scene.store, "news", clock=lambda: T0, retry=QUICK).drain
    assert report is not None and report.fatal is not None
    assert "cannot connect" in report.fatal.message and "email.smtp.port" in report.fatal.message
