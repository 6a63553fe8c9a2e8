"""Inbound reports per second: DSNs and ARF complaints through `publisher inbound` into the store.

    .venv/bin/python bench/inbound.py [--messages 5000] [--clients 4] [--lmtp]

Sets up a temp project on SQLite with one send of N deliveries (the ledger rows
the VERP tokens name), writes N reports addressed to those tokens (80% RFC 3464
DSNs, 20% RFC 5965 ARF complaints, each quoting our original headers), starts
the real ``publisher inbound`` command in its own process, and hands the reports
over from ``--clients`` client processes, each on one connection with a
transaction per message, as an MTA does. The clock runs from the first MAIL to
the last 250; every 250 means the report was classified and its effect committed.
Then it checks the store: N facts, each applied once.

Goal: >= 1,000 reports/s on SQLite.

Then the IMAP backlog (``--imap-messages``, default 10,000; 0 skips it): the
same kind of reports, put with IMAP APPEND into a throwaway Dovecot started the
way the tests start it (tests/fixtures_imap.py), drained by the real
``publisher inbound`` with only ``inbound.mailbox`` set (default batch: 200 a
transaction). The clock runs from the command's start to an empty INBOX, so
it includes the command's start-up (printed apart). Skipped, with a message,
when Dovecot (Debian's dovecot-imapd) is not installed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-secret-0123456789abcdef0123456789"
GOAL = 1000.0


def dsn(verp: str, rcpt: str, n: int) -> bytes:
    return (
        f"From: MAILER-DAEMON@mx.example.net\r\nTo: {verp}\r\nSubject: Undelivered Mail\r\n"
        f"Message-ID: <dsn{n}@mx.example.net>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        f"--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n\r\n"
        f"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n"
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nReturn-Path: <{verp}>\r\nTo: {rcpt}\r\n"
        f"Subject: Why bread rises\r\n\r\n--B--\r\n"
    ).encode()


def arf(verp: str, rcpt: str, n: int) -> bytes:
    return (
        f"From: staff@hotmail.example\r\nTo: {verp}\r\nSubject: complaint about message\r\n"
        f"Message-ID: <arf{n}@fbl.example.net>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\r\n\r\n'
        f"--F\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n"
        f"--F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n"
        f"User-Agent: FBL/1.0\r\nVersion: 1\r\nOriginal-Rcpt-To: {rcpt}\r\n\r\n"
        f"--F\r\nContent-Type: message/rfc822\r\n\r\nReturn-Path: <{verp}>\r\nFrom: news@example.org\r\n"
        f"To: {rcpt}\r\nSubject: Why bread rises\r\n\r\nHello\r\n\r\n--F--\r\n"
    ).encode()


def prepare(folder: Path, n: int) -> tuple[Path, list[tuple[str, bytes]]]:
    """A project whose database has one send of ``n`` deliveries; (config, [(rcpt, report)])."""
    from publisher.config import load_settings
    from publisher.ops.drain import envelope_domain
    from publisher.store import open_store
    from publisher.tokens import bounce_address

    shutil.copytree(ROOT / "templates", folder / "templates")
    shutil.copytree(ROOT / "issues", folder / "issues")
    shutil.copy(ROOT / "config.yaml", folder / "config.yaml")
    settings = load_settings(folder / "config.yaml", environ={"PUBLISHER_SECRET_KEY": SECRET})
    now = datetime.now(UTC)
    store = open_store(settings.database.url)
    with store.write() as conn:
        _bulk(conn, n, now)
    plan = store.ledger.plan_send("issue", "issue:bench", now=now, issue_slug="why-bread-rises")
    with store.read() as conn:
        rows = conn.exec_driver_sql(
            "SELECT id, email FROM deliveries WHERE send_id = ? ORDER BY id", (plan.send.id,)
        ).all()
    store.close()
    secret, domain = SECRET.encode(), envelope_domain(settings)
    reports = []
    for i, (delivery_id, email) in enumerate(rows):
        verp = bounce_address(secret, delivery_id, domain)
        reports.append((verp, (arf if i % 5 == 4 else dsn)(verp, email, i)))
    return folder / "config.yaml", reports


def _bulk(conn, n: int, now: datetime) -> None:
    stamp = now.isoformat()
    conn.exec_driver_sql(
        "INSERT INTO subscribers (email, name, status, frequency, topics, timezone, created_at, updated_at)"
        " VALUES (?, '', 'confirmed', 'instant', '', 'UTC', ?, ?)",
        [(f"r{i}@example.org", stamp, stamp) for i in range(n)],
    )


def client(port: int, items: list[tuple[str, bytes]], lmtp: bool, out: multiprocessing.Queue) -> None:
    """One MTA-like connection: a transaction per report; counts the 250s."""
    ok = 0
    conn = smtplib.LMTP("127.0.0.1", port) if lmtp else smtplib.SMTP("127.0.0.1", port, timeout=60)
    with conn:
        conn.docmd("LHLO", "bench") if lmtp else conn.ehlo()
        for rcpt, data in items:
            try:
                conn.sendmail("", [rcpt], data)
                ok += 1
            except smtplib.SMTPException as exc:
                print("refused:", exc, file=sys.stderr)
    out.put(ok)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("publisher inbound did not start")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--lmtp", action="store_true")
    parser.add_argument("--imap-messages", type=int, default=10000)
    args = parser.parse_args()
    smtp_bench(args)
    imap_bench(args.imap_messages)


def smtp_bench(args: argparse.Namespace) -> None:
    """N reports handed over by MTA-like clients, a 250 each only after its effect is committed."""
    with tempfile.TemporaryDirectory(prefix="publisher-inbound-") as tmp:
        config, reports = prepare(Path(tmp), args.messages)
        port = free_port()
        env = {
            **os.environ,
            "PUBLISHER_SECRET_KEY": SECRET,
            "PUBLISHER_INBOUND__PER_CLIENT_PER_MINUTE": "10000000",
        }
        command = [sys.executable, "-m", "publisher.cli", "inbound", "--listen", f"127.0.0.1:{port}"]
        command += ["--lmtp" if args.lmtp else "--smtp", "--config", str(config)]
        server = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        try:
            wait_listening(port)
            out: multiprocessing.Queue = multiprocessing.Queue()
            shares = [reports[i :: args.clients] for i in range(args.clients)]
            procs = [multiprocessing.Process(target=client, args=(port, s, args.lmtp, out)) for s in shares]
            started = time.perf_counter()
            for p in procs:
                p.start()
            accepted = sum(out.get() for _ in procs)
            elapsed = time.perf_counter() - started
            for p in procs:
                p.join()
        finally:
            server.terminate()
            server.wait(15)
        check_store(config, args.messages)
    rate = accepted / elapsed
    proto = "LMTP" if args.lmtp else "SMTP"
    print(
        f"{accepted} of {args.messages} reports accepted over {proto} by {args.clients} clients"
        f" in {elapsed:.2f} s"
    )
    verdict = "met" if rate >= GOAL else "NOT met"
    print(f"inbound reports into SQLite: {rate:,.0f}/s (goal >= {GOAL:,.0f}/s: {verdict})")


def imap_bench(n: int) -> None:
    """A backlog of ``n`` reports in an IMAP mailbox, drained by ``publisher inbound``."""
    from tests.fixtures_imap import PASSWORD, Dovecot, dovecot_installed

    if n <= 0:
        return
    if not dovecot_installed():
        print("IMAP backlog: not measured (dovecot is not installed: apt-get install dovecot-imapd)")
        return
    server = Dovecot().start()
    try:
        with tempfile.TemporaryDirectory(prefix="publisher-imap-") as tmp:
            config, reports = prepare(Path(tmp), n)
            user = server.new_user()
            server.append(user, [data for _, data in reports])
            env = {**os.environ, "PUBLISHER_SECRET_KEY": SECRET, "PUBLISHER_IMAP_PASSWORD": PASSWORD}
            for key, value in server.mailbox(user).items():
                env[f"PUBLISHER_INBOUND__MAILBOX__{key.upper()}"] = str(value)
            command = [sys.executable, "-m", "publisher.cli", "inbound", "--config", str(config)]
            started = time.perf_counter()
            poller = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
            try:
                first, elapsed = _drained(server, user, started)
            finally:
                poller.terminate()
                poller.wait(15)
            moved = server.count(user, "publisher-processed")
            check_store(config, n)
    finally:
        server.stop()
    print(
        f"IMAP backlog: {moved} of {n} reports drained from Dovecot and moved in {elapsed:.2f} s "
        f"(the command's start-up, to its first batch moved: {first:.2f} s)"
    )
    print(f"IMAP backlog into SQLite: {n / elapsed:,.0f}/s ({n / (elapsed - first):,.0f}/s after start-up)")


def _drained(server: Any, user: str, started: float, timeout: float = 600.0) -> tuple[float, float]:
    """(seconds to the first batch moved, seconds to an empty INBOX), both from ``started``."""
    first = None
    while time.perf_counter() - started < timeout:
        left = server.count(user, "INBOX")
        now = time.perf_counter() - started
        if first is None and server.count(user, "publisher-processed"):
            first = now
        if left == 0:
            return first or now, now
        time.sleep(0.05)
    raise SystemExit("the IMAP backlog was not drained in time")


def check_store(config: Path, n: int) -> None:
    from publisher.config import load_settings
    from publisher.store import open_store

    settings = load_settings(config, environ={"PUBLISHER_SECRET_KEY": SECRET})
    with open_store(settings.database.url) as store, store.read() as conn:
        facts = conn.exec_driver_sql("SELECT count(*), count(DISTINCT key) FROM inbound_events").one()
        gone = conn.exec_driver_sql("SELECT count(*) FROM subscribers WHERE status != 'confirmed'").scalar()
    print(f"store: {facts[0]} facts ({facts[1]} distinct keys), {gone} of {n} subscribers stopped")


if __name__ == "__main__":
    main()
