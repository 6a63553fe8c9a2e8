"""Assemble a message once, then personalise it by byte substitution.

Rendering and CSS inlining cost tens of milliseconds, building an
``EmailMessage`` per subscriber several more; a send to many subscribers
cannot pay that per message. So the whole MIME message is built once with
*slot markers* where per-subscriber values go, quoted-printable encoded
with every marker kept whole on a line of its own (soft line breaks around
it), and cut into a list of byte chunks. ``personalise`` then only encodes a
handful of short values and joins the list: ~10-40 µs.

Markers are plain alphanumerics (``XPSLOTunsubscribe_urlX``) because they
must come through jinja2 escaping, premailer, lxml's URL escaping of ``href``
and quoted-printable encoding unchanged. The same machinery serves issues and
digests: render your own HTML and text with ``slot(...)`` markers in them and
call ``prepare_message``.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property, partial

from publisher.config import Settings
from publisher.errors import RenderError
from publisher.models import Recipient
from publisher.render import email_headers as hdr
from publisher.render.email_qp import CRLF, qp_template, qp_value
from publisher.render.links import ClickLinks, rewrite_links
from publisher.render.pixel import with_pixel
from publisher.tokens import message_id, reader_token, recipient_links

MARKER_PREFIX = "XPSLOT"
_MARKER = re.compile(MARKER_PREFIX + r"([a-z0-9_]+)X")
# Slots every message understands; anything else is looked up in Recipient.extra.
SLOTS = ("greeting", "name", "email", "unsubscribe_url", "preferences_url")
READER = "click_reader"  # per-subscriber click counting: the recipient part of every /r/ link
_HTML_READER = f"html:{READER}"
_HTML_SPECIAL = re.compile(r"[&<>\"']")
GREETING = "Hi {name},"
NEUTRAL_GREETING = "Hello,"


def unsubscribe_mailto(settings: Settings) -> str:
    """The ``mailto:`` of List-Unsubscribe, or '' (then only the https link is offered).

    Only ``email.unsubscribe_mailbox`` gives one: advertising a mailbox that
    nobody reads would swallow the unsubscribes of every client that uses it.
    """
    box = settings.email.unsubscribe_mailbox
    return f"mailto:{box}?subject=unsubscribe" if box else ""


def slot(key: str) -> str:
    """The marker a template writes where ``key`` is filled in per recipient."""
    if not re.fullmatch(r"[a-z0-9_]+", key):
        raise ValueError(f"slot names are lowercase letters, digits and '_': {key!r}")
    return f"{MARKER_PREFIX}{key}X"


def template_slots() -> dict[str, str]:
    """Markers for templates, e.g. ``{{ slots.unsubscribe_url }}``."""
    return {key: slot(key) for key in SLOTS}


# -- the prepared message --------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedMessage:
    """A rendered message with slots: fill it per recipient with ``personalise``.

    ``html`` and ``text`` hold the slot markers (see ``fill_html``/``fill_text``
    for one recipient's version); ``warnings`` says when the HTML is close to
    the size at which Gmail clips it.
    """

    subject: str
    html: str
    text: str
    html_size: int  # bytes of the HTML part (UTF-8, before transfer encoding)
    warnings: tuple[str, ...]
    chunks: tuple[bytes | str, ...] = field(repr=False)
    greeting: str = GREETING
    neutral_greeting: str = NEUTRAL_GREETING
    default_mailto: str = ""
    links: ClickLinks | None = None  # the links rewritten through /r/ (the send records them)

    @cached_property
    def slot_positions(self) -> dict[str, tuple[int, ...]]:
        """Where each slot sits in ``chunks`` (computed once; personalise only fills them)."""
        where: dict[str, list[int]] = {}
        for pos, chunk in enumerate(self.chunks):
            if isinstance(chunk, str):
                where.setdefault(chunk, []).append(pos)
        return {k: tuple(v) for k, v in where.items()}

    def values(self, recipient: Recipient) -> dict[str, str]:
        """The plain (unencoded) slot values for one recipient."""
        name = hdr.clean_name(recipient.name)
        vals = {
            "name": name,
            "greeting": self.greeting.format(name=name) if name else self.neutral_greeting,
            "email": hdr.clean_text(recipient.email),
            "unsubscribe_url": hdr.clean_text(recipient.unsubscribe_url),
            "preferences_url": hdr.clean_text(recipient.preferences_url),
        }
        for key, value in recipient.extra.items():
            vals.setdefault(key, hdr.clean_text(value))
        vals.setdefault(READER, "")  # a reader not known (a test copy): the click counts, unnamed
        return vals

    def personalise(self, recipient: Recipient) -> bytes:
        """The complete message for one recipient, as bytes ready for SMTP.

        CRLF line ends and no line starting with a dot (``qp_template`` and
        ``qp_value`` escape it), so it goes out as ``Envelope(smtp_ready=True)``.
        """
        vals = self.values(recipient)
        mailto = hdr.clean_text(recipient.unsubscribe_mailto) or self.default_mailto
        encoded: dict[str, bytes] = {
            "h_to": hdr.mailbox(vals["name"], recipient.email).encode("ascii"),
            "h_message_id": hdr.check_message_id(recipient.message_id).encode("ascii"),
            "h_unsubscribe": _list_unsubscribe(vals["unsubscribe_url"], mailto),
        }
        reader = vals[READER]
        if reader.isascii() and reader.replace("-", "").replace("_", "").isalnum():
            encoded[_HTML_READER] = reader.encode("ascii")  # base64url: the same in QP and HTML
        out = list(self.chunks)
        memo: dict[str, bytes] = {}  # the same text in both parts is encoded once
        for key, part, name, positions in self._plan:
            value = encoded.get(key)
            if value is None:
                plain = self._html_value(name, vals) if part == "html" else _lookup(vals, name)
                value = memo.get(plain)
                if value is None:
                    value = memo[plain] = qp_value(plain)
            for pos in positions:
                out[pos] = value
        return b"".join(out)  # type: ignore[arg-type]

    @cached_property
    def _plan(self) -> tuple[tuple[str, str, str, tuple[int, ...]], ...]:
        """(slot, part, name, positions) for each slot: the per-message loop does no parsing."""
        return tuple((k, *_split_key(k), pos) for k, pos in self.slot_positions.items())

    @cached_property
    def _greeting_html(self) -> tuple[str, str]:
        before, _, after = self.greeting.partition("{name}")
        return html_lib.escape(before), html_lib.escape(after)

    def fill_html(self, recipient: Recipient) -> str:
        """The HTML part for one recipient, as text."""
        vals = self.values(recipient)
        return _MARKER.sub(lambda m: self._html_value(m.group(1), vals), self.html)

    def _html_value(self, key: str, vals: Mapping[str, str]) -> str:
        """A value escaped for HTML; the name in the greeting is isolated so RTL text cannot reorder it."""
        if key == "greeting" and vals["name"]:
            before, after = self._greeting_html
            return f"{before}<bdi>{html_lib.escape(vals['name'], quote=True)}</bdi>{after}"
        value = _lookup(vals, key)
        return html_lib.escape(value, quote=True) if _HTML_SPECIAL.search(value) else value

    def fill_text(self, recipient: Recipient) -> str:
        vals = self.values(recipient)
        return _MARKER.sub(lambda m: _lookup(vals, m.group(1)), self.text)


def _split_key(key: str) -> tuple[str, str]:
    part, _, name = key.partition(":")
    return part, name


def _lookup(vals: Mapping[str, str], key: str) -> str:
    try:
        return vals[key]
    except KeyError:
        raise RenderError(
            f"the message has a slot {key!r} this recipient has no value for",
            hint=f"known slots: {', '.join(SLOTS)}; others come from Recipient.extra",
        ) from None


def _list_unsubscribe(url: str, mailto: str) -> bytes:
    if not url.isascii() or " " in url or ">" in url:
        raise RenderError(f"not a usable unsubscribe URL: {url!r}")
    if not mailto:
        return f"<{url}>".encode("ascii")
    return f"<{url}>,\r\n <{mailto}>".encode("ascii")


def prepare_message(
    settings: Settings,
    *,
    subject: str,
    html: str,
    text: str,
    send_key: str,
    date: datetime,
    feedback_id: str,
    source: str = "",
    greeting: str = GREETING,
    neutral_greeting: str = NEUTRAL_GREETING,
    require_unsubscribe: bool = True,
    list_mail: bool = True,
    click_secret: bytes | None = None,
    click_numbers: dict[str, int] | None = None,
) -> PreparedMessage:
    """Build the slotted MIME message from final (already inlined) HTML and text.

    ``send_key`` keys the boundary with the content, ``source`` names the file
    in errors. Size is checked here so every kind of message is guarded, and
    so is the unsubscribe link in both parts (a list mail without one is
    a complaint waiting to happen).

    Every kind of mail we send is built here, so every header goes through
    the encoders of ``email_headers`` (never ``email.headerregistry``, which
    decodes RFC 2047 words in names and, on Pythons without the CVE-2024-6923
    fix, writes their CR/LF out raw). ``list_mail=False`` is for one-off mail
    a person asked for (the sign-up confirmation): no List-* or Feedback-ID
    headers, and ``Auto-Submitted`` so autoresponders leave it alone.
    With ``click_secret`` (and ``analytics.clicks`` on) the HTML part's links
    go through ``/r/<token>`` (``render.links``), once for every recipient;
    ``click_numbers``: the send's link numbering to follow (a digest's variants).
    """
    where = source or subject
    if require_unsubscribe:
        _check_unsubscribe_link(html, text, where)
    html, links = _click_links(settings, html, click_secret, send_key, click_numbers)
    html = with_pixel(settings, html, click_secret, send_key)  # analytics.opens: the 1x1 image
    html_size = len(_MARKER.sub(lambda m: "x" * 120, html).encode("utf-8"))
    warnings = _check_size(settings, html_size, where)
    headers = _header_chunks(settings, subject, date, feedback_id, list_mail)
    return PreparedMessage(
        subject=hdr.clean_text(subject),
        html=html,
        text=text,
        html_size=html_size,
        warnings=tuple(warnings),
        chunks=_merge(headers + _body_chunks(send_key, subject, html, text)),
        greeting=greeting,
        neutral_greeting=neutral_greeting,
        default_mailto=unsubscribe_mailto(settings),
        links=links,
    )


def _click_links(
    settings: Settings, html: str, secret: bytes | None, send_key: str, numbers: dict[str, int] | None
) -> tuple[str, ClickLinks | None]:
    """The HTML with its links through ``/r/`` (``render.links``), if counted, and the links numbered."""
    if secret is None or not settings.analytics.clicks:
        return html, None
    return rewrite_links(
        html,
        secret=secret,
        send_key=send_key,
        app_url=settings.web.public_url or settings.site.url,
        marker=MARKER_PREFIX,
        reader_slot=slot(READER) if settings.analytics.per_subscriber else "",
        numbers=numbers,
    )


def _check_unsubscribe_link(html: str, text: str, where: str) -> None:
    """A list mail without an unsubscribe link in both parts is a complaint waiting to happen."""
    marker = slot("unsubscribe_url")
    for part, content in (("HTML", html), ("text", text)):
        if marker not in content:
            raise RenderError(
                f"{where}: the {part} part has no unsubscribe link",
                hint="put {{ slots.unsubscribe_url }} in the email templates",
            )


def _header_chunks(
    settings: Settings, subject: str, date: datetime, feedback_id: str, list_mail: bool
) -> list[bytes | str]:
    """The header block, with slots for To, Message-ID and (list mail) List-Unsubscribe."""
    from_name, from_addr = hdr.parse_mailbox(settings.email.from_)
    headers: list[bytes | str] = [
        hdr.header_line("From", hdr.format_mailbox(from_name, from_addr)),
        b"To: ",
        "h_to",
        CRLF,
        hdr.header_line("Subject", hdr.encode_unstructured(subject, len("Subject: "))),
        hdr.header_line("Date", hdr.format_date(date)),
        b"Message-ID: ",
        "h_message_id",
        CRLF,
    ]
    if settings.email.reply_to:
        rt_name, rt_addr = hdr.parse_mailbox(settings.email.reply_to)
        headers.append(hdr.header_line("Reply-To", hdr.format_mailbox(rt_name, rt_addr)))
    if list_mail:
        site = settings.site
        headers += [
            hdr.header_line("List-Id", hdr.list_id(site.title, site.domain)),
            b"List-Unsubscribe: ",
            "h_unsubscribe",
            CRLF,
            hdr.header_line("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            hdr.header_line("Feedback-ID", hdr.clean_text(feedback_id).replace(" ", "-")),
        ]
    else:
        headers.append(hdr.header_line("Auto-Submitted", "auto-generated"))  # RFC 3834
    headers.append(hdr.header_line("MIME-Version", "1.0"))
    return headers


def _body_chunks(send_key: str, subject: str, html: str, text: str) -> list[bytes | str]:
    """multipart/alternative of the text and HTML parts, QP-encoded, slots kept whole."""
    text_chunks = _part_chunks("text", text)
    html_chunks = _part_chunks("html", html)
    digest = hashlib.sha256(
        b"\0".join([send_key.encode(), subject.encode(), text.encode(), html.encode()])
    ).hexdigest()[:32]
    boundary = f"=_publisher_{digest}".encode("ascii")  # '=_' never occurs in QP-encoded bodies
    return [
        b'Content-Type: multipart/alternative;\r\n boundary="' + boundary + b'"\r\n\r\n',
        b"--" + boundary + CRLF,
        b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n',
        *text_chunks,
        CRLF + b"--" + boundary + CRLF,
        b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n',
        *html_chunks,
        CRLF + b"--" + boundary + b"--" + CRLF,
    ]


def _part_chunks(part: str, content: str) -> list[bytes | str]:
    """A part's QP chunks with slot names qualified by the part (each part escapes differently)."""
    return [c if isinstance(c, bytes) else f"{part}:{c}" for c in qp_template(content, _MARKER)]


