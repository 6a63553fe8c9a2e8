"""RFC 5965 feedback reports: a reader pressed "this is spam" at a mailbox provider.

Only ``Feedback-Type: abuse`` (and ``fraud``, an abuse report that says more)
is a complaint about the reader's own mail; ``not-spam``, ``virus``,
``auth-failure`` (RFC 6591) and the rest report something else and are left
alone. The provider may redact the address (RFC 6590), which is why our VERP
token in the original's Return-Path or ``Original-Mail-From`` matters more.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from publisher.inbound.addresses import address_of, bare
from publisher.inbound.dsn import report_blocks
from publisher.inbound.message import header, one_line

COMPLAINT_TYPES = ("abuse", "fraud")
REPORT_TYPE = "message/feedback-report"


@dataclass(frozen=True)
class ArfReport:
    """The fields of one ``message/feedback-report`` part that matter here."""

    feedback_type: str
    address: str | None  # Original-Rcpt-To, else the original's To (filled by the caller)
    mail_from: str  # Original-Mail-From: our VERP return path, when the provider kept it
    user_agent: str

    @property
    def is_complaint(self) -> bool:
        return self.feedback_type in COMPLAINT_TYPES

    @property
    def detail(self) -> str:
        agent = f" ({self.user_agent})" if self.user_agent else ""
        return one_line(f"{self.feedback_type} report{agent}")


def read_arf(part: Message) -> ArfReport:
    """The feedback report fields (one block; repeated Original-Rcpt-To: the first readable one)."""
    blocks = report_blocks(part)
    fields = blocks[0] if blocks else {}
    raw_type = fields.get("feedback-type", "").strip().lower()
    feedback_type = one_line(raw_type.partition(" ")[0], 40)
    return ArfReport(
        feedback_type=feedback_type,
        address=address_of(fields.get("original-rcpt-to", "")),
        mail_from=(bare([fields.get("original-mail-from", "")]) or [""])[0],
        user_agent=one_line(fields.get("user-agent", ""), 100),
    )


def original_recipient(original: Message | None) -> str | None:
    """The first address in the quoted original's To, when the report names no recipient."""
    if original is None:
        return None
    return address_of(header(original, "To"))
