"""One inbound message in, facts out: ``classify`` is pure (no I/O, no clock, no database).

The order is the point:

1. Mail that reached none of our addresses is ignored before it is parsed.
2. A report wins: an ARF part (RFC 5965) gives a complaint, a delivery-status
   part (RFC 3464) gives bounces, then the plain-text bounce formats of
   ``textbounce`` are tried. Only then is the auto-reply rule applied, because
   Exim bounces and some DSNs carry ``Auto-Submitted: auto-replied``.
3. Mail to the unsubscribe mailbox that is no report and no auto-reply is an
   unsubscribe for its ``From:`` (RFC 2369 ``mailto:``; anyone can forge a
   From, as with every mailto: unsubscribe, and the worst it does is stop mail).

Attribution: ``delivery_id`` is only ever read from an address that carries
our sealed VERP token: the envelope recipient the report reached, else the
Return-Path (or ARF ``Original-Mail-From``) of the original quoted in it.
``address`` is merely what the report claims. A forged DSN naming someone at
plain ``bounces@`` therefore yields a fact with ``delivery_id=None``, and the
caller must refuse to act on such an address-only fact unless that address was
in fact sent to; when both are set it acts on the delivery's recipient and may
check that the address matches it.

A bounce of a bounce (the returned original is itself a report, or was sent to
our bounce address) is ignored: our mail never goes to the bounce address.
"""

from __future__ import annotations

import email.errors
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from enum import StrEnum

from publisher.inbound.addresses import Ours, bare, first_address
from publisher.inbound.arf import REPORT_TYPE as ARF_TYPE
from publisher.inbound.arf import original_recipient, read_arf
from publisher.inbound.autoreply import is_auto_reply
from publisher.inbound.dsn import REPORT_TYPES as DSN_TYPES
from publisher.inbound.dsn import Finding, read_dsn
from publisher.inbound.message import (
    decoded,
    header,
    headers,
    message_key,
    one_line,
    parse,
    parse_headers,
    payload_bytes,
    walk,
)
from publisher.inbound.textbounce import read_text_bounce
from publisher.models import Feedback, FeedbackKind

_ORIGINAL_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers")
# The stdlib parser promises not to raise on bad input, but crafted messages have made it
# (and header decoding) raise these before; one hostile message must not stop the caller.
_HOSTILE = (
    email.errors.MessageError,
    ValueError,
    LookupError,
    UnicodeError,
    IndexError,
    TypeError,
    AttributeError,
    RecursionError,
)


class Ignored(StrEnum):
    """Why a message gave no facts (for the log; the caller needs nothing else)."""

    NOT_OURS = "no recipient of ours"
    MALFORMED = "malformed"
    AUTO_REPLY = "auto-reply"
    NOT_A_REPORT = "not a report"
    LOOP = "bounce of a bounce"
    NO_FAILURE = "no failure reported"
    NOT_A_COMPLAINT = "feedback report of another type"
    NO_RECIPIENT = "no recipient named"
    NO_SENDER = "no sender address"


@dataclass(frozen=True)
class Classified:
    """Either facts to apply, or why there are none."""

    feedback: tuple[Feedback, ...] = ()
    ignored: str | None = None


@dataclass(frozen=True)
class _Parts:
    dsn: Message | None
    arf: Message | None
    original: Message | None  # the returned message's headers


def classify(
    data: bytes,
    *,
    rcpts: Sequence[str],
    secret: bytes,
    bounce_domain: str,
    unsubscribe_mailbox: str | None,
) -> Classified:
    """The facts one inbound message states (see the module docstring for the rules)."""
    ours = Ours(secret, bounce_domain.strip().lower(), unsubscribe_mailbox)
    envelope = bare(rcpts)
    to_bounce = [a for a in envelope if ours.is_bounce(a)]
    to_unsubscribe = [a for a in envelope if ours.is_unsubscribe(a)]
    if not to_bounce and not to_unsubscribe:
        return Classified(ignored=Ignored.NOT_OURS)
    try:
        msg = parse(data)
        key = message_key(msg, data)
        return _classify(msg, key, ours, to_bounce, to_unsubscribe)
    except _HOSTILE:
        return Classified(ignored=Ignored.MALFORMED)


