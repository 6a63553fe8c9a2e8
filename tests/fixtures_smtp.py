"""SMTP fixtures: a real aiosmtpd server in another process (tests/smtp_server.py), with faults."""

from __future__ import annotations

import email
import email.policy
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Received:
    rcpt: str
    mail_from: str
    data: bytes

    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]


class SmtpServer:
    """Handle on a running test server: its port, what it received, and its faults."""

    def __init__(self, folder: Path, extra: list[str] | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.db = folder / "received.sqlite"
        self.control = folder / "faults.json"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.smtp_server", "--db", str(self.db), "--control", str(self.control)]
            + (extra or []),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"test SMTP server did not start: {line!r}")
        self.port = int(line.split()[1])

    def set_faults(self, **spec: Any) -> None:
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(json.dumps(spec))
        os.replace(tmp, self.control)

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.db)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def received(self) -> list[Received]:
        return [
            Received(r, f, bytes(d))
            for r, f, d in self._query("SELECT rcpt, mail_from, data FROM messages ORDER BY id")
        ]

    def count(self) -> int:
        return self._query("SELECT count(*) FROM messages")[0][0]

    def connections(self) -> int:
        return self._query("SELECT count(*) FROM connections")[0][0]

    def events(self, kind: str) -> list[str]:
        return [d for (d,) in self._query(f"SELECT detail FROM events WHERE kind = '{kind}' ORDER BY id")]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def start_smtp_server(tmp_path: Path) -> Iterator[Callable[..., SmtpServer]]:
    """Start test SMTP servers (extra command-line flags allowed); all stopped at teardown."""
    servers: list[SmtpServer] = []

    def start(*extra: str) -> SmtpServer:
        server = SmtpServer(tmp_path / f"smtp{len(servers)}", list(extra))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def smtp_server(start_smtp_server: Callable[..., SmtpServer]) -> SmtpServer:
    """A plain test SMTP server on 127.0.0.1 (no TLS, no AUTH)."""
    return start_smtp_server()


@pytest.fixture
def dkim_key(tmp_path: Path) -> tuple[Path, bytes]:
    """A fresh 2048-bit DKIM key and the TXT record that publishes it."""
    import base64

    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    return key, b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
