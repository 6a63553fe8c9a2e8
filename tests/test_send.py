"""ops.send end to end: a real issue file, a real database, a real SMTP server in another process."""

from __future__ import annotations

import email
import email.policy
import os
import socket
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from publisher.deliver import RetryPolicy
from publisher.ops.send import drain, issue_key, send_issue, send_test_copy
from publisher.store import Audience, SendBusyError, open_store
from publisher.tokens import Purpose, message_id, read_token
from tests.fixtures_content import article
from tests.fixtures_send import FAST, SLUG, T0, Clock
from tests.fixtures_store import add_subscribers


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def test_each_of_1000_subscribers_gets_exactly_their_own_message(sending) -> None:
    settings, store, server = sending
    emails = add_subscribers(store, 1000)
    store.subscribers.add("weekly@example.org", now=T0, frequency="weekly")
    store.subscribers.add("pending@example.org", now=T0, status="pending")
    outcome = send_issue(settings, store, SLUG, clock=Clock(), retry=FAST)
    assert outcome.action == "sent" and outcome.created and outcome.planned == 1000
    report = outcome.drain
    assert report is not None and report.fatal is None
    assert (report.sent, report.counts.sent, report.counts.pending, report.counts.failed) == (
        1000,
        1000,
        0,
        0,
    )

    received = server.received()
    assert Counter(m.rcpt for m in received) == Counter(emails)  # each once, nobody else
    senders: set[str] = set()
    secret = settings.secret_key()
    key = issue_key(SLUG)
    names = {e: f"Reader {i}" for i, e in enumerate(emails)}
    ids = set()
    for got in received:
        msg = parse(got.data)
        addr = got.rcpt
        assert msg["To"].addresses[0].addr_spec == addr
        assert msg["To"].addresses[0].display_name == names[addr]
        assert msg["Message-ID"] == message_id(secret, key, addr, settings.site.domain)
        ids.add(msg["Message-ID"])
        unsub = msg["List-Unsubscribe"].split("<")[1].split(">")[0]
        assert read_token(secret, Purpose.UNSUBSCRIBE, unsub.rsplit("/", 1)[1]) == addr
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        text = msg.get_body(("plain",)).get_content()
        assert f"Hi {names[addr]}," in text and unsub in text
        assert got.mail_from.startswith("bounces+") and got.mail_from.endswith("@example.org")  # VERP
        senders.add(got.mail_from)
    assert len(ids) == 1000 and len(senders) == 1000
    with store.read() as conn:
        stored = dict(conn.exec_driver_sql("SELECT email, message_id FROM deliveries").all())
    assert stored[emails[5]] == message_id(secret, key, emails[5], settings.site.domain)
    assert server.connections() <= settings.email.concurrency + 1

    again = send_issue(settings, store, SLUG, clock=Clock(), retry=FAST)
    assert again.action == "already-sent" and server.count() == 1000
    send = store.ledger.get_send(key)
    assert send.status == "done" and send.lease_owner is None


def test_tempfail_for_a_while_then_everything_is_delivered(sending) -> None:
    settings, store, server = sending
    emails = add_subscribers(store, 60)
    server.set_faults(tempfail_count=25)
    outcome = send_issue(settings, store, SLUG, clock=Clock(), retry=FAST)
    assert outcome.drain.counts.sent == 60 and outcome.drain.retries >= 1
    assert sorted(m.rcpt for m in server.received()) == emails


def test_550_fails_those_rows_with_the_reason_and_bounces_them(sending) -> None:
    settings, store, server = sending
    emails = add_subscribers(store, 30)
    bad = {emails[3]: "550 5.1.1 <x>: Recipient address rejected: User unknown", emails[9]: "554 5.7.1 Spam"}
    server.set_faults(reject=bad)
    report = send_issue(settings, store, SLUG, clock=Clock(), retry=FAST).drain
    assert (report.counts.sent, report.counts.failed, report.counts.pending) == (28, 2, 0)
    assert dict(report.failures) == {emails[3]: bad[emails[3]], emails[9]: bad[emails[9]]}
    assert store.subscribers.get(emails[3]).status.value == "bounced"
    assert store.subscribers.get(emails[9]).status.value == "confirmed"  # a policy refusal is not a bounce
    assert sorted(m.rcpt for m in server.received()) == sorted(set(emails) - set(bad))
    again = send_issue(settings, store, SLUG, clock=Clock(), retry=FAST)
    assert again.action == "already-sent" and server.count() == 28  # failed rows are not retried


def test_dropped_connections_mid_data_are_retried(sending) -> None:
    settings, store, server = sending
    emails = add_subscribers(store, 40)
    server.set_faults(drop_data_count=5)
    report = send_issue(settings, store, SLUG, clock=Clock(), retry=FAST).drain
    assert report.counts.sent == 40
    assert sorted(m.rcpt for m in server.received()) == emails


def test_server_down_keeps_rows_pending_for_the_next_run(sending) -> None:
    settings, store, server = sending
    add_subscribers(store, 20)
    server.stop()
    policy = RetryPolicy(attempts=2, initial=0.01, maximum=0.01, give_up_after=1, jitter=0)
    report = send_issue(settings, store, SLUG, clock=Clock(), retry=policy).drain
    assert report.fatal is not None and "cannot connect" in report.fatal.message
    assert (report.counts.sent, report.counts.pending) == (0, 20)
    assert store.ledger.get_send(issue_key(SLUG)).status == "paused"


