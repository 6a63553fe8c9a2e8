"""Sending the double opt-in mail: the one way the web app's sign-ups get mail.

The mail is built by ``render.confirm`` like every other (same header
encoders, so a subscriber's name cannot inject a header) and delivered through
the pool (``send_one``: retries, DKIM, the configured transport). The web app
calls :func:`send_confirmation` after the response has gone out, so the
sign-up page answers in the same time whether or not the address was known,
and an SMTP outage never breaks the form: failures are logged, never raised.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from publisher.config import Settings
from publisher.deliver import (
    Envelope,
    RetryPolicy,
    Status,
    describe_transport,
    send_one,
    signer_for,
    transport_factory,
)
from publisher.errors import PublisherError
from publisher.ops.drain import envelope_sender
from publisher.render.confirm import confirmation_message
from publisher.render.email_headers import check_address

log = logging.getLogger("publisher.web")

SEND_KEY = "web-confirmations"  # the outbox folder of transport: file
RETRY = RetryPolicy(attempts=3, initial=0.5, maximum=4.0, give_up_after=15.0)


def confirmations_go_to(settings: Settings) -> str:
    """Where confirmation mails go, in words, for the log line ``publisher serve`` starts with."""
    return describe_transport(settings, SEND_KEY)


def confirmation_envelope(
    settings: Settings,
    secret: bytes,
    address: str,
    name: str,
    *,
    already: bool,
    now: datetime,
    base_url: str,
) -> Envelope:
    """The envelope of one sign-up's mail (a send key per moment: each mail its own Message-ID)."""
    mail = confirmation_message(
        settings,
        secret,
        address,
        name,
        already=already,
        now=now,
        base_url=base_url,
        send_key=f"{SEND_KEY}:{now.isoformat()}",
    )
    return Envelope(
        sender=envelope_sender(settings),
        recipient=check_address(address),
        data=mail.data,
        message_id=mail.message_id,
        smtp_ready=True,
    )


def send_confirmation(
    settings: Settings,
    secret: bytes,
    address: str,
    name: str,
    *,
    already: bool,
    now: datetime,
    base_url: str,
    stop: threading.Event,
) -> bool:
    """Build and deliver the mail; False (and a log line) when it could not be handed over.

    ``base_url`` is where the links lead: the web app, wherever people reach it.
    """
    try:
        env = confirmation_envelope(
            settings, secret, address, name, already=already, now=now, base_url=base_url
        )
        transports = transport_factory(settings, SEND_KEY)
        signer = signer_for(settings)
    except PublisherError as exc:
        log.error("cannot prepare the confirmation mail for %s: %s", address, exc.message)
        return False
    except Exception:  # runs after the response: a bug here must be logged, not lost
        log.exception("cannot prepare the confirmation mail for %s", address)
        return False
    try:
        result, fatal = send_one(transports, env, retry=RETRY, signer=signer, stop=stop)
    except Exception:
        log.exception("confirmation mail for %s not delivered", address)
        return False
    if result.status is Status.SENT:
        log.info("confirmation mail for %s: handed over", address)
        return True
    reason = fatal.message if fatal is not None else result.reason
    log.error("confirmation mail for %s not delivered: %s", address, reason)
    return False
