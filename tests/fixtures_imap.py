"""A throwaway Dovecot IMAP server on 127.0.0.1, for the mailbox poller's tests and bench/inbound.py.

Each server has its own config, maildir, sockets and log in a temp dir, and
the static passdb takes any user name with ``PASSWORD``, so every test gets
an empty mailbox of its own (a fresh user) from one server per module (a
start costs ~0.2 s). As root, Dovecot's login processes run as the Debian
package's ``dovenull`` and its mail as ``nobody`` (Dovecot refuses both as
root). Skipped without Dovecot on a developer's machine; a failure in CI,
where ``.ci/run`` installs ``dovecot-imapd``.
"""

from __future__ import annotations

import grp
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from tests.fixtures_browser import need

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
PASSWORD = "imap-test-password"
_users = itertools.count(1)

_CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {internal_group}
default_login_user = {login}
first_valid_uid = {first_uid}
mail_location = maildir:{root}/mail/%u
mail_fsync = never
auth_failure_delay = 0
{capability}
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dovecot:
    """A running Dovecot; ``capability`` replaces what it advertises (e.g. to hide IDLE and MOVE)."""

    def __init__(self, *, capability: str | None = None) -> None:
        self.capability = capability
        self.root = Path(tempfile.mkdtemp(prefix="publisher-dovecot-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Dovecot:
        self.root.chmod(0o755)  # the login and mail users must reach their sockets and maildirs
        (self.root / "mail").mkdir()
        if os.geteuid() == 0:
            internal, login, mail = "dovecot", "dovenull", pwd.getpwnam("nobody")
            os.chown(self.root / "mail", mail.pw_uid, mail.pw_gid)
        else:
            mail = pwd.getpwuid(os.geteuid())
            internal = login = mail.pw_name
        config = self.root / "dovecot.conf"
        config.write_text(
            _CONFIG.format(
                root=self.root,
                port=self.port,
                password=PASSWORD,
                internal=internal,
                internal_group=grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name,
                login=login,
                first_uid=min(mail.pw_uid, 500),
                mail_uid=mail.pw_uid,
                mail_gid=mail.pw_gid,
                capability=f"imap_capability = {self.capability}" if self.capability else "",
            )
        )
        self.proc = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(config)], stderr=subprocess.PIPE, start_new_session=True
        )
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.stderr is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.proc.stderr.read().decode()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not answer on 127.0.0.1:{self.port}; see {self.root}/dovecot.log")

    def stop(self) -> None:
        """Kill the whole process group at once (a clean shutdown waits a second for nothing)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(15)
        shutil.rmtree(self.root, ignore_errors=True)

    def new_user(self) -> str:
        """A user name nobody used yet: an empty mailbox."""
        return f"bounces{next(_users)}"

    def client(self, user: str) -> IMAPClient:
        """A logged-in client of ``user`` (for putting mail in and looking at the folders)."""
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=30)
        client.login(user, PASSWORD)
        return client

    def append(self, user: str, messages: list[bytes], folder: str = "INBOX") -> None:
        """Put ``messages`` into ``folder`` with IMAP APPEND (MULTIAPPEND, 500 at a time)."""
        client = self.client(user)
        try:
            for start in range(0, len(messages), 500):
                client.multiappend(folder, messages[start : start + 500])
        finally:
            client.logout()

    def count(self, user: str, folder: str) -> int:
        """Messages in ``folder`` (0 when it does not exist yet)."""
        client = self.client(user)
        try:
            if not client.folder_exists(folder):
                return 0
            return int(client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])
        finally:
            client.logout()

    def mailbox(self, user: str, **extra: Any) -> dict[str, Any]:
        """The ``inbound.mailbox`` config section for ``user`` on this server."""
        return {"host": "127.0.0.1", "port": self.port, "security": "none", "username": user, **extra}


def dovecot_installed() -> bool:
    return Path(DOVECOT).exists()


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    """One Dovecot per test module, advertising IDLE and MOVE."""
    need("dovecot (Debian's dovecot-imapd)", dovecot_installed())
    server = Dovecot().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plain_dovecot() -> Iterator[Dovecot]:
    """A Dovecot that advertises neither IDLE nor MOVE: the poll interval and COPY + EXPUNGE."""
    need("dovecot (Debian's dovecot-imapd)", dovecot_installed())
    server = Dovecot(capability="IMAP4rev1 LITERAL+ SASL-IR UIDPLUS MULTIAPPEND NAMESPACE CHILDREN").start()
    yield server
    server.stop()


@pytest.fixture
def own_dovecot() -> Iterator[Dovecot]:
    """A Dovecot for one test (Dovecot slows every later login from an address that failed one)."""
    need("dovecot (Debian's dovecot-imapd)", dovecot_installed())
    server = Dovecot().start()
    yield server
    server.stop()