def _classify(msg: Message, key: str, ours: Ours, to_bounce: list[str], to_unsub: list[str]) -> Classified:
    parts = _report_parts(msg)
    if parts.arf is not None:
        return _complaint(parts.arf, parts.original, key, ours, to_bounce)
    if parts.dsn is not None:
        return _bounces(read_dsn(parts.dsn), parts.original, key, ours, to_bounce)
    text = read_text_bounce(msg)
    if text is not None:
        return _bounces(text.findings, text.original or parts.original, key, ours, to_bounce)
    if is_auto_reply(msg):
        return Classified(ignored=Ignored.AUTO_REPLY)
    if to_unsub:
        return _unsubscribe(msg, key, ours, to_unsub)
    return Classified(ignored=Ignored.NOT_A_REPORT)


def _report_parts(msg: Message) -> _Parts:
    dsn = arf = original = None
    for part in walk(msg):
        kind = part.get_content_type()
        if kind in DSN_TYPES and dsn is None:
            dsn = part
        elif kind == ARF_TYPE and arf is None:
            arf = part
        elif kind in _ORIGINAL_TYPES and original is None and part is not msg:
            original = _original_headers(part)
    return _Parts(dsn, arf, original)


def _original_headers(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list):
        return next((m for m in payload if isinstance(m, Message)), None)
    return parse_headers(payload_bytes(part))


def _quoted_delivery(ours: Ours, original: Message | None, *extra: str) -> int | None:
    quoted = [*extra, *headers(original, "Return-Path")] if original is not None else list(extra)
    return ours.one_delivery(bare(quoted))


def _is_loop(ours: Ours, original: Message | None, findings: list[Finding]) -> bool:
    if any(f.address and ours.is_bounce(f.address) for f in findings):
        return True
    if original is None:
        return False
    if original.get_content_type() == "multipart/report":
        return True
    sent_to = bare([*headers(original, "To"), *headers(original, "Delivered-To")])
    return any(ours.is_bounce(a) for a in sent_to)


def _bounces(
    findings: list[Finding], original: Message | None, key: str, ours: Ours, to_bounce: list[str]
) -> Classified:
    if _is_loop(ours, original, findings):
        return Classified(ignored=Ignored.LOOP)
    delivery = ours.one_delivery(to_bounce)
    if delivery is None:
        delivery = _quoted_delivery(ours, original)
    several = len(findings) > 1
    facts = tuple(
        Feedback(
            kind=f.kind,
            key=f"{key}#{n}" if several else key,
            address=f.address,
            delivery_id=delivery,
            status=f.status,
            detail=f.detail,
        )
        for n, f in enumerate(findings, 1)
        if f.kind is not None and (f.address is not None or delivery is not None)
    )
    if facts:
        return Classified(facts)
    if findings and all(f.kind is None for f in findings):
        return Classified(ignored=Ignored.NO_FAILURE)
    return Classified(ignored=Ignored.NO_RECIPIENT)


def _complaint(
    arf: Message, original: Message | None, key: str, ours: Ours, to_bounce: list[str]
) -> Classified:
    report = read_arf(arf)
    if not report.is_complaint:
        return Classified(ignored=Ignored.NOT_A_COMPLAINT)
    address = report.address or original_recipient(original)
    delivery = _quoted_delivery(ours, original, report.mail_from)
    if delivery is None:
        delivery = ours.one_delivery(to_bounce)
    if address is None and delivery is None:
        return Classified(ignored=Ignored.NO_RECIPIENT)
    fact = Feedback(FeedbackKind.COMPLAINT, key, address, delivery, "", report.detail)
    return Classified((fact,))


def _unsubscribe(msg: Message, key: str, ours: Ours, to_unsub: list[str]) -> Classified:
    sender = first_address(header(msg, "From"))
    if sender is None:
        return Classified(ignored=Ignored.NO_SENDER)
    if ours.is_bounce(sender) or ours.is_unsubscribe(sender):
        return Classified(ignored=Ignored.LOOP)
    subject = decoded(header(msg, "Subject"))
    detail = one_line(f"mail to {to_unsub[0]}: {subject}")
    fact = Feedback(FeedbackKind.UNSUBSCRIBE, key, sender, ours.one_delivery(to_unsub), "", detail)
    return Classified((fact,))
