"""`publisher inbound [--listen HOST:PORT] [--lmtp]`: receive bounces, complaints and unsubscribes.

Over SMTP/LMTP (``inbound.listen``), from an IMAP mailbox (``inbound.mailbox``), or both at once.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import Annotated

import typer

from publisher.cli.common import ConfigOption, err_console, escape, reports_errors, settings
from publisher.config import Settings
from publisher.errors import PublisherError
from publisher.inbound.imap import MailboxPoller
from publisher.inbound.server import InboundServer, parse_listen
from publisher.store import Store, open_store


def register(app: typer.Typer) -> None:
    app.command("inbound")(inbound_command)


@reports_errors
def inbound_command(
    listen: Annotated[
        str | None,
        typer.Option("--listen", metavar="HOST:PORT", help="Where to listen (default: inbound.listen)."),
    ] = None,
    lmtp: Annotated[
        bool | None, typer.Option("--lmtp/--smtp", help="Speak LMTP (behind Postfix/Exim) or SMTP.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Receive bounces, complaints and mailto: unsubscribes over SMTP/LMTP or IMAP until SIGTERM or Ctrl-C.

    Point the MX of inbound.bounce_domain (or your MTA's transport for it) here, or set
    inbound.mailbox to poll the IMAP mailbox your bounces land in (then --listen is optional).
    Each message is applied before it is acknowledged (SMTP) or moved to the processed folder
    (IMAP), so a crash loses nothing.
    """
    cfg = settings(config)
    where = listen or cfg.inbound.listen
    if not where and cfg.inbound.mailbox is None:
        raise PublisherError(
            "no address to listen on and no mailbox to poll",
            hint="pass --listen 127.0.0.1:2525, or set inbound.listen or inbound.mailbox in config.yaml",
        )
    if lmtp is not None:
        cfg = cfg.model_copy(update={"inbound": cfg.inbound.model_copy(update={"lmtp": lmtp})})
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command at INFO
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with open_store(cfg.database.url) as store, ExitStack() as running:
        if where:
            running.enter_context(listening(cfg, store, where))
        if cfg.inbound.mailbox is not None:
            running.enter_context(polling(cfg, store))
        stop.wait()


@contextmanager
def listening(cfg: Settings, store: Store, where: str) -> Iterator[InboundServer]:
    """The SMTP/LMTP endpoint, running until the block ends."""
    try:
        host, port = parse_listen(where)
    except ValueError:
        raise PublisherError(f"not a HOST:PORT: {where!r}", hint="e.g. 127.0.0.1:2525") from None
    server = InboundServer(cfg, store, clock=lambda: datetime.now(UTC), host=host, port=port)
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        raise PublisherError(f"cannot listen on {where}: {exc}") from None
    proto = "LMTP" if cfg.inbound.lmtp else "SMTP"
    err_console.print(f"inbound: {proto} on {escape(host)}:{port} (Ctrl-C stops)", soft_wrap=True)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def polling(cfg: Settings, store: Store) -> Iterator[MailboxPoller]:
    """The IMAP poller (it logs in before this returns), running until the block ends."""
    poller = MailboxPoller(cfg, store, clock=lambda: datetime.now(UTC)).start()
    box = cfg.inbound.mailbox
    assert box is not None
    err_console.print(
        f"inbound: IMAP {escape(box.username)} at {escape(poller.where)}, folder {escape(box.folder)} "
        "(Ctrl-C stops)",
        soft_wrap=True,
    )
    try:
        yield poller
    finally:
        poller.stop()
