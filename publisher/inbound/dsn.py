"""RFC 3464 delivery status notifications: one ``Finding`` per recipient block.

``compat32`` already splits a ``message/delivery-status`` part into one nested
message per field block; ``message/global-delivery-status`` (RFC 6533) and a
text-encoded part arrive as text and are split here. Either way at most
``MAX_BLOCKS`` recipients are read: we send one recipient per message, so a
report naming hundreds is not about our mail.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from publisher.inbound.addresses import address_of
from publisher.inbound.message import MAX_TEXT, one_line, payload_bytes, status_in, valid_status
from publisher.models import FeedbackKind

MAX_BLOCKS = 50
MAX_LINES = 2000
REPORT_TYPES = ("message/delivery-status", "message/global-delivery-status")
_NOTHING = ("delivered", "relayed", "expanded")


@dataclass(frozen=True)
class Finding:
    """One recipient's outcome as a report states it, before attribution."""

    kind: FeedbackKind | None  # None: delivered, relayed, expanded, or not readable as a failure
    address: str | None
    status: str = ""
    detail: str = ""


def field_blocks(text: str) -> list[dict[str, str]]:
    """``Name: value`` blocks separated by blank lines; the first of a repeated field wins."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last: str | None = None
    for line in text.splitlines()[:MAX_LINES]:
        if not line.strip():
            if current:
                blocks.append(current)
                current, last = {}, None
            if len(blocks) > MAX_BLOCKS:
                break
        elif line[0] in " \t":
            if last is not None:
                current[last] = f"{current[last]} {line.strip()}"[:MAX_TEXT]
        else:
            name, colon, value = line.partition(":")
            last = name.strip().lower() if colon and name.strip().lower() not in current else None
            if last is not None:
                current[last] = value.strip()
    if current:
        blocks.append(current)
    return blocks[: MAX_BLOCKS + 1]


def _block_of(sub: Message) -> dict[str, str]:
    block: dict[str, str] = {}
    for name, value in sub.items()[:100]:
        block.setdefault(name.strip().lower(), value if isinstance(value, str) else str(value))
    return block


def report_blocks(part: Message) -> list[dict[str, str]]:
    """The field blocks of a report part (delivery-status or feedback-report), first the per-message one."""
    payload = part.get_payload()
    if not isinstance(payload, list):
        return field_blocks(payload_bytes(part, MAX_TEXT).decode("utf-8", "replace"))
    blocks: list[dict[str, str]] = []
    for sub in payload[: MAX_BLOCKS + 1]:
        if not isinstance(sub, Message):
            continue
        blocks.append(_block_of(sub))
        body = sub.get_payload()
        if isinstance(body, str) and body.strip():
            blocks.extend(field_blocks(body[:MAX_TEXT]))
    return [b for b in blocks if b][: MAX_BLOCKS + 1]


def kind_of(action: str, status: str) -> FeedbackKind | None:
    """Action first (RFC 3464 §2.3.3), the status class where the action is missing or unknown."""
    if action in _NOTHING:
        return None
    if action == "delayed" or (action == "failed" and status.startswith("4")):
        return FeedbackKind.SOFT_BOUNCE
    if action == "failed" or status.startswith("5"):
        return FeedbackKind.HARD_BOUNCE
    return FeedbackKind.SOFT_BOUNCE if status.startswith("4") else None


def finding(block: dict[str, str]) -> Finding:
    """One per-recipient block read: who, what happened, the code and the server's words."""
    action = block.get("action", "").strip().lower()[:20].partition(" ")[0]
    diagnostic = block.get("diagnostic-code", "")
    kind_, semi, words = diagnostic.partition(";")
    detail = one_line(words if semi and len(kind_) < 20 else diagnostic)
    status = valid_status(block.get("status", "")) or status_in(diagnostic)
    # Original-Recipient is the address we sent to; Final-Recipient may be where it was forwarded.
    address = address_of(block.get("original-recipient", "")) or address_of(block.get("final-recipient", ""))
    return Finding(kind_of(action, status), address, status, detail)


def read_dsn(part: Message) -> list[Finding]:
    """The per-recipient findings of a delivery-status part (the per-message block is skipped)."""
    blocks = report_blocks(part)
    recipients = [b for b in blocks if "final-recipient" in b or "original-recipient" in b]
    return [finding(b) for b in recipients[:MAX_BLOCKS]]
