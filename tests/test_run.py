"""`publisher run` as a real process: SQLite, SMTP to the real aiosmtpd test server, signals, kill -9.

Marked slow (each test starts the command a few times) but part of the default run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from publisher.ops.queue import queue_issue
from publisher.ops.send import issue_key
from publisher.schedule.guard import LEASE
from publisher.store import Leases, Queue, open_store
from tests.polling import wait_for as shared_wait_for

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 2


def now() -> datetime:
    return datetime.now(UTC)


def wait_for(check, timeout: float = 30.0, step: float = 0.05):
    return shared_wait_for(check, timeout, step)


class Proc:
    """One `publisher run --no-web` process; its log goes to a file (read it with .log())."""

    def __init__(self, project: Path, n: int, env: dict[str, str] | None = None) -> None:
        self.logfile = project / f"run{n}.log"
        self.fh = open(self.logfile, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from publisher.cli import main; main()",
                "run",
                "--no-web",
                "--poll",
                "0.3",
                "--digest-every",
                "1",
                "--config",
                str(project / "config.yaml"),
            ],
            cwd=ROOT,
            stdout=self.fh,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "PUBLISHER_SECRET_KEY": "test-secret-0123456789abcdef0123456789",
                **(env or {}),
            },
        )

    def log(self) -> str:
        return self.logfile.read_text(errors="replace")

    def wait_up(self) -> None:
        wait_for(lambda: "publisher run: up" in self.log() or self.proc.poll() is not None, timeout=60)
        assert self.proc.poll() is None, self.log()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.fh.close()
        return code


@pytest.fixture
def live(project, make_settings, smtp_server):
    """(settings, store, server, start) for a tmp project on SQLite that mails the test SMTP server."""
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

    def start(env: dict[str, str] | None = None) -> Proc:
        p = Proc(project, len(procs), env)
        procs.append(p)
        return p

    yield settings, store, smtp_server, start
    for p in procs:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()
        p.fh.close()
    store.close()


def issue(project: Path, slug: str, extra: str = "") -> None:
    (project / "issues" / f"{slug}.md").write_text(
        f"---\ntitle: {slug.title()}\ndate: 2026-11-20T09:00:00+00:00\n{extra}---\n\nNews about {slug}.\n"
    )


def add(store, n: int, **kw) -> list[str]:
    emails = [f"r{i:04d}@example.org" for i in range(n)]
    for e in emails:
        store.subscribers.add(e, now=now() - timedelta(days=2), **kw)
    return emails


def test_sends_on_time_and_a_second_run_refuses(project, live) -> None:
    settings, store, server, start = live
    issue(project, "weekly-news")
    add(store, 20)
    first = start()
    first.wait_up()
    at = now() + timedelta(seconds=2)
    queue_issue(settings, store, "weekly-news", at, now=now())  # queued while it runs
    second = start()
    assert second.proc.wait(60) == 1
    assert "another `publisher run` is already running" in second.log()
    wait_for(lambda: server.count() == 20)
    times = [t for (t,) in server._query("SELECT received_at FROM messages")]
    assert at.timestamp() - 0.05 <= min(times) < at.timestamp() + 2.0, min(times) - at.timestamp()
    assert first.stop() == 0
    assert "publisher run: stopped" in first.log()
    assert Leases(store).get(LEASE) is None
    assert sorted(Counter(m.rcpt for m in server.received()).values()) == [1] * 20


def test_kill_9_around_the_send_time_then_restart(project, live) -> None:
    settings, store, server, start = live
    issue(project, "big-news")
    emails = add(store, 300)
    server.set_faults(data_delay_ms=15)
    run = start()
    run.wait_up()
    queue_issue(settings, store, "big-news", now() + timedelta(seconds=1), now=now())
    wait_for(lambda: server.count() >= 30)
    run.stop(signal.SIGKILL)
    before = server.count()
    assert before < 300
    server.set_faults()
    again = start()  # takes the lock (freed by the OS) and the dead process's leases at once
    again.wait_up()
    wait_for(lambda: len({m.rcpt for m in server.received()}) == 300)
    time.sleep(0.5)
    assert again.stop() == 0
    counts = Counter(m.rcpt for m in server.received())
    assert set(counts) == set(emails)  # every message at least once
    doubled = sum(c - 1 for c in counts.values())
    assert doubled <= CONCURRENCY  # at most the one in flight on each connection
    send = store.ledger.get_send(issue_key("big-news"))
    assert send is not None and store.ledger.counts(send.id).sent == 300
    assert Queue(store).get("big-news").status == "sent"  # type: ignore[union-attr]


def test_sigterm_mid_send_checkpoints_and_the_next_start_finishes(project, live) -> None:
    settings, store, server, start = live
    issue(project, "big-news")
    add(store, 200)
    server.set_faults(data_delay_ms=15)
    queue_issue(settings, store, "big-news", now() + timedelta(seconds=3), now=now())
    run = start()
    run.wait_up()
    wait_for(lambda: server.count() >= 20)
    assert run.stop(signal.SIGTERM) == 0
    got = server.count()
    assert got < 200
    send = store.ledger.get_send(issue_key("big-news"))
    assert send is not None and send.lease_owner is None
    assert store.ledger.counts(send.id).sent == got  # nothing accepted went unrecorded
    assert Leases(store).get(LEASE) is None
    server.set_faults()
    again = start()
    again.wait_up()
    wait_for(lambda: server.count() >= 200)
    time.sleep(0.3)
    assert again.stop() == 0
    assert sorted(Counter(m.rcpt for m in server.received()).values()) == [1] * 200


@pytest.mark.parametrize(("lateness", "sent"), [("1h", False), ("3h", True)])
def test_issue_due_during_a_two_hour_outage(project, live, lateness, sent) -> None:
    settings, store, server, start = live
    issue(project, "morning-news")
    add(store, 5)
    t = now()
    # queued three hours ago for two hours ago; nothing was running since
    queue_issue(settings, store, "morning-news", t - timedelta(hours=2), now=t - timedelta(hours=3))
    run = start({"PUBLISHER_SCHEDULE__MAX_LATENESS": lateness})
    run.wait_up()
    row = wait_for(lambda: (q := Queue(store).get("morning-news")) and q.status in ("sent", "missed") and q)
    time.sleep(0.5)
    assert run.stop() == 0
    if sent:
        assert row.status == "sent" and server.count() == 5
    else:
        assert row.status == "missed" and server.count() == 0
        assert "over schedule.max_lateness (1 h)" in row.note
        assert "missed morning-news" in run.log()
        # and a restart does not send it either: it waits for the editor
        again = start()
        again.wait_up()
        time.sleep(1.0)
        assert again.stop() == 0 and server.count() == 0


def test_front_matter_and_digest_without_restart(project, live) -> None:
    _, store, server, start = live
    at = now()
    project_cfg = project / "config.yaml"
    # a daily digest due this very minute (UTC), for a subscriber of two days' standing
    text = project_cfg.read_text() + f"digests:\n  daily:\n    at: '{at:%H:%M}'\n"
    project_cfg.write_text(text)
    issue(project, "old-story")
    store.subscribers.add("daily@example.org", now=at - timedelta(days=2), frequency="daily", timezone="UTC")
    store.subscribers.add("instant@example.org", now=at - timedelta(days=2))
    run = start()
    run.wait_up()
    wait_for(lambda: server.count() == 1)  # the digest, at start-up
    soon = (now() + timedelta(seconds=2)).replace(microsecond=0)
    issue(project, "fresh-story", extra=f"send_at: {soon.isoformat()}\n")
    wait_for(lambda: server.count() == 2)
    time.sleep(2.5)  # two more digest checks: nothing more for this period
    assert run.stop() == 0
    got = [(m.rcpt, m.message()["Subject"]) for m in server.received()]
    assert got[0][0] == "daily@example.org" and "daily: Old-Story" in got[0][1]
    assert got[1] == ("instant@example.org", "Fresh-Story")
    assert len(got) == 2