def _merge(chunks: list[bytes | str]) -> tuple[bytes | str, ...]:
    """Join neighbouring byte chunks so personalise joins as few pieces as possible."""
    out: list[bytes | str] = []
    for c in chunks:
        if isinstance(c, bytes) and out and isinstance(out[-1], bytes):
            out[-1] = out[-1] + c
        else:
            out.append(c)
    return tuple(out)


def _check_size(settings: Settings, size: int, where: str) -> list[str]:
    kb = size / 1024
    limit, warn = settings.email.size_limit_kb, settings.email.size_warn_kb
    if kb > limit:
        raise RenderError(
            f"{where}: the HTML part is {kb:.1f} KB, over the {limit} KB limit (Gmail clips longer mail)",
            hint="shorten the issue, split it, or link to the full text",
        )
    if kb > warn:
        return [f"{where}: the HTML part is {kb:.1f} KB, close to the {limit} KB at which Gmail clips it"]
    return []


def make_recipient(settings: Settings, secret: bytes, send_key: str, email: str, name: str) -> Recipient:
    """The per-subscriber values for one send: signed links and a deterministic Message-ID."""
    return recipient_maker(settings, secret, send_key)(email, name, None)


def recipient_maker(
    settings: Settings, secret: bytes, send_key: str
) -> Callable[[str, str, int | None], Recipient]:
    """``make_recipient`` for a whole send: what every recipient shares is worked out once.

    ``analytics.per_subscriber``: a ``subscriber_id`` gets its reader token for the links' slot.
    """
    site_url, domain = settings.site.url, settings.site.domain
    mailto = unsubscribe_mailto(settings)
    per_reader = settings.analytics.clicks and settings.analytics.per_subscriber
    seal = partial(reader_token, secret, send_key)

    def make(email: str, name: str, subscriber_id: int | None = None) -> Recipient:
        unsub, prefs = recipient_links(secret, site_url, email)
        extra = {READER: seal(subscriber_id)} if per_reader and subscriber_id else {}
        return Recipient(
            email=email,
            name=name,
            message_id=message_id(secret, send_key, email, domain),
            unsubscribe_url=unsub,
            preferences_url=prefs,
            unsubscribe_mailto=mailto,
            extra=extra,
        )

    return make
