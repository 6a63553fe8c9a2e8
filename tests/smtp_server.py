"""A real SMTP server (aiosmtpd) for the tests, run in its own process.

    python -m tests.smtp_server --db received.sqlite --control faults.json [--tls-cert C --tls-key K]
        [--auth USER:PASSWORD] [--no-pipelining] [--implicit-tls]

It prints ``PORT <n>`` once listening on 127.0.0.1. Every accepted message is
committed to the SQLite file *before* the 250 reply goes out, so the file holds
exactly what a real server would have taken responsibility for. Faults are read
from the JSON control file (re-read whenever it changes; counters restart then):

    tempfail_count: N       the next N RCPTs get tempfail_reply (default "451 4.3.0 Try again later")
    tempfail_reply: "421 ..." a 421 also closes the connection, as real servers do
    reject: {addr: reply}   RCPT replies for some recipients, e.g. "550 5.1.1 No such user"
    drop_data_count: N      the next N messages: drop the connection after DATA, before any reply
    data_delay_ms: N        wait before answering each DATA (slows the server down)
    stall_data_count: N     the next N messages: wait stall_ms (default 3000) before storing and answering
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import ssl
import time
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Faults:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.mtime: float | None = None
        self.spec: dict[str, Any] = {}
        self.left: dict[str, int] = {}

    def current(self) -> dict[str, Any]:
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime != self.mtime:
            self.mtime = mtime
            self.spec = json.loads(self.path.read_text()) if mtime is not None else {}
            counters = ("tempfail_count", "drop_data_count", "stall_data_count")
            self.left = {k: int(self.spec.get(k, 0)) for k in counters}
        return self.spec

    def take(self, counter: str) -> bool:
        self.current()
        if self.left.get(counter, 0) > 0:
            self.left[counter] -= 1
            return True
        return False


class Recorder:
    def __init__(self, db: Path, faults: Faults, pipelining: bool = True) -> None:
        self.faults = faults
        self.pipelining = pipelining
        self.db = sqlite3.connect(db, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, mail_from TEXT, rcpt TEXT,"
            " data BLOB, received_at REAL)"
        )
        self.db.execute("CREATE TABLE IF NOT EXISTS connections (id INTEGER PRIMARY KEY, at REAL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, kind TEXT, detail TEXT)")

    def event(self, kind: str, detail: str) -> None:
        self.db.execute("INSERT INTO events (kind, detail) VALUES (?, ?)", (kind, detail))

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ):
        self.db.execute("INSERT INTO connections (at) VALUES (?)", (time.time(),))
        session.host_name = hostname
        if self.pipelining:  # aiosmtpd reads commands in order, so it handles pipelined ones
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]):
        spec = self.faults.current()
        reply = spec.get("reject", {}).get(address.lower())
        if reply:
            self.event("reject", address)
            return reply
        if self.faults.take("tempfail_count"):
            reply = spec.get("tempfail_reply", "451 4.3.0 Try again later")
            self.event("tempfail", address)
            if reply.startswith("421"):
                asyncio.get_running_loop().call_later(0.01, server.transport.close)
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any):
        spec = self.faults.current()
        delay = spec.get("data_delay_ms", 0)
        if delay:
            await asyncio.sleep(delay / 1000)
        if self.faults.take("stall_data_count"):
            self.event("stall", ",".join(envelope.rcpt_tos))
            await asyncio.sleep(spec.get("stall_ms", 3000) / 1000)
        if self.faults.take("drop_data_count"):
            self.event("drop", ",".join(envelope.rcpt_tos))
            server.transport.abort()
            return "421 dropped"  # never reaches the client: the connection is gone
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO messages (mail_from, rcpt, data, received_at) VALUES (?, ?, ?, ?)",
                [(envelope.mail_from, r, envelope.original_content, time.time()) for r in envelope.rcpt_tos],
            )
        return "250 2.0.0 Message accepted"


def _authenticator(user: str, password: str):
    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == user
            and data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False)

    return check


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True, type=Path)
    ap.add_argument("--control", required=True, type=Path)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--auth")
    ap.add_argument("--no-pipelining", action="store_true")
    ap.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte (port 465 style)")
    args = ap.parse_args()
    handler = Recorder(args.db, Faults(args.control), pipelining=not args.no_pipelining)
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    implicit = tls if args.implicit_tls else None
    kwargs: dict[str, Any] = {
        "tls_context": None if implicit else tls,
        "enable_SMTPUTF8": True,
        "hostname": "test.local",
    }
    if args.auth:
        user, password = args.auth.split(":", 1)
        kwargs.update(authenticator=_authenticator(user, password), auth_required=True)
        if implicit:  # aiosmtpd only counts STARTTLS as TLS; this connection is TLS from the start
            kwargs["auth_require_tls"] = False
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, **kwargs), "127.0.0.1", args.port, ssl=implicit)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
