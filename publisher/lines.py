"""One line of someone else's text, fit to store and to log.

Bounce reports, complaint reports and ESP webhooks all hand us diagnostics,
addresses and ids we did not write; the inbound edges, the webhook edge and the
store clean them with this one function, so a NUL (which PostgreSQL refuses),
a line separator or a bidi override is handled the same way wherever it arrives.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, zero-width and bidi marks and overrides, line and paragraph
# separators, the BOM, and lone surrogates (which no UTF-8 database column can hold).
_UNWANTED = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff\ud800-\udfff]+")
_SPACES = re.compile(r"\s+")


def one_line(text: str, limit: int) -> str:
    """``text`` on one line: unwanted characters become spaces, runs of space one, at most ``limit``."""
    cut = text[: limit * 4]  # never scan a 50 MB diagnostic for a 500-character line
    if not cut.isprintable():
        cut = _UNWANTED.sub(" ", cut)
    return _SPACES.sub(" ", cut).strip()[:limit].rstrip()  # a cut may end on a space


def visible(text: str) -> str:
    """``text`` with each unwanted character shown as U+FFFD: safe to print on a terminal.

    An escape sequence or a bidi override in an argument must not reach the terminal
    that echoes it back in an error ("no send \\x1b[31m..."); spacing is kept as written.
    """
    return text if text.isprintable() else _UNWANTED.sub("\ufffd", text)
