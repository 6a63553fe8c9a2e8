"""Delivery at the bytes level, against a real aiosmtpd server in another process."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import dkim
import pytest

from publisher.deliver import (
    DeliveryPool,
    DkimSigner,
    Envelope,
    FatalDeliveryError,
    FileTransport,
    RateLimiter,
    RetryPolicy,
    SmtpParams,
    SmtpTransport,
    Status,
    is_hard_bounce,
    safe_name,
)
from publisher.deliver.envelope import Deferred, Rejected

FAST = RetryPolicy(attempts=6, initial=0.05, maximum=0.2, give_up_after=10, jitter=0.01)
SENDER = "news@example.org"


def message(to: str, n: int = 0, *, extra: str = "") -> bytes:
    return (
        f"From: News <{SENDER}>\r\nTo: {to}\r\nSubject: Issue {n}\r\n"
        "Date: Fri, 01 Mar 2024 09:00:00 +0000\r\n"
        f"Message-ID: <m{n}@example.org>\r\n"
        f"List-Unsubscribe: <https://news.example.org/unsubscribe/t{n}>\r\n"
        f"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n{extra}"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello {to}\r\n.leading dot\r\n"
    ).encode()


def build(item: tuple[int, str]) -> Envelope:
    n, to = item
    return Envelope(SENDER, to, message(to, n), f"<m{n}@example.org>")


def smtp_factory(port: int, **kw):
    params = SmtpParams("127.0.0.1", port, **{"timeout": 5, **kw})
    return lambda: SmtpTransport(params)


# The server offers PIPELINING; the client uses it (one write for MAIL, RCPT, DATA) or not.
both_ways = pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "classic"])


def run(pool: DeliveryPool, items: list, *, timeout: float = 60) -> list:
    """Submit everything, collect one result per item, ack each as a ledger would."""
    pool.start()
    for item in items:
        pool.submit(item)
    results = []
    deadline = time.monotonic() + timeout
    while len(results) < len(items):
        assert time.monotonic() < deadline, "pool did not answer in time"
        r = pool.get(timeout=0.5)
        if r is not None:
            results.append(r)
            pool.ack(r)
    pool.close()
    return results


def addresses(n: int) -> list[tuple[int, str]]:
    return [(i, f"reader{i}@example.org") for i in range(n)]


# -- the happy path --------------------------------------------------------------------------------


@both_ways
def test_pool_delivers_each_message_once_over_reused_connections(smtp_server, pipelining: bool) -> None:
    items = addresses(200)
    pool = DeliveryPool(
        smtp_factory(smtp_server.port, pipelining=pipelining), build, concurrency=4, retry=FAST
    )
    results = run(pool, items)
    assert sorted(r.item[0] for r in results if r.status is Status.SENT) == list(range(200))
    got = smtp_server.received()
    assert sorted(m.rcpt for m in got) == sorted(to for _, to in items)
    assert smtp_server.connections() == 4  # reused, not one per message
    sample = next(m for m in got if m.rcpt == "reader7@example.org").message()
    assert sample["To"] == "reader7@example.org" and sample["Message-ID"] == "<m7@example.org>"
    assert ".leading dot" in sample.get_content()  # dot-stuffing round-trips
    assert all(r.message_id == f"<m{r.item[0]}@example.org>" for r in results)


def test_bare_lf_messages_are_sent_with_crlf(smtp_server) -> None:
    pool = DeliveryPool(
        smtp_factory(smtp_server.port),
        lambda to: Envelope(SENDER, to, message(to).replace(b"\r\n", b"\n")),
        concurrency=1,
        retry=FAST,
    )
    assert [r.status for r in run(pool, ["lf@example.org"])] == [Status.SENT]
    assert b"\r\nSubject: Issue 0\r\n" in smtp_server.received()[0].data


# -- faults ----------------------------------------------------------------------------------------


@both_ways
def test_tempfail_451_for_a_while_then_all_delivered(smtp_server, pipelining: bool) -> None:
    smtp_server.set_faults(tempfail_count=12)
    pool = DeliveryPool(
        smtp_factory(smtp_server.port, pipelining=pipelining), build, concurrency=3, retry=FAST
    )
    results = run(pool, addresses(30))
    assert {r.status for r in results} == {Status.SENT}
    assert len(smtp_server.events("tempfail")) == 12
    assert sorted(m.rcpt for m in smtp_server.received()) == sorted(a for _, a in addresses(30))
    assert pool.stats.retries >= 1


@both_ways
def test_421_closes_the_connection_and_we_reconnect(smtp_server, pipelining: bool) -> None:
    smtp_server.set_faults(tempfail_count=3, tempfail_reply="421 4.4.2 Too busy, closing")
    pool = DeliveryPool(
        smtp_factory(smtp_server.port, pipelining=pipelining), build, concurrency=2, retry=FAST
    )
    results = run(pool, addresses(10))
    assert {r.status for r in results} == {Status.SENT}
    assert smtp_server.count() == 10
    assert smtp_server.connections() > 2


@both_ways
def test_connection_dropped_mid_data_is_retried(smtp_server, pipelining: bool) -> None:
    smtp_server.set_faults(drop_data_count=3)
    pool = DeliveryPool(
        smtp_factory(smtp_server.port, pipelining=pipelining), build, concurrency=2, retry=FAST
    )
    results = run(pool, addresses(20))
    assert {r.status for r in results} == {Status.SENT}
    assert len(smtp_server.events("drop")) == 3
    assert sorted(m.rcpt for m in smtp_server.received()) == sorted(a for _, a in addresses(20))


@both_ways
def test_5xx_fails_that_recipient_only_and_flags_hard_bounces(smtp_server, pipelining: bool) -> None:
    smtp_server.set_faults(
        reject={
            "reader3@example.org": "550 5.1.1 <reader3@example.org>: No such user",
            "reader5@example.org": "554 5.7.1 Message refused as spam",
        }
    )
    pool = DeliveryPool(
        smtp_factory(smtp_server.port, pipelining=pipelining), build, concurrency=2, retry=FAST
    )
    results = {r.item[0]: r for r in run(pool, addresses(8))}
    assert results[3].status is Status.FAILED and results[3].hard_bounce
    assert results[3].reason == "550 5.1.1 <reader3@example.org>: No such user"
    assert results[5].status is Status.FAILED and not results[5].hard_bounce
    assert "5.7.1" in results[5].reason
    assert sorted(k for k, r in results.items() if r.status is Status.SENT) == [0, 1, 2, 4, 6, 7]
    assert smtp_server.count() == 6


def test_tempfail_beyond_the_policy_leaves_the_row_deferred(smtp_server) -> None:
    smtp_server.set_faults(tempfail_count=100)
    policy = RetryPolicy(attempts=3, initial=0.01, maximum=0.02, give_up_after=5, jitter=0)
    pool = DeliveryPool(smtp_factory(smtp_server.port), build, concurrency=1, retry=policy)
    results = run(pool, addresses(2))
    assert [r.status for r in results] == [Status.DEFERRED, Status.DEFERRED]
    assert results[0].reason.startswith("451")
    assert pool.fatal is None  # the server answers: not a reason to stop everything


def test_unreachable_server_stops_the_pool(tmp_path) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    policy = RetryPolicy(attempts=2, initial=0.01, maximum=0.01, give_up_after=2, jitter=0)
    pool = DeliveryPool(smtp_factory(port), build, concurrency=2, retry=policy)
    results = run(pool, addresses(10))
    assert isinstance(pool.fatal, FatalDeliveryError) and "cannot connect" in pool.fatal.message
    assert Status.SENT not in {r.status for r in results}
    assert sum(r.status is Status.ABANDONED for r in results) >= 8


def test_a_message_that_cannot_be_built_stops_the_pool(smtp_server) -> None:
    def broken(item: tuple[int, str]) -> Envelope:
        if item[0] == 2:
            raise KeyError("name")
        return build(item)

    pool = DeliveryPool(smtp_factory(smtp_server.port), broken, concurrency=1, retry=FAST)
    results = run(pool, addresses(6))
    assert isinstance(pool.fatal, FatalDeliveryError) and "KeyError" in pool.fatal.message
    assert [r.status for r in results] == [Status.SENT, Status.SENT] + [Status.ABANDONED] * 4


def test_at_most_one_unacknowledged_acceptance_per_connection(smtp_server) -> None:
    pool = DeliveryPool(smtp_factory(smtp_server.port), build, concurrency=3, retry=FAST).start()
    for item in addresses(30):
        pool.submit(item)
    held = [pool.get(timeout=1) for _ in range(3)]
    assert all(r is not None and r.status is Status.SENT for r in held)
    assert pool.get(timeout=1.0) is None  # nothing acked: each connection stops before its next dot
    assert pool.blocked()
    assert smtp_server.count() == 3
    for r in held:
        pool.ack(r)
    results = held
    while len(results) < 30:
        r = pool.get(timeout=5)
        assert r is not None
        results.append(r)
        pool.ack(r)
    pool.close()
    assert smtp_server.count() == 30


@pytest.mark.parametrize(
    ("code", "reply", "hard"),
    [
        (550, "550 5.1.1 No such user", True),
        (550, "550 5.1.10 Null MX", True),
        (550, "550 5.2.1 Mailbox disabled", True),
        (552, "552 5.2.2 Mailbox full", False),
        (550, "550 5.7.1 Spam", False),
        (554, "554 5.7.1 Policy", False),
        (550, "550 Requested action not taken: mailbox unavailable", True),
        (553, "553 mailbox name not allowed", True),
        (554, "554 Transaction failed", False),
        (451, "451 4.1.1 temporarily", False),
    ],
)
def test_hard_bounce_classification(code: int, reply: str, hard: bool) -> None:
    assert is_hard_bounce(code, reply) is hard


# -- TLS and AUTH ----------------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_starttls_and_auth(start_smtp_server, certificate) -> None:
    import ssl

    cert, key = certificate
    server = start_smtp_server("--tls-cert", str(cert), "--tls-key", str(key), "--auth", "editor:s3cret")
    ctx = ssl.create_default_context(cafile=str(cert))
    good = smtp_factory(
        server.port, security="starttls", username="editor", password="s3cret", ssl_context=ctx
    )
    assert {r.status for r in run(DeliveryPool(good, build, concurrency=2, retry=FAST), addresses(5))} == {
        Status.SENT
    }
    assert server.count() == 5
    bad = smtp_factory(server.port, security="starttls", username="editor", password="wrong", ssl_context=ctx)
    pool = DeliveryPool(bad, build, concurrency=1, retry=FAST)
    run(pool, addresses(3))
    assert isinstance(pool.fatal, FatalDeliveryError) and "refused the login" in pool.fatal.message
    untrusted = smtp_factory(server.port, security="starttls", username="editor", password="s3cret")
    pool = DeliveryPool(untrusted, build, concurrency=1, retry=FAST)
    run(pool, addresses(1))
    assert isinstance(pool.fatal, FatalDeliveryError) and "TLS" in pool.fatal.message
    assert server.count() == 5


def test_implicit_tls_with_auth(start_smtp_server, certificate) -> None:
    import ssl

    cert, key = certificate
    server = start_smtp_server(
        "--tls-cert", str(cert), "--tls-key", str(key), "--implicit-tls", "--auth", "editor:s3cret"
    )
    ctx = ssl.create_default_context(cafile=str(cert))
    good = smtp_factory(server.port, security="ssl", username="editor", password="s3cret", ssl_context=ctx)
    results = run(DeliveryPool(good, build, concurrency=2, retry=FAST), addresses(4))
    assert {r.status for r in results} == {Status.SENT} and server.count() == 4
    plain = smtp_factory(server.port, timeout=0.5)  # plain SMTP to a TLS port: no greeting comes
    policy = RetryPolicy(attempts=2, initial=0.01, maximum=0.01, give_up_after=2, jitter=0)
    pool = DeliveryPool(plain, build, concurrency=1, retry=policy)
    run(pool, addresses(1))
    assert isinstance(pool.fatal, FatalDeliveryError)


def test_a_stalled_server_times_out_and_the_message_is_retried(smtp_server) -> None:
    smtp_server.set_faults(stall_data_count=1, stall_ms=1500)
    pool = DeliveryPool(smtp_factory(smtp_server.port, timeout=0.4), build, concurrency=1, retry=FAST)
    results = run(pool, addresses(3))
    assert {r.status for r in results} == {Status.SENT}
    time.sleep(1.5)  # the stalled copy is stored when its wait ends
    got = Counter(m.rcpt for m in smtp_server.received())
    assert set(got) == {a for _, a in addresses(3)}
    assert sum(got.values()) - 3 <= 1  # the one in flight when we gave up may arrive twice


def test_password_comes_from_the_named_environment_variable(make_settings) -> None:
    settings = make_settings(email={"transport": "smtp", "smtp": {"username": "u", "password_env": "MY_PW"}})
    assert SmtpParams.from_settings(settings, {"MY_PW": "pw"}).password == "pw"
    with pytest.raises(FatalDeliveryError, match="MY_PW"):
        SmtpParams.from_settings(settings, {})


# -- single transport errors -----------------------------------------------------------------------


@both_ways
def test_transport_translates_replies(smtp_server, pipelining: bool) -> None:
    smtp_server.set_faults(reject={"no@example.org": "550 5.1.1 nope"}, tempfail_count=1)
    t = SmtpTransport(SmtpParams("127.0.0.1", smtp_server.port, timeout=5, pipelining=pipelining))
    with pytest.raises(Deferred, match="451"):
        t.send(build((1, "a@example.org")))
    assert t.send(build((1, "a@example.org"))).startswith("250")
    assert t._pipelining is pipelining  # the server offers it; the client takes it when asked
    with pytest.raises(Rejected) as exc:
        t.send(build((2, "no@example.org")))
    assert exc.value.code == 550 and exc.value.hard_bounce
    assert t.send(build((3, "b@example.org"))).startswith("250")  # the connection survived the 550
    t.close()


# -- rate limiting ---------------------------------------------------------------------------------


def test_rate_limiter_spaces_messages_by_the_stricter_limit() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(per_second=10, per_hour=7200, clock=lambda: now[0], sleep=sleep)
    assert limiter.interval == pytest.approx(0.5)  # 7200/h = 2/s is stricter than 10/s
    for _ in range(5):
        limiter.acquire()
    assert now[0] == pytest.approx(2.0)  # 5 messages: at 0, .5, 1, 1.5, 2
    assert RateLimiter().interval == 0.0  # no limit configured: no waiting at all


def test_rate_limit_holds_across_connections(smtp_server) -> None:
    limiter = RateLimiter(per_second=40)
    pool = DeliveryPool(smtp_factory(smtp_server.port), build, concurrency=4, retry=FAST, limiter=limiter)
    t0 = time.monotonic()
    run(pool, addresses(21))
    assert time.monotonic() - t0 >= 20 / 40 * 0.95
    assert smtp_server.count() == 21


def test_an_interrupt_mid_send_loses_nothing_and_invents_no_acceptance(smtp_server) -> None:
    """Ctrl-C lands in the pool's own thread now: every item still gets exactly one result."""

    class Interrupting(RateLimiter):
        calls = 0

        def acquire(self, stop: threading.Event | None = None) -> bool:
            self.calls += 1
            if self.calls == 6:
                raise KeyboardInterrupt
            return True

    pool = DeliveryPool(
        smtp_factory(smtp_server.port), build, concurrency=3, retry=FAST, limiter=Interrupting()
    ).start()
    items = addresses(12)
    for item in items:
        pool.submit(item)
    results = []
    with pytest.raises(KeyboardInterrupt):
        while True:
            r = pool.get(timeout=1)
            assert r is not None
            results.append(r)
            pool.ack(r)
    pool.abort()  # what the drain does on any exception, before collecting what is in flight
    t0 = time.monotonic()
    while len(results) < len(items):
        r = pool.get(timeout=1)
        assert r is not None, f"{len(results)} results of {len(items)}"
        results.append(r)
        pool.ack(r)
    pool.close()
    assert time.monotonic() - t0 < 5
    assert sorted(r.item[0] for r in results) == list(range(12))
    sent = {r.item[1] for r in results if r.status is Status.SENT}
    assert sent == {m.rcpt for m in smtp_server.received()}  # SENT exactly for what the server took
    assert {r.status for r in results} <= {Status.SENT, Status.ABANDONED}


