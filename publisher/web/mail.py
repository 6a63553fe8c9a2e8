"""The double opt-in mail: "confirm your subscription" (or "you are already subscribed").

It is built like every other mail we send: rendered once, assembled by
``prepare_message`` (so its headers go through the same encoders as issues
and digests, and a subscriber's name cannot inject one), personalised, and
delivered through the pool (``send_one``: retries, DKIM). It is sent after
the response has gone out, so the sign-up page answers in the same time
whether or not the address was known, and an SMTP outage never breaks the form.
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
from publisher.models import Recipient
from publisher.ops.send import envelope_sender
from publisher.render.email_headers import check_address, clean_name
from publisher.render.email_mime import prepare_message
from publisher.render.templates import text_environment
from publisher.tokens import Purpose, make_token, message_id, recipient_links, site_link
from publisher.web.pages import public_url, render_text

log = logging.getLogger("publisher.web")

SEND_KEY = "web-confirmations"  # the outbox folder of transport: file
RETRY = RetryPolicy(attempts=3, initial=0.5, maximum=4.0, give_up_after=15.0)


def confirmation_message(
    settings: Settings, secret: bytes, address: str, name: str, *, already: bool, now: datetime
) -> tuple[bytes, str]:
    """(the message's bytes, its Message-ID) for one sign-up: a confirm link, or a preferences link."""
    site = settings.site
    address = check_address(address)
    # stamped by the app's clock, as the link is read by it (a stamp ahead of the reader's
    # clock is refused as from the future)
    base = public_url(settings)  # the links lead to this app, wherever it is reached
    confirm_url = site_link(base, f"confirm/{make_token(secret, Purpose.CONFIRM, address, now=now)}")
    unsubscribe_url, preferences_url = recipient_links(secret, base, address)
    values = {
        "already": already,
        "name": clean_name(name),
        "email": address,
        "confirm_url": confirm_url,
        "preferences_url": preferences_url,
        "unsubscribe_url": unsubscribe_url,
        "days": 7,
    }
    subject = (
        f"You are already subscribed to {site.title}"
        if already
        else f"Confirm your subscription to {site.title}"
    )
    text = (
        text_environment(settings.paths.templates)
        .get_template("web/confirm_email.txt")
        .render(site=site, subject=subject, **values)
    )
    html = render_text(settings, "web/confirm_email.html", subject=subject, **values)
    send_key = f"{SEND_KEY}:{now.isoformat()}"
    prepared = prepare_message(
        settings,
        subject=subject,
        html=html,
        text=text,
        send_key=send_key,
        date=now,
        feedback_id="",
        source="the confirmation mail",
        require_unsubscribe=False,
        list_mail=False,
    )
    mid = message_id(secret, send_key, address, site.domain)
    recipient = Recipient(address, values["name"], mid, unsubscribe_url, preferences_url)
    return prepared.personalise(recipient), mid


def confirmations_go_to(settings: Settings) -> str:
    """Where confirmation mails go, in words, for the log line ``publisher serve`` starts with."""
    return describe_transport(settings, SEND_KEY)


def send_confirmation(
    settings: Settings,
    secret: bytes,
    address: str,
    name: str,
    *,
    already: bool,
    now: datetime,
    stop: threading.Event,
) -> bool:
    """Build and deliver the mail; False (and a log line) when it could not be handed over."""
    try:
        data, mid = confirmation_message(settings, secret, address, name, already=already, now=now)
        env = Envelope(
            sender=envelope_sender(settings),
            recipient=check_address(address),
            data=data,
            message_id=mid,
            smtp_ready=True,
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
