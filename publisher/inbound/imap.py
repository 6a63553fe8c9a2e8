"""``publisher inbound`` reading an IMAP mailbox: for senders whose bounces land in a hosted mailbox.

The order is what makes it safe:

1. Fetch a batch of ``inbound.mailbox.batch`` messages (``BODY.PEEK[]``, so
   nothing is marked read, and only the first ``MAX_PARSE`` bytes: ``classify``
   reads nothing past them, so a 50 MB message costs 256 KB).
2. Classify each, apply the whole batch in one ``apply_feedback`` call (one
   transaction: a transaction per message held the SMTP endpoint near 350/s on
   SQLite, see ``server.GroupCommit``).
3. Only then move the batch to ``processed_folder``: MOVE (RFC 6851) when the
   server has it, else COPY + ``\\Deleted`` + EXPUNGE.

A crash (kill -9) between 2 and 3 leaves the batch where it was; it is read
again and each fact is a duplicate by its key, so nothing is lost and nothing
counts twice. Without MOVE a crash between COPY and EXPUNGE can leave one
batch twice in ``processed_folder``; its facts still count once. Messages that
give no facts (ignored, malformed, hostile) are moved as well: nothing stays
behind to be read forever.

An IMAP message has no envelope: the recipients ``classify`` needs come from
the headers the delivering MTA adds (``Delivered-To``, ``X-Original-To``,
``Envelope-To``), else from ``To`` and ``Cc``. Only an address with our sealed
VERP token attributes a bounce, so a header forged this way does no more than
mail sent to that address would.

When the server offers IDLE the poller waits in it (renewed every
``poll_seconds``; servers drop an IDLE after 30 minutes), else it polls every
``poll_seconds``. Any error closes the connection and reconnects with backoff.

bench/inbound.py drains a 10,000-report backlog from Dovecot into SQLite at
~1,100/s counting the command's start-up (~1,400/s after it); two thirds of
a batch's time is ``classify``, the fetch and the MOVE a sixth.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import replace
from datetime import datetime

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from publisher.config import MailboxConfig, Settings
from publisher.errors import PublisherError
from publisher.inbound.classify import classify
from publisher.inbound.message import MAX_PARSE, headers, one_line, parse_headers
from publisher.models import Feedback
from publisher.ops.feedback import apply_feedback, bounce_domain
from publisher.store import Store

log = logging.getLogger("publisher.inbound.imap")
Clock = Callable[[], datetime]

FETCH = f"BODY.PEEK[]<0.{MAX_PARSE}>"
TIMEOUT = 60.0  # seconds a command may take (a 200-message fetch is ~50 MB at most)
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # seconds before each reconnect after an error
IDLE_SLICE = 0.5  # seconds one IDLE wait lasts before the stop flag is looked at
_ENVELOPE = ("Delivered-To", "X-Original-To", "Envelope-To")
_HEADERS = ("To", "Cc")
_DELETED = b"\\Deleted"


def recipients(data: bytes) -> list[str]:
    """Where the message was delivered: the MTA's delivery headers, else To and Cc."""
    msg = parse_headers(data)
    found = [v for name in _ENVELOPE for v in headers(msg, name)]
    return found or [v for name in _HEADERS for v in headers(msg, name)]


def mailbox_password(config: MailboxConfig, environ: Mapping[str, str] | None = None) -> str:
    """The password from the variable ``password_env`` names (secrets never live in config.yaml)."""
    value = (os.environ if environ is None else environ).get(config.password_env)
    if not value:
        raise PublisherError(
            f"inbound.mailbox: the environment variable {config.password_env} "
            "(inbound.mailbox.password_env) holds no password",
            hint=f"export {config.password_env}=... with the password of {config.username}",
        )
    return value