def test_stop_interrupts_a_rate_limit_wait() -> None:
    limiter = RateLimiter(per_hour=1)
    stop = threading.Event()
    assert limiter.acquire(stop)
    threading.Timer(0.05, stop.set).start()
    t0 = time.monotonic()
    assert limiter.acquire(stop) is False
    assert time.monotonic() - t0 < 2


# -- file transport --------------------------------------------------------------------------------


def test_file_transport_writes_atomically_and_replaces_on_resend(tmp_path) -> None:
    folder = tmp_path / "outbox" / safe_name("issue:Spring/2024")
    assert folder.name == "issue-Spring-2024"
    pool = DeliveryPool(lambda: FileTransport(folder), build, concurrency=2, retry=FAST)
    run(pool, addresses(5))
    run(DeliveryPool(lambda: FileTransport(folder), build, concurrency=2, retry=FAST), addresses(5))
    files = sorted(p.name for p in folder.iterdir())
    assert files == [f"m{i}.eml" for i in range(5)]  # no temp files, no duplicates
    assert (folder / "m3.eml").read_bytes() == message("reader3@example.org", 3)


def test_file_transport_error_is_reported(tmp_path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    pool = DeliveryPool(lambda: FileTransport(blocker / "sub"), build, concurrency=1, retry=FAST)
    run(pool, addresses(1))
    assert isinstance(pool.fatal, FatalDeliveryError)


# -- DKIM ------------------------------------------------------------------------------------------


def test_dkim_signature_verifies_and_covers_unsubscribe_headers(dkim_key, smtp_server) -> None:
    from publisher.config import DkimConfig

    key, record = dkim_key
    signer = DkimSigner.from_config(DkimConfig(domain="example.org", selector="news", private_key_file=key))
    pool = DeliveryPool(smtp_factory(smtp_server.port), build, concurrency=2, retry=FAST, signer=signer)
    run(pool, addresses(3))

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:  # the one fake: DNS
        assert name == b"news._domainkey.example.org."
        return record

    for got in smtp_server.received():
        assert dkim.verify(got.data, dnsfunc=dnsfunc)
        sig = got.message()["DKIM-Signature"]
        signed = {h.strip().lower() for h in sig.split("h=")[1].split(";")[0].split(":")}
        assert {
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "list-unsubscribe",
            "list-unsubscribe-post",
        } <= signed
        tampered = got.data.replace(b"Subject: Issue", b"Subject: Changed")
        assert not dkim.verify(tampered, dnsfunc=dnsfunc)


def test_dkim_bad_key_is_a_clear_error(tmp_path) -> None:
    from publisher.config import DkimConfig
    from publisher.errors import DeliveryError

    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(DeliveryError, match="DKIM"):
        DkimSigner.from_config(DkimConfig(domain="example.org", selector="s", private_key_file=bad))
    with pytest.raises(DeliveryError, match="cannot read"):
        DkimSigner.from_config(
            DkimConfig(domain="example.org", selector="s", private_key_file=tmp_path / "none")
        )
