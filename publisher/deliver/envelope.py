"""What travels through delivery, and how an attempt can end.

Every outcome is one of three kinds, because the ledger needs exactly three
answers: accepted (mark sent), refused for good (mark failed, maybe bounced),
or not now (leave pending and retry). Anything else stops the whole send
(``FatalDeliveryError``): a wrong password or a refused sender would fail every
recipient the same way, so failing them one by one would only burn the list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from publisher.errors import DeliveryError

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message for one recipient: the SMTP envelope plus the finished bytes (CRLF lines)."""

    sender: str
    recipient: str
    data: bytes
    message_id: str = ""
    # The producer vouches for SMTP form (CRLF line ends, no line starting with a
    # dot, a final CRLF), as ``PreparedMessage.personalise`` output always has:
    # the transport then sends it without scanning 10+ KB per message for it.
    smtp_ready: bool = False


class Status(StrEnum):
    SENT = "sent"  # the server answered 250 to the end of DATA
    FAILED = "failed"  # a 5xx for this recipient: do not retry
    DEFERRED = "deferred"  # 4xx or connection trouble outlasted the retries: still pending
    ABANDONED = "abandoned"  # never attempted (the pool stopped first): still pending


@dataclass(slots=True)
class Result:
    """How one submitted item ended; ``item`` is whatever the caller submitted."""

    item: Any
    status: Status
    message_id: str = ""
    reason: str = ""
    hard_bounce: bool = False
    ack: Any = field(default=None, repr=False)  # set by the pool: release the connection


class Deferred(Exception):
    """Try again later (a 4xx reply, a dropped or refused connection, a timeout)."""

    def __init__(self, reason: str, *, connection: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.connection = connection  # the connection itself failed: reconnect before retrying


class Rejected(Exception):
    """The server refused this recipient or message for good (5xx)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.hard_bounce = is_hard_bounce(code, reason)


class FatalDeliveryError(DeliveryError):
    """Nothing more can be sent now (authentication, refused sender, server unreachable)."""


def reply_text(code: int, message: bytes | str) -> str:
    """'550 5.1.1 No such user' from smtplib's (code, bytes) pair, on one line."""
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return f"{code} {' '.join(text.split())}".strip()


def is_hard_bounce(code: int, reason: str) -> bool:
    """Does this refusal say the address itself is bad (so stop mailing it)?

    An enhanced status 5.1.x (bad mailbox or domain) or 5.2.1 (disabled) is; a
    bare 550/551/553 without an enhanced code is taken as one too. 5.7.x (policy,
    spam) and 5.2.2 (mailbox full) or 5.3.x (message too big) are about this
    message, not the address, and are not.
    """
    if code < 500:
        return False
    text = reason.split(" ", 1)[1] if reason[:3].isdigit() else reason
    m = _ENHANCED.match(text)
    if m:
        klass, subject, detail = m.groups()
        return klass == "5" and (subject == "1" or (subject, detail) == ("2", "1"))
    return code in (550, 551, 553)