def test_subscriber_who_leaves_mid_send_is_skipped(sending) -> None:
    settings, store, server = sending
    emails = add_subscribers(store, 10)
    plan = store.ledger.plan_send("issue", issue_key(SLUG), now=T0, issue_slug=SLUG)
    store.subscribers.set_status(emails[4], "unsubscribed", now=T0)
    store.subscribers.add("late@example.org", now=T0)  # joined after the plan: not in this send
    report = send_issue(settings, store, SLUG, clock=Clock(), retry=FAST).drain
    assert (report.counts.sent, report.counts.skipped, report.counts.planned) == (9, 1, 10)
    assert sorted(m.rcpt for m in server.received()) == sorted(set(emails) - {emails[4]})
    assert plan.send.id == store.ledger.get_send(issue_key(SLUG)).id


def test_dry_run_sends_nothing_and_writes_nothing(sending) -> None:
    settings, store, server = sending
    add_subscribers(store, 15)
    outcome = send_issue(settings, store, SLUG, clock=Clock(), dry_run=True)
    assert outcome.action == "dry-run" and outcome.to_send == 15
    assert store.ledger.get_send(issue_key(SLUG)) is None and server.count() == 0


def test_test_copy_touches_no_ledger(sending) -> None:
    settings, store, server = sending
    add_subscribers(store, 3)
    send_test_copy(settings, SLUG, "Editor@Example.org", now=T0, retry=FAST)
    [got] = server.received()
    assert got.rcpt == "editor@example.org" and parse(got.data)["Subject"]
    assert store.ledger.get_send(issue_key(SLUG)) is None and store.ledger.sends() == []


def test_a_test_copy_says_so_in_subject_and_body(sending) -> None:
    """Issue 13.5: a test copy is never taken for the real issue (prefix configurable)."""
    settings, store, server = sending
    send_test_copy(settings, SLUG, "editor@example.org", now=T0, retry=FAST)
    [got] = server.received()
    msg = parse(got.data)
    assert msg["Subject"].startswith("[TEST] ")
    assert "TEST COPY" in msg.get_body(("plain",)).get_content()
    assert "Test copy." in msg.get_body(("html",)).get_content()
    add_subscribers(store, 1)
    send_issue(settings, store, SLUG, clock=Clock(), retry=FAST)
    first, real_copy = server.received()
    assert first.rcpt == "editor@example.org" and real_copy.rcpt != "editor@example.org"
    real = parse(real_copy.data)
    assert not real["Subject"].startswith("[TEST]")
    assert "TEST COPY" not in real.get_body(("plain",)).get_content()
    assert "Test copy." not in real.get_body(("html",)).get_content()


def test_a_live_lease_holder_keeps_a_second_sender_out(sending) -> None:
    settings, store, server = sending
    add_subscribers(store, 5)
    send = store.ledger.plan_send("issue", issue_key(SLUG), now=T0, issue_slug=SLUG).send
    other = f"{socket.gethostname()}:{os.getppid()}:other"  # a process that is alive
    store.ledger.acquire(send.id, other, now=datetime.now(UTC), ttl=timedelta(minutes=5))
    with pytest.raises(SendBusyError, match="another process"):
        send_issue(settings, store, SLUG, clock=lambda: datetime.now(UTC), retry=FAST)
    assert server.count() == 0


def test_a_dead_lease_holder_on_this_machine_is_taken_over(sending) -> None:
    settings, store, server = sending
    add_subscribers(store, 5)
    send = store.ledger.plan_send("issue", issue_key(SLUG), now=T0, issue_slug=SLUG).send
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = f"{socket.gethostname()}:{gone.pid}:crashed"
    store.ledger.acquire(send.id, dead, now=datetime.now(UTC), ttl=timedelta(minutes=5))
    outcome = send_issue(settings, store, SLUG, clock=lambda: datetime.now(UTC), retry=FAST)
    assert outcome.drain.counts.sent == 5 and server.count() == 5


def test_file_transport_writes_one_eml_per_subscriber(project, write_issue, make_settings, db_url) -> None:
    write_issue(f"issues/{SLUG}.md", article(title="Spring News", date="2026-03-01"))
    settings = make_settings(database={"url": db_url})
    assert settings.email.transport == "file"
    with open_store(db_url) as store:
        emails = add_subscribers(store, 12)
        report = send_issue(settings, store, SLUG, clock=Clock()).drain
        assert report.counts.sent == 12
    folder = settings.paths.outbox / "issue-spring-news"
    files = sorted(folder.glob("*.eml"))
    assert len(files) == 12
    assert sorted(parse(f.read_bytes())["To"].addresses[0].addr_spec for f in files) == emails


def test_drain_takes_a_prepared_message_per_row(sending) -> None:
    """Digests reuse drain with their own plan and a message per variant."""
    settings, store, server = sending
    from publisher.content import load_issue
    from publisher.render.email import prepare_issue_email

    store.subscribers.add("daily@example.org", now=T0, frequency="daily", timezone="Europe/Paris")
    store.subscribers.add("weekly@example.org", now=T0, frequency="weekly")
    plan = store.ledger.plan_send(
        "digest", "digest:2026-03-02", now=T0, audience=Audience(frequencies=("daily", "weekly"))
    )
    issue = load_issue(settings, SLUG)
    variants = {
        f: prepare_issue_email(settings, issue, send_key=f"digest:{f}", date=T0) for f in ("daily", "weekly")
    }
    seen = []

    def prepared_for(row):
        seen.append((row.email, row.frequency, row.timezone))
        return variants[row.frequency]

    report = drain(settings, store, plan.send.id, prepared_for, clock=Clock(), retry=FAST)
    assert report.counts.sent == 2 and server.count() == 2
    assert sorted(seen) == [
        ("daily@example.org", "daily", "Europe/Paris"),
        ("weekly@example.org", "weekly", "UTC"),
    ]
