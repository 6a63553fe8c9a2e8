"""Auto-replies: vacation notices and the like, which say nothing about deliverability.

They reach the bounce address because RFC 3834 §4 tells responders to answer
the envelope sender. Recognised by the RFC 3834 field, the vendor fields that
predate it, and, for responders that set none, the usual subjects. Checked
only after the report parsers: Exim marks its bounces ``Auto-Submitted:
auto-replied`` and a DSN may carry the field too, and a report always wins.
"""

from __future__ import annotations

import re
from email.message import Message

from publisher.inbound.message import decoded, header

_VENDOR_FIELDS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder")
_PRECEDENCE = ("auto_reply", "bulk", "junk")
_DAEMONS = ("mailer-daemon", "postmaster", "mail-daemon")
_SUBJECT = re.compile(
    r"\b(?:out of (?:the )?office|automatic reply|auto[- ]?reply|autoresponse|auto[- ]?response"
    r"|abwesenheitsnotiz|automatische antwort|abwesend|r[ée]ponse automatique|absence du bureau"
    r"|respuesta autom[áa]tica|fuera de la oficina|risposta automatica|fuori ufficio"
    r"|resposta autom[áa]tica|automatisch antwoord|afwezig|on vacation|vacation reply)\b",
    re.IGNORECASE,
)


def is_auto_reply(msg: Message) -> bool:
    """Whether ``msg`` was sent by a program answering mail, not by a person."""
    submitted = header(msg, "Auto-Submitted").strip().lower()
    if submitted and not submitted.startswith("no"):
        return True
    if any(msg.get(name) is not None for name in _VENDOR_FIELDS):
        return True
    if header(msg, "Precedence").strip().lower() in _PRECEDENCE:
        return True
    sender = header(msg, "From").lower()
    if any(f"{daemon}@" in sender for daemon in _DAEMONS):
        return True
    return bool(_SUBJECT.search(decoded(header(msg, "Subject"))[:300]))
