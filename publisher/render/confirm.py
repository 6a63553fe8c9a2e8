"""The double opt-in mail: "confirm your subscription" (or "you are already subscribed").

Built like every other mail we send: rendered from its templates
(``web/confirm_email.html`` and ``.txt``) and assembled by ``prepare_message``,
so its headers go through the same encoders as issues and digests and a
subscriber's name cannot inject one. It is one-off mail a person asked for:
no List-* headers, no unsubscribe link required, and no CSS to inline (the
template is written with inline styles), so premailer is not loaded for it.
Sending is ``ops.confirm``'s.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from publisher.config import Settings
from publisher.models import Recipient
from publisher.render.email_headers import check_address, clean_name
from publisher.render.email_mime import prepare_message
from publisher.render.templates import environment, text_environment
from publisher.tokens import Purpose, make_token, message_id, recipient_links, site_link

HTML_TEMPLATE = "web/confirm_email.html"
TEXT_TEMPLATE = "web/confirm_email.txt"
LINK_DAYS = 7  # what the mail says about the confirm link's life


class BuiltMail(NamedTuple):
    """One recipient's complete message, ready for SMTP, and its Message-ID."""

    data: bytes
    message_id: str


def _subject(settings: Settings, already: bool) -> str:
    title = settings.site.title
    return f"You are already subscribed to {title}" if already else f"Confirm your subscription to {title}"


def confirmation_message(
    settings: Settings,
    secret: bytes,
    address: str,
    name: str,
    *,
    already: bool,
    now: datetime,
    base_url: str,
    send_key: str,
) -> BuiltMail:
    """The mail for one sign-up: a confirm link, or (``already``) a preferences link.

    The links lead to ``base_url`` (the web app, wherever it is reached); the
    confirm token is stamped with ``now``, the app's clock, as the link is read
    by it (a stamp ahead of the reader's clock is refused as from the future).
    ``send_key`` keys the Message-ID and the MIME boundary.
    """
    site = settings.site
    address = check_address(address)
    confirm_url = site_link(base_url, f"confirm/{make_token(secret, Purpose.CONFIRM, address, now=now)}")
    unsubscribe_url, preferences_url = recipient_links(secret, base_url, address)
    subject = _subject(settings, already)
    shown_name = clean_name(name)
    values: dict[str, object] = {
        "site": site,
        "subject": subject,
        "already": already,
        "name": shown_name,
        "email": address,
        "confirm_url": confirm_url,
        "preferences_url": preferences_url,
        "unsubscribe_url": unsubscribe_url,
        "days": LINK_DAYS,
    }
    folder = settings.paths.templates
    text = text_environment(folder).get_template(TEXT_TEMPLATE).render(values)
    html = environment(folder).get_template(HTML_TEMPLATE).render(values)
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
    recipient = Recipient(address, shown_name, mid, unsubscribe_url, preferences_url)
    return BuiltMail(prepared.personalise(recipient), mid)
