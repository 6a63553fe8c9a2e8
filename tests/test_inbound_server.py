"""``publisher inbound`` over real SMTP/LMTP: DSNs and complaints in, each applied once, hostile mail refused.

The bounces answer a real send: an issue goes out over SMTP to the test server,
and the DSNs are addressed to the VERP senders that server saw.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import make_msgid

import pytest
from aiosmtpd.handlers import Sink
from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.inbound.server import InboundServer, _PlainPaths
from publisher.models import SubscriberStatus
from publisher.ops.send import send_issue
from tests.fixtures_send import FAST, SLUG, Clock

NOW = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def dsn(verp: str, rcpt: str, status: str = "5.1.1", *, mid: str | None = None) -> bytes:
    """An RFC 3464 delivery status notification as a receiving MTA writes it."""
    action = "failed" if status.startswith("5") else "delayed"
    return (
        f"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        f"To: {verp}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: {mid or make_msgid(domain='mx.example.net')}\r\n"
        f"Auto-Submitted: auto-replied\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        f"--B\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host mx.example.net.\r\n\r\n"
        f"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} User unknown\r\n\r\n"
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nTo: {rcpt}\r\nSubject: Spring News\r\n\r\n"
        f"--B--\r\n"
    ).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sent(sending) -> Iterator[tuple]:
    """(settings, store, {address: VERP sender}) after an issue went to 30 subscribers."""
    settings, store, server = sending
    for i in range(30):
        store.subscribers.add(f"r{i}@example.org", now=NOW)
    send_issue(settings, store, SLUG, clock=Clock(), retry=FAST)
    yield settings, store, {m.rcpt: m.mail_from for m in server.received()}


@pytest.fixture
def inbound(sent) -> Iterator[tuple]:
    settings, store, verp = sent
    server = InboundServer(settings, store, clock=lambda: NOW, host="127.0.0.1", port=free_port()).start()
    yield settings, store, verp, server
    server.stop()


def deliver(port: int, rcpt: str, data: bytes, *, lmtp: bool = False) -> tuple[int, bytes]:
    client = smtplib.LMTP("127.0.0.1", port) if lmtp else smtplib.SMTP("127.0.0.1", port, timeout=10)
    with client:
        client.ehlo_or_helo_if_needed() if not lmtp else client.docmd("LHLO", "test")
        client.mail("")
        code, msg = client.rcpt(rcpt)
        if code != 250:
            return code, msg
        return client.data(data)


def test_a_dsn_over_smtp_bounces_the_delivery_it_names_once(inbound) -> None:
    _settings, store, verp, server = inbound
    message = dsn(verp["r1@example.org"], "r1@example.org")
    assert deliver(server.port, verp["r1@example.org"], message)[0] == 250
    assert store.subscribers.get("r1@example.org").status is SubscriberStatus.BOUNCED
    assert deliver(server.port, verp["r1@example.org"], message)[0] == 250  # the MTA retried
    events = store.feedback.outcomes_by_send(store.ledger.get_send(f"issue:{SLUG}").id)
    assert events == {"hard_bounce": 1}
    # a soft bounce does not bounce by itself
    assert (
        deliver(server.port, verp["r2@example.org"], dsn(verp["r2@example.org"], "r2@example.org", "4.2.2"))[
            0
        ]
        == 250
    )
    assert store.subscribers.get("r2@example.org").status is SubscriberStatus.CONFIRMED


def test_a_bounce_quoting_nothing_is_attributed_by_its_address(inbound) -> None:
    _settings, store, verp, server = inbound
    bare = (
        "From: MAILER-DAEMON@mx.example.net\r\nSubject: failure notice\r\n"
        f"Message-ID: <q1@mx.example.net>\r\nTo: {verp['r3@example.org']}\r\n\r\n"
        "Hi. This is the qmail-send program at mx.example.net.\r\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        "<someone-else@elsewhere.example>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n"
    ).encode()
    assert deliver(server.port, verp["r3@example.org"], bare)[0] == 250
    assert store.subscribers.get("r3@example.org").status is SubscriberStatus.BOUNCED


@pytest.mark.parametrize(
    "rcpt",
    [
        "postmaster@example.org",
        "news@example.org",
        "bounces+aaaaaaaaaaaaaaaaaaaa@example.org",
        "bounces@evil.example",
    ],
)
def test_only_our_addresses_are_accepted(inbound, rcpt: str) -> None:
    """Everything else is refused at RCPT (no relay, no catch-all)."""
    _, store, _verp, server = inbound
    code, _ = deliver(server.port, rcpt, dsn(rcpt, "r4@example.org"))
    assert code == 550
    assert store.subscribers.get("r4@example.org").status is SubscriberStatus.CONFIRMED


@pytest.mark.parametrize(
    "rcpt",
    [
        "=?utf-8?q?bounces=0D=0A?=@example.org",
        "bounces+" + "a" * 5000 + "@example.org",
        "BOUNCES+\u202eabc@example.org",
        "bounces@example.org\u2028x",
    ],
    ids=["encoded-word", "10k-token", "bidi", "line-separator"],
)
def test_hostile_recipients_are_refused_and_the_server_goes_on(inbound, rcpt: str) -> None:
    _, store, verp, server = inbound
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        client.ehlo()
        client.mail("")
        client.send(f"RCPT TO:<{rcpt}>\r\n".encode())  # as sent, non-ASCII included
        code, _ = client.getreply()
        assert code >= 500
    good = verp["r4@example.org"]
    assert deliver(server.port, good, dsn(good, "r4@example.org"))[0] == 250
    assert store.subscribers.get("r4@example.org").status is SubscriberStatus.BOUNCED


def test_hostile_mail_changes_nothing_and_the_server_keeps_answering(inbound) -> None:
    settings, store, verp, server = inbound
    before = {a: store.subscribers.get(a).status for a in verp}
    hostile = [
        b"\x00\xff garbage \r\n\r\n\x00",
        b"Content-Type: multipart/report; boundary=\r\n\r\n--\r\n--\r\n" * 50,
        dsn("bounces@example.org", "stranger@elsewhere.example"),  # a forged DSN, no token
        dsn("bounces@example.org", "r5@example.org"),  # names a subscriber, but carries no token of ours
        dsn(verp["r6@example.org"], "r6@example.org").replace(b"5.1.1", b"9.9.9\x00"),
    ]
    for data in hostile:
        assert deliver(server.port, "bounces@example.org", data)[0] == 250
    assert {a: store.subscribers.get(a).status for a in verp} == before
    too_big = b"Subject: big\r\n\r\n" + (b"x" * 76 + b"\r\n") * (settings.inbound.max_size // 78 + 10)
    assert deliver(server.port, "bounces@example.org", too_big)[0] == 552
    assert (
        deliver(server.port, verp["r7@example.org"], dsn(verp["r7@example.org"], "r7@example.org"))[0] == 250
    )
    assert store.subscribers.get("r7@example.org").status is SubscriberStatus.BOUNCED


def test_lmtp_answers_each_recipient(sent) -> None:
    settings, store, verp = sent
    settings = settings.model_copy(update={"inbound": settings.inbound.model_copy(update={"lmtp": True})})
    server = InboundServer(settings, store, clock=lambda: NOW, host="127.0.0.1", port=free_port()).start()
    try:
        with smtplib.LMTP("127.0.0.1", server.port) as client:
            client.docmd("LHLO", "test")
            client.mail("")
            for rcpt in (verp["r8@example.org"], "bounces@example.org"):
                assert client.rcpt(rcpt)[0] == 250
            client.putcmd("data")
            assert client.getreply()[0] == 354
            client.send(dsn(verp["r8@example.org"], "r8@example.org") + b"\r\n.\r\n")
            replies = [client.getreply()[0] for _ in range(2)]  # one per recipient
        assert replies == [250, 250]
        assert store.subscribers.get("r8@example.org").status is SubscriberStatus.BOUNCED
    finally:
        server.stop()


def test_kill_9_mid_batch_loses_and_doubles_nothing(sent, tmp_path) -> None:
    """The real command, killed while bounces stream in; the sender retries what got no 250."""
    settings, store, verp = sent
    port = free_port()

    def start() -> subprocess.Popen:
        return _command(settings, port)

    messages = {a: dsn(v, a, mid=f"<k{i}@mx.example.net>") for i, (a, v) in enumerate(sorted(verp.items()))}
    acknowledged: set[str] = set()
    proc = start()
    for n, (address, data) in enumerate(messages.items()):
        if n == 12:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        try:
            if deliver(port, verp[address], data)[0] == 250:
                acknowledged.add(address)
        except (OSError, smtplib.SMTPException):
            pass
    assert 0 < len(acknowledged) < len(messages)
    proc = start()
    try:
        for address, data in messages.items():  # an MTA retries the rest; some twice, to be sure
            assert deliver(port, verp[address], data)[0] == 250
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    assert all(store.subscribers.get(a).status is SubscriberStatus.BOUNCED for a in messages)
    send = store.ledger.get_send(f"issue:{SLUG}")
    assert store.feedback.outcomes_by_send(send.id) == {"hard_bounce": len(messages)}


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        time.sleep(0.1)
        return False


def _command(settings, port: int, *options: str) -> subprocess.Popen:
    """The real ``publisher inbound`` on ``port``, once it says it listens."""
    env = {
        **os.environ,
        settings.secret_env: settings.secret_key().decode(),
        "PUBLISHER_DATABASE__URL": settings.database.url,
    }
    command = [sys.executable, "-m", "publisher.cli", "inbound", "--listen", f"127.0.0.1:{port}", *options]
    command += ["--config", str(settings.base_dir / "config.yaml")]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert proc.stderr is not None
    said = []
    for line in proc.stderr:  # "inbound: SMTP on ... (Ctrl-C stops)": once it listens
        said.append(line)
        if b"(Ctrl-C stops)" in line:
            break
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # never let its log fill the pipe
    assert _listening(port), b"".join(said).decode(errors="replace")
    return proc


def test_pipelined_commands_are_answered_in_order(inbound) -> None:
    """PIPELINING is offered (Postfix then writes MAIL, RCPT and DATA at once); each gets its reply."""
    _, store, verp, server = inbound
    good = verp["r9@example.org"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        replies = sock.makefile("rb")
        replies.readline()
        sock.sendall(b"EHLO test\r\n")
        assert b"250-PIPELINING\r\n" in _reply(replies)
        sock.sendall(
            b"MAIL FROM:<>\r\nRCPT TO:<postmaster@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\n" % good.encode()
        )
        assert [_reply(replies)[:3] for _ in range(4)] == [b"250", b"550", b"250", b"354"]
        sock.sendall(dsn(good, "r9@example.org") + b".\r\n")
        assert _reply(replies)[:3] == b"250"
        # no recipient taken: DATA is refused, and what follows is read as commands, not as mail
        sock.sendall(b"MAIL FROM:<>\r\nRCPT TO:<news@example.org>\r\nDATA\r\nNOOP\r\n")
        assert [_reply(replies)[:3] for _ in range(4)] == [b"250", b"550", b"503", b"250"]
    assert store.subscribers.get("r9@example.org").status is SubscriberStatus.BOUNCED


def _reply(lines) -> bytes:
    """One whole (possibly multi-line) reply."""
    out = [lines.readline()]
    while out[-1][3:4] == b"-":
        out.append(lines.readline())
    return b"".join(out)


_ATOM = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
_PATHS = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda local, domain, rest: f"<{local}@{domain}>{rest}",
        st.text(alphabet=_ATOM + '.. "\\()<>[]@,;:\u00e9', max_size=20),
        st.text(alphabet="abcXYZ019-..[]_ ", max_size=20),
        st.sampled_from(
            ["", " SIZE=100", "\t BODY=8BITMIME SMTPUTF8", "x", " ", ">", " (c) X=1", "(c)", " \u2028y"]
        ),
    ),
)


@functools.cache
def _server() -> _PlainPaths:
    return _PlainPaths(Sink(), loop=asyncio.new_event_loop())


@settings(max_examples=400, deadline=None)
@given(arg=_PATHS)
def test_plain_paths_are_read_as_aiosmtpd_reads_them(arg: str) -> None:
    """The shortcut for ``<local@domain>`` gives what aiosmtpd's own parser gives, for any argument."""
    server = _server()
    assert _outcome(server._getaddr, arg) == _outcome(functools.partial(SMTP._getaddr, server), arg)


def _outcome(read, arg: str) -> tuple:
    try:
        return ("read", read(arg))
    except Exception as exc:  # the same failure either way is the same behaviour
        return ("raised", type(exc))