class MailboxPoller:
    """Drains ``inbound.mailbox`` into the store in a background thread until ``stop()``."""

    def __init__(
        self, settings: Settings, store: Store, *, clock: Clock, environ: Mapping[str, str] | None = None
    ) -> None:
        if settings.inbound.mailbox is None:
            raise PublisherError("inbound.mailbox is not configured")
        self.config = settings.inbound.mailbox
        if self.config.processed_folder == self.config.folder:
            raise PublisherError(
                "inbound.mailbox.processed_folder must differ from inbound.mailbox.folder",
                hint="the default publisher-processed is a good choice",
            )
        self.settings = settings
        self.store = store
        self.clock = clock
        self.password = mailbox_password(self.config, environ)
        self.secret = settings.secret_key()
        self.domain = bounce_domain(settings)
        box = settings.email.unsubscribe_mailbox
        self.unsubscribe_box = box.lower() if box else None
        self.port = self.config.port or (993 if self.config.security == "ssl" else 143)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def where(self) -> str:
        return f"{self.config.host}:{self.port}"

    def connect(self) -> IMAPClient:
        """Log in, create ``processed_folder`` if missing and select ``folder``; errors name the keys."""
        c = self.config
        context = ssl.create_default_context() if c.security != "none" else None
        try:
            client = IMAPClient(
                c.host, port=self.port, ssl=c.security == "ssl", ssl_context=context, timeout=TIMEOUT
            )
        except (OSError, IMAPClientError) as exc:
            raise PublisherError(
                f"cannot reach the IMAP server {self.where}: {one_line(str(exc))}",
                hint="check inbound.mailbox.host, port and security",
            ) from None
        try:
            if c.security == "starttls":
                client.starttls(context)
            client.login(c.username, self.password)
            if not client.folder_exists(c.processed_folder):
                client.create_folder(c.processed_folder)
            client.select_folder(c.folder)
        except LoginError as exc:
            _close(client)
            raise PublisherError(
                f"the IMAP server {self.where} refused the login of {c.username!r}: {one_line(str(exc))}",
                hint=f"check inbound.mailbox.username and the password in the environment variable "
                f"{c.password_env} (inbound.mailbox.password_env)",
            ) from None
        except BaseException:
            _close(client)
            raise
        return client

    def start(self) -> MailboxPoller:
        """Connect here (a refused login or a wrong host fails the command), then poll in a thread."""
        client = self.connect()
        log.info("inbound mail from imap://%s/%s", self.where, self.config.folder)
        self._thread = threading.Thread(target=self.run, args=(client,), name="publisher-imap", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in hand (its move included), then log out."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self, client: IMAPClient | None = None) -> None:
        """Drain, wait for mail, repeat; on any error reconnect after a growing pause."""
        failures = 0
        while not self._stop.is_set():
            try:
                if client is None:
                    client = self.connect()
                moved = self.drain(client)
                failures = 0
                if moved:
                    log.info("inbound: %d messages from imap://%s processed", moved, self.where)
                self.wait(client)
            except Exception as exc:  # server gone, network, database: a re-read later is harmless
                delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
                failures += 1
                log.warning(
                    "inbound imap://%s: %s; reconnecting in %.0f s", self.where, one_line(str(exc)), delay
                )
                _close(client)
                client = None
                self._stop.wait(delay)
        _close(client)

    def drain(self, client: IMAPClient) -> int:
        """Every message now in the folder, a batch at a time; returns how many were moved."""
        moved = 0
        while not self._stop.is_set():
            uids = sorted(client.search(["NOT", "DELETED"]))
            if not uids:
                break
            for start in range(0, len(uids), self.config.batch):
                if self._stop.is_set():
                    break
                moved += self.process(client, uids[start : start + self.config.batch])
        return moved

    def process(self, client: IMAPClient, uids: list[int]) -> int:
        """Fetch, classify and apply one batch in one transaction, then move it; returns how many moved."""
        fetched = client.fetch(uids, [FETCH])
        done = [uid for uid in uids if uid in fetched]  # another client may have expunged some meanwhile
        items: list[Feedback] = []
        for uid in done:
            items.extend(self.facts(uid, _body(fetched[uid])))
        apply_feedback(self.store, self.settings, items, now=self.clock())
        self.move(client, done)
        return len(done)

    def facts(self, uid: int, data: bytes) -> list[Feedback]:
        """What one message states; one that breaks the reader gives none (and is moved all the same)."""
        try:
            found = classify(
                data,
                rcpts=recipients(data),
                secret=self.secret,
                bounce_domain=self.domain,
                unsubscribe_mailbox=self.unsubscribe_box,
            )
        except Exception:  # hostile mail must not stop the poller nor stay to be read forever
            log.exception("inbound imap message UID %s not readable; moved unprocessed", uid)
            return []
        if found.ignored:
            log.info("inbound imap message UID %s ignored: %s", uid, found.ignored)
        return [replace(f, source="imap") for f in found.feedback]

    def move(self, client: IMAPClient, uids: list[int]) -> None:
        """To ``processed_folder``: MOVE when offered, else COPY, flag ``\\Deleted`` and EXPUNGE."""
        if not uids:
            return
        target = self.config.processed_folder
        if client.has_capability("MOVE"):
            client.move(uids, target)
            return
        client.copy(uids, target)
        client.add_flags(uids, [_DELETED], silent=True)
        client.expunge()

    def wait(self, client: IMAPClient) -> None:
        """Until new mail may be there: IDLE when offered (ended by any untagged response), else a pause."""
        if self._stop.is_set():
            return
        if not client.has_capability("IDLE"):
            self._stop.wait(self.config.poll_seconds)
            return
        deadline = time.monotonic() + self.config.poll_seconds
        client.idle()
        try:
            while not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                asked = time.monotonic()
                if client.idle_check(timeout=min(IDLE_SLICE, left)):
                    break  # EXISTS, or anything else: a search is cheap
                if time.monotonic() - asked < min(IDLE_SLICE, left) / 2:
                    break  # readable but no line: the server closed; idle_done() will say so
        finally:
            client.idle_done()


def _body(item: Mapping[bytes, object]) -> bytes:
    """The fetched bytes: ``BODY[]<0>`` (RFC 3501), or ``BODY[]`` from a server that drops the origin."""
    for key, value in item.items():
        if key.startswith(b"BODY[") and isinstance(value, bytes):
            return value
    return b""


def _close(client: IMAPClient | None) -> None:
    """Log out politely, or drop the socket when the connection is already gone."""
    if client is None:
        return
    try:
        client.logout()
    except Exception:  # already broken: nothing to tell the server, just drop the socket
        with suppress(Exception):
            client.shutdown()
