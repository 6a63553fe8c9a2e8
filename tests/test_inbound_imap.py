"""``publisher inbound`` polling a real IMAP mailbox (Dovecot): reports applied once, then moved.

The bounces answer a real send: an issue goes out over SMTP to the test
server, and the DSNs are addressed to the VERP senders that server saw, then
put into the mailbox with IMAP APPEND.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import make_msgid

import pytest

from publisher.config import Settings
from publisher.errors import PublisherError
from publisher.inbound.imap import MailboxPoller
from publisher.models import SubscriberStatus
from publisher.ops.send import send_issue
from publisher.store import Store
from tests.fixtures_imap import PASSWORD, Dovecot
from tests.fixtures_send import FAST, SLUG, Clock
from tests.polling import wait_for
from tests.test_inbound_server import dsn

NOW = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
DONE = "publisher-processed"
ENV = {"PUBLISHER_IMAP_PASSWORD": PASSWORD}


def arf(verp: str, rcpt: str) -> bytes:
    """An RFC 5965 complaint quoting our original (its Return-Path carries the token)."""
    return (
        f"From: staff@fbl.example.net\r\nTo: bounces@example.org\r\nSubject: complaint about message\r\n"
        f"Message-ID: {make_msgid(domain='fbl.example.net')}\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\r\n\r\n'
        f"--F\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n"
        f"--F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n"
        f"User-Agent: FBL/1.0\r\nVersion: 1\r\nOriginal-Rcpt-To: {rcpt}\r\n\r\n"
        f"--F\r\nContent-Type: message/rfc822\r\n\r\nReturn-Path: <{verp}>\r\nFrom: news@example.org\r\n"
        f"To: {rcpt}\r\nSubject: Spring News\r\n\r\nHello\r\n\r\n--F--\r\n"
    ).encode()


def delivered_to(address: str, data: bytes) -> bytes:
    """The header an MTA adds on final delivery (the only trace of the envelope in a mailbox)."""
    return f"Delivered-To: {address}\r\n".encode() + data.replace(b"To: bounces+", b"To: other+", 1)


@dataclass
class Box:
    """A sent issue and an empty mailbox for its reports."""

    settings: Settings
    store: Store
    verp: dict[str, str]  # subscriber address -> the VERP sender their copy went out with
    dovecot: Dovecot
    user: str

    def poller(self) -> MailboxPoller:
        return MailboxPoller(self.settings, self.store, clock=lambda: NOW, environ=ENV)

    def drain(self) -> int:
        poller = self.poller()
        client = poller.connect()
        try:
            return poller.drain(client)
        finally:
            client.logout()

    def counts(self) -> tuple[int, int]:
        """(messages left in INBOX, messages in the processed folder)."""
        return self.dovecot.count(self.user, "INBOX"), self.dovecot.count(self.user, DONE)

    def status(self, address: str) -> SubscriberStatus:
        return self.store.subscribers.get(address).status

    def outcomes(self) -> dict[str, int]:
        return self.store.feedback.outcomes_by_send(self.store.ledger.get_send(f"issue:{SLUG}").id)


def _box(sending, make_settings, server: Dovecot, n: int, **mailbox: object) -> Box:
    _, store, smtp = sending
    for i in range(n):
        store.subscribers.add(f"r{i}@example.org", now=NOW)
    user = server.new_user()
    settings = make_settings(inbound={"mailbox": server.mailbox(user, **mailbox)})
    send_issue(settings, store, SLUG, clock=Clock(), retry=FAST)
    return Box(settings, store, {m.rcpt: m.mail_from for m in smtp.received()}, server, user)


@pytest.fixture
def box(sending, make_settings, dovecot: Dovecot) -> Box:
    """Ten subscribers sent to; a mailbox on a Dovecot with IDLE and MOVE."""
    return _box(sending, make_settings, dovecot, 10)


@pytest.fixture
def running(box: Box) -> Iterator[tuple[Box, MailboxPoller]]:
    """The poller in its thread (IDLE, renewed only every 60 s: a wake-up can only come from IDLE)."""
    poller = box.poller().start()
    yield box, poller
    poller.stop()


def test_dsns_and_complaints_are_applied_once_and_moved(box: Box) -> None:
    v = box.verp
    box.dovecot.append(
        box.user,
        [
            dsn(v["r1@example.org"], "r1@example.org", mid="<hard@mx.example.net>"),
            delivered_to(v["r2@example.org"], dsn(v["r2@example.org"], "r2@example.org")),
            arf(v["r3@example.org"], "r3@example.org"),
            dsn(v["r4@example.org"], "r4@example.org", "4.2.2"),
        ],
    )
    assert box.drain() == 4
    assert box.counts() == (0, 4)
    assert [box.status(f"r{i}@example.org") for i in range(1, 5)] == [
        SubscriberStatus.BOUNCED,
        SubscriberStatus.BOUNCED,  # attributed by Delivered-To, though To: names another address
        SubscriberStatus.COMPLAINED,
        SubscriberStatus.CONFIRMED,  # a soft bounce does not bounce by itself
    ]
    # the same report again (a re-read after a crash) is moved and counts once
    box.dovecot.append(box.user, [dsn(v["r1@example.org"], "r1@example.org", mid="<hard@mx.example.net>")])
    assert box.drain() == 1
    assert box.counts() == (0, 5)
    assert box.outcomes() == {"hard_bounce": 2, "soft_bounce": 1, "complaint": 1}


def test_ignored_mail_is_moved_and_changes_nothing(box: Box) -> None:
    v = box.verp
    before = {a: box.status(a) for a in v}
    box.dovecot.append(
        box.user,
        [
            b"From: friend@example.net\r\nTo: editors@example.org\r\nSubject: hello\r\n\r\nNice issue!\r\n",
            dsn("bounces@example.org", "r5@example.org"),  # names a subscriber, carries no token
            dsn("bounces+aaaaaaaaaaaaaaaaaaaa@example.org", "r6@example.org"),  # a forged token
            b"Auto-Submitted: auto-replied\r\nTo: " + v["r7@example.org"].encode() + b"\r\n\r\nAway.\r\n",
            delivered_to("someone@elsewhere.example", dsn(v["r8@example.org"], "r8@example.org")),
        ],
    )
    assert box.drain() == 5
    assert box.counts() == (0, 5)
    assert {a: box.status(a) for a in v} == before


def test_hostile_mail_never_stops_the_poller(running: tuple[Box, MailboxPoller]) -> None:
    box, _poller = running
    v = box.verp
    huge = (
        b"Subject: big\r\nTo: " + v["r1@example.org"].encode() + b"\r\n\r\n" + (b"x" * 76 + b"\r\n") * 66000
    )
    hostile = [
        b"\x00\xff garbage \r\n\r\n\x00",
        b"To: "
        + v["r2@example.org"].encode()
        + b"\r\nContent-Type: multipart/report; boundary=\r\n\r\n--\r\n"
        b"--\r\n" * 50,
        dsn("bounces@example.org", "r3@example.org").replace(b"5.1.1", b"9.9.9\x00"),
        b"To: "
        + v["r4@example.org"].encode()
        + b"\r\nContent-Type: multipart/mixed\r\n\r\n"
        + b"\xff" * 5000,
        huge,  # 5 MB: only the first 256 KB is fetched
        b"\r\n",
    ]
    box.dovecot.append(box.user, hostile)
    wait_for(lambda: box.counts() == (0, len(hostile)), timeout=20)
    assert all(box.status(a) is SubscriberStatus.CONFIRMED for a in v)
    # still alive: the next real bounce is applied
    box.dovecot.append(box.user, [dsn(v["r9@example.org"], "r9@example.org")])
    wait_for(lambda: box.status("r9@example.org") is SubscriberStatus.BOUNCED, timeout=10)
    assert box.counts() == (0, len(hostile) + 1)


def test_idle_wakes_on_a_new_message(running: tuple[Box, MailboxPoller]) -> None:
    box, _poller = running
    v = box.verp
    box.dovecot.append(box.user, [dsn(v["r1@example.org"], "r1@example.org")])
    wait_for(lambda: box.counts() == (0, 1), timeout=10)  # the first drain is done: now in IDLE
    box.dovecot.append(box.user, [dsn(v["r2@example.org"], "r2@example.org")])
    wait_for(lambda: box.status("r2@example.org") is SubscriberStatus.BOUNCED, timeout=10)  # poll: 60 s
    wait_for(lambda: box.counts() == (0, 2), timeout=5)


def test_without_idle_and_move_it_polls_and_copies(sending, make_settings, plain_dovecot: Dovecot) -> None:
    box = _box(sending, make_settings, plain_dovecot, 4, poll_seconds=0.2, batch=2)
    poller = box.poller().start()
    try:
        box.dovecot.append(
            box.user, [dsn(box.verp[f"r{i}@example.org"], f"r{i}@example.org") for i in range(3)]
        )
        wait_for(lambda: box.counts() == (0, 3), timeout=10)
        assert all(box.status(f"r{i}@example.org") is SubscriberStatus.BOUNCED for i in range(3))
    finally:
        poller.stop()
    assert box.outcomes() == {"hard_bounce": 3}


def test_a_wrong_password_names_the_key_and_the_variable(
    sending, make_settings, own_dovecot: Dovecot
) -> None:
    box = _box(sending, make_settings, own_dovecot, 1)
    with pytest.raises(PublisherError) as missing:
        MailboxPoller(box.settings, box.store, clock=lambda: NOW, environ={})
    assert "PUBLISHER_IMAP_PASSWORD (inbound.mailbox.password_env)" in str(missing.value)
    done = subprocess.run(
        _command(box.settings),
        env={**_env(box.settings), "PUBLISHER_IMAP_PASSWORD": "nope"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    said = " ".join(done.stderr.split())
    assert f"refused the login of '{box.user}'" in said
    assert "inbound.mailbox.username and the password in the environment variable" in said
    assert "PUBLISHER_IMAP_PASSWORD (inbound.mailbox.password_env)" in said


def _command(settings: Settings) -> list[str]:
    config = settings.base_dir / "config.yaml"
    return [sys.executable, "-m", "publisher.cli", "inbound", "--config", str(config)]


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        **ENV,
        settings.secret_env: settings.secret_key().decode(),
        "PUBLISHER_DATABASE__URL": settings.database.url,
    }


def test_kill_9_while_draining_a_backlog_loses_and_doubles_nothing(
    sending, make_settings, dovecot: Dovecot
) -> None:
    """The real command, killed at random points mid-backlog, then restarted until the folder is empty."""
    n = 300
    box = _box(sending, make_settings, dovecot, n, batch=5)
    box.dovecot.append(
        box.user, [dsn(v, a, mid=f"<k{i}@mx.example.net>") for i, (a, v) in enumerate(box.verp.items())]
    )
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    mid_drain = 0
    for _ in range(2):
        proc = subprocess.Popen(_command(box.settings), env=_env(box.settings), stderr=subprocess.DEVNULL)
        seen = box.counts()[1]
        wait_for(lambda seen=seen: box.counts()[1] > seen, timeout=30, step=0.01)
        time.sleep(rng.uniform(0, 0.1))  # somewhere in the drain: fetching, applying, committing or moving
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        left, moved = box.counts()
        mid_drain += left > 0 and moved > 0
        if left == 0:
            break
    assert mid_drain, f"no kill landed mid-drain (seed {seed})"
    proc = subprocess.Popen(_command(box.settings), env=_env(box.settings), stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: box.counts() == (0, n), timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    assert box.counts() == (0, n), f"seed {seed}"
    assert all(box.status(a) is SubscriberStatus.BOUNCED for a in box.verp)
    assert box.outcomes() == {"hard_bounce": n}, f"seed {seed}"
