"""``publisher inbound``: the SMTP (or LMTP) endpoint that bounces, complaints and unsubscribes reach.

aiosmtpd speaks the protocol; this module decides what to take:

* RCPT: only our bounce addresses (``bounces@`` or ``bounces+<valid token>@``
  the bounce domain) and the List-Unsubscribe mailbox (``email.unsubscribe_mailbox``,
  plus-tags allowed); anything else is refused with 550, so the endpoint is no
  relay and no catch-all.
* MAIL: at most ``inbound.per_client_per_minute`` messages per client address
  (451 past that: a real MTA retries later).
* EHLO/LHLO: PIPELINING is advertised (RFC 2920; aiosmtpd reads commands in
  order from its buffer, so a client may send MAIL, RCPT and DATA in one
  write, as Postfix does; LMTP requires it, RFC 2033).
* DATA: at most ``inbound.max_size`` bytes (552); the message is classified and
  its facts committed *before* the 250 (with whatever other connections handed
  over meanwhile, on the loop: ``GroupCommit``), so an acknowledged message
  has taken effect and an unacknowledged one (a crash, a kill -9, a database
  error: 451) is retried by the sender and applied once, by its key.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from publisher.config import Settings
from publisher.inbound.classify import classify
from publisher.models import Feedback
from publisher.ops.feedback import apply_feedback, bounce_domain
from publisher.store import Store
from publisher.tokens import BOUNCE_PREFIX, read_bounce_address

log = logging.getLogger("publisher.inbound")
Clock = Callable[[], datetime]


class _PerMinute:
    """A fixed-window count per client: enough to stop a flood, cheap enough for every MAIL."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._window = 0
        self._counts: dict[str, int] = {}

    def take(self, key: str, now: float) -> bool:
        window = int(now // 60)
        if window != self._window:
            self._window, self._counts = window, {}
        n = self._counts.get(key, 0)
        if n >= self.limit:
            return False
        self._counts[key] = n + 1
        return True


class InboundHandler:
    """aiosmtpd handler: accept our addresses only, apply each message before acknowledging it."""

    def __init__(self, settings: Settings, store: Store, *, clock: Clock, lmtp: bool = False) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.lmtp = lmtp
        self.secret = settings.secret_key()
        self.domain = bounce_domain(settings)
        box = settings.email.unsubscribe_mailbox
        self.unsubscribe_box = box.lower() if box else None
        self.limits = _PerMinute(settings.inbound.per_client_per_minute)
        self.source = "lmtp" if lmtp else "smtp"
        self.writer = GroupCommit(self.apply)

    def accepts(self, address: str) -> bool:
        """Is ``address`` one we read (a bounce address with a valid token, or the unsubscribe box)?"""
        local, at, domain = address.strip().lower().rpartition("@")
        if not at:
            return False
        if self.unsubscribe_box is not None:
            box_local, _, box_domain = self.unsubscribe_box.rpartition("@")
            if domain == box_domain and local.partition("+")[0] == box_local:
                return True
        if domain != self.domain:
            return False
        if local == BOUNCE_PREFIX:
            return True
        return read_bounce_address(self.secret, f"{local}@{domain}") is not None

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # what aiosmtpd does itself when there is no hook
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        if not self.limits.take(peer, time.monotonic()):
            return "451 4.7.1 Too many messages from you; try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not self.accepts(address):
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Classify, apply (group-committed with the other connections' messages), then acknowledge."""
        try:
            items = self.facts(envelope.original_content or b"", list(envelope.rcpt_tos))
            await self.writer.submit(items)
            status = "250 2.0.0 Processed"
        except Exception:  # the sender keeps the message and retries: nothing is lost
            log.exception("inbound message from %s not processed", envelope.mail_from)
            status = "451 4.3.0 Not processed; try again later"
        return "\r\n".join([status] * len(envelope.rcpt_tos)) if self.lmtp else status

    def facts(self, data: bytes, rcpts: list[str]) -> list[Feedback]:
        """What one message states (pure: ~160 us, so it runs on the loop)."""
        found = classify(
            data,
            rcpts=rcpts,
            secret=self.secret,
            bounce_domain=self.domain,
            unsubscribe_mailbox=self.unsubscribe_box,
        )
        if found.ignored:
            log.info("inbound message ignored: %s", found.ignored)
        return [replace(f, source=self.source) for f in found.feedback]

    def process(self, data: bytes, rcpts: list[str]) -> int:
        """One message in, its facts applied at once (exactly once by key); returns how many facts."""
        items = self.facts(data, rcpts)
        self.apply(items)
        return len(items)

    def apply(self, items: list[Feedback]) -> None:
        apply_feedback(self.store, self.settings, items, now=self.clock())


class GroupCommit:
    """One transaction for every message waiting, answered only after it commits.

    ``store.feedback.apply`` costs ~570 us of CPU a report alone in its
    transaction and ~270 us in batches of 64 (SQLite, measured apart from the
    server): one transaction per message held the endpoint near 350 reports/s;
    batching what the other connections handed over meanwhile is worth ~25 %
    of the server's CPU a report at 16 connections against 4 (bench/inbound.py).
    A batch can be no larger than the number of connections, each waiting for
    its 250. A failed batch fails each of its messages (451: their senders
    retry, and the keys keep the retry from counting twice).

    The transaction runs on the loop, not in a thread: the thread cost ~30 %
    more CPU a report in GIL hand-offs with the loop (1,030-1,090 against
    750-780 us; 870-920 against 1,230-1,280 reports/s at 16 connections,
    bench/inbound.py). While it runs the endpoint answers nobody, which
    costs nothing: every message read meanwhile would wait for that commit
    anyway, and a sender waits minutes for a reply (RFC 5321 4.5.3.2), longer
    than SQLite's busy timeout.
    """

    def __init__(self, apply: Callable[[list[Feedback]], None]) -> None:
        self._apply = apply
        self._waiting: list[tuple[list[Feedback], asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, items: list[Feedback]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((items, done))
        if self._task is None:
            self._task = asyncio.create_task(self._write_all())
        await done

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                await asyncio.sleep(0)  # the other connections' messages already read join this batch
                batch, self._waiting = self._waiting, []
                try:
                    self._apply([f for items, _ in batch for f in items])
                except Exception as exc:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._task = None
            for _, done in self._waiting:  # only when cancelled (shutdown): never a false 250
                done.cancel()
            self._waiting = []


def parse_listen(value: str) -> tuple[str, int]:
    """'host:port' (or '[::1]:port') -> (host, port)."""
    host, _, port = value.strip().rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# <dot-atom@domain>: what aiosmtpd's RFC 5322 parser gives back unchanged; anything else goes to it.
_PLAIN_PATH = re.compile(rf"<((?:{_ATEXT}\.)*{_ATEXT}@(?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]+)>")


class _PlainPaths(SMTP):
    """aiosmtpd's SMTP, reading a plain ``<local@domain>`` path without the email header parser.

    That parser took ~90 us for each VERP address (MAIL and RCPT: ~10 % of
    the server's CPU a report); the result is the same (tests/test_inbound_server.py
    holds the two against each other).
    """

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        plain = _PLAIN_PATH.match(arg)
        rest = arg[plain.end() :] if plain is not None else ""
        if rest[:1] in (" ", "\t"):
            rest = rest.lstrip()  # as the parser's folding white space after '>'
        if plain is None or rest[:1] == "(":  # a comment, too, is the parser's to read
            return super()._getaddr(arg)
        address = plain.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest


class _PlainPathsLMTP(_PlainPaths, LMTP):
    """The same for LMTP."""


class _Controller(Controller):
    """aiosmtpd's controller, speaking LMTP instead of SMTP when asked."""

    def __init__(self, handler: InboundHandler, *, lmtp: bool, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.lmtp = lmtp

    def factory(self) -> SMTP:
        return (_PlainPathsLMTP if self.lmtp else _PlainPaths)(self.handler, **self.SMTP_kwargs)


class InboundServer:
    """The endpoint running in a background thread (aiosmtpd's Controller); ``stop()`` ends it."""

    def __init__(self, settings: Settings, store: Store, *, clock: Clock, host: str, port: int) -> None:
        lmtp = settings.inbound.lmtp
        self.handler = InboundHandler(settings, store, clock=clock, lmtp=lmtp)
        self.controller = _Controller(
            self.handler,
            lmtp=lmtp,
            hostname=host,
            port=port,
            data_size_limit=settings.inbound.max_size,
            ident="publisher inbound",
        )
        self._stopped = threading.Event()

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def start(self) -> InboundServer:
        self.controller.start()
        log.info("inbound mail on %s:%s", self.controller.hostname, self.controller.port)
        return self

    def stop(self) -> None:
        if not self._stopped.is_set():
            self._stopped.set()
            self.controller.stop()
