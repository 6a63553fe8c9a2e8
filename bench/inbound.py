"""Inbound reports per second: DSNs and ARF complaints through `publisher inbound` into the store.

    .venv/bin/python bench/inbound.py [--messages 5000] [--clients 4,20]
                                      [--client pipelining|smtplib] [--lmtp]

Sets up a temp project on SQLite with one send of N deliveries (the ledger rows
the VERP tokens name), writes N reports addressed to those tokens (80% RFC 3464
DSNs, 20% RFC 5965 ARF complaints, each quoting our original headers), starts
the real ``publisher inbound`` command in its own process, and hands the
reports over from ``--clients`` client processes, each on one
connection with a transaction per message, as an MTA does: once with 4
connections and once with 20, Postfix's default concurrency towards one
destination (``default_destination_concurrency_limit``), which is how a
provider's bounce flood arrives. The clock runs from
the first MAIL to the last 250; every 250 means the report was classified and
its effect committed. Then it checks the store: N facts, each applied once.

Clients: ``pipelining`` (default) is what Postfix does with a server that
advertises PIPELINING: MAIL, RCPT and DATA in one write, then the body, on a
reused connection; a few lines of asyncio, so the client's CPU does not eat
into the server's on a small machine. ``smtplib`` waits for each reply.
The CPU the server process and the clients spent per report is printed
too: on a shared or 2-core machine the rate follows the load, the CPU cost
does not.

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
import asyncio
import multiprocessing
import os
import resource
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
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


def pipelining_client(
    port: int, items: list[tuple[str, bytes]], lmtp: bool, out: multiprocessing.Queue
) -> None:
    """One connection as Postfix drives it: MAIL, RCPT, DATA in one write (RFC 2920), then the body."""
    out.put(asyncio.run(_pipelined(port, items, lmtp)))


async def _pipelined(port: int, items: list[tuple[str, bytes]], lmtp: bool) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readuntil(b"\r\n")
    writer.write(b"LHLO bench\r\n" if lmtp else b"EHLO bench\r\n")
    greeting = [await reader.readuntil(b"\r\n")]
    while greeting[-1][3:4] == b"-":
        greeting.append(await reader.readuntil(b"\r\n"))
    assert any(b"PIPELINING" in line for line in greeting), "the server does not offer PIPELINING"
    ok = 0
    for rcpt, data in items:
        body = b"." + data if data.startswith(b".") else data
        body = body.replace(b"\r\n.", b"\r\n..")
        writer.write(b"MAIL FROM:<>\r\nRCPT TO:<%s>\r\nDATA\r\n" % rcpt.encode())
        replies = [await reader.readuntil(b"\r\n") for _ in range(3)]
        if replies[2][:3] != b"354":
            print("refused:", replies, file=sys.stderr)
            continue
        writer.write(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        final = await reader.readuntil(b"\r\n")
        if final[:3] == b"250":
            ok += 1
        else:
            print("refused:", final, file=sys.stderr)
    writer.write(b"QUIT\r\n")
    await reader.readuntil(b"\r\n")
    writer.close()
    return ok


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument(
        "--clients", default="4,20", help="connections, a run for each (comma-separated; default 4,20)"
    )
    parser.add_argument("--client", choices=["pipelining", "smtplib"], default="pipelining")
    parser.add_argument("--lmtp", action="store_true")
    parser.add_argument("--imap-messages", type=int, default=10000)
    args = parser.parse_args()
    for clients in [int(n) for n in args.clients.split(",")]:
        smtp_bench(argparse.Namespace(**{**vars(args), "clients": clients}))
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
        server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
        try:
            wait_started(server)
            server_cpu = cpu_seconds(server.pid)
            out: multiprocessing.Queue = multiprocessing.Queue()
            shares = [reports[i :: args.clients] for i in range(args.clients)]
            target = pipelining_client if args.client == "pipelining" else client
            procs = [multiprocessing.Process(target=target, args=(port, s, args.lmtp, out)) for s in shares]
            started = time.perf_counter()
            for p in procs:
                p.start()
            accepted = sum(out.get() for _ in procs)
            elapsed = time.perf_counter() - started
            server_cpu = cpu_seconds(server.pid) - server_cpu
            for p in procs:
                p.join()
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the joined clients (not the server yet)
        finally:
            server.terminate()
            server.wait(15)
        check_store(config, args.messages)
    print_figures(args, accepted, elapsed, server_cpu, usage.ru_utime + usage.ru_stime)


def print_figures(
    args: argparse.Namespace, accepted: int, elapsed: float, server_cpu: float, client_cpu: float
) -> None:
    rate = accepted / elapsed
    proto = "LMTP" if args.lmtp else "SMTP"
    print(
        f"{accepted} of {args.messages} reports accepted over {proto} by {args.clients} {args.client}"
        f" clients in {elapsed:.2f} s"
        f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    print(
        f"CPU per report: server {server_cpu / accepted * 1e6:,.0f} us,"
        f" clients {client_cpu / accepted * 1e6:,.0f} us"
    )
    verdict = "met" if rate >= GOAL else "NOT met"
    print(f"inbound reports into SQLite: {rate:,.0f}/s (goal >= {GOAL:,.0f}/s: {verdict})")


def wait_started(server: subprocess.Popen, timeout: float = 60.0) -> None:
    """Until the command says it listens; its stderr is drained after."""
    ready = threading.Event()

    def drain() -> None:
        assert server.stderr is not None
        for line in server.stderr:
            if b"(Ctrl-C stops)" in line:  # printed once it listens
                ready.set()

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(timeout):
        raise SystemExit("publisher inbound did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
