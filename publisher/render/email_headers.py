"""Header values that are safe to write straight into a message's bytes.

Personalisation writes ``To`` for every recipient, so it cannot afford the
``email`` package's header machinery (~100 µs); these small encoders do the
same job for the few shapes we need. Every input is first cleaned of control
and line-break characters, so nothing from content or a subscriber's name can
start a new header line; non-ASCII text becomes RFC 2047 encoded words, one
per folded line, so no line passes 78 characters.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from datetime import datetime
from email.utils import format_datetime, parseaddr
from functools import lru_cache

from publisher.errors import RenderError

MAX_NAME_BYTES = 480  # so one encoded word of it (base64: 4/3) stays far below 998 octets
MAX_NAME = 256  # characters of a display name we keep (a 10,000-character "name" is abuse, not a name)
_KEEP_FORMAT = {"\u200c", "\u200d"}  # ZWNJ / ZWJ: needed by Persian text and emoji sequences
_SPACES = re.compile(r"\s+")
# RFC 5322 specials: an atom phrase containing one of these must be quoted.
_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')
_ADDR = re.compile(r"^[^\s<>()\[\]\\,;:\"@]+@[^\s<>()\[\]\\,;:\"@]+$")
_MSGID = re.compile(r"^<[!-;=?-~]+@[!-;=?-~]+>$")  # printable ASCII without '<', '>' or spaces
_EW_PREFIX = "=?utf-8?b?"
_EW_MAX_BYTES = 45  # 45 bytes -> 60 base64 chars -> a 72-character encoded word


def clean_text(value: str, limit: int | None = None) -> str:
    """One line of printable text: control, format and separator characters become spaces.

    Line/paragraph separators and NEL count as line breaks in some parsers, and
    bidi overrides can flip the text around a name, so they go too.
    """
    if value.isprintable():  # the common case, checked in C
        text = value.strip()
        if "  " in text:
            text = _SPACES.sub(" ", text)
        if limit is not None and len(text) > limit:
            text = text[: limit - 1].rstrip() + "…"
        return text
    out = []
    for ch in value:
        if ch.isprintable() or ch in _KEEP_FORMAT:
            out.append(ch)
        elif ch == " " or unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Zs"):
            out.append(" ")
        # other format/surrogate/unassigned code points are dropped
    text = _SPACES.sub(" ", "".join(out)).strip()
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _encoded_words(text: str) -> list[str]:
    """``text`` as base64 encoded words of at most 45 UTF-8 bytes each, never splitting a character."""
    raw = text.encode("utf-8")
    words: list[str] = []
    start = 0
    while start < len(raw):
        end = min(start + _EW_MAX_BYTES, len(raw))
        while end < len(raw) and end > start + 1 and 0x80 <= raw[end] < 0xC0:
            end -= 1  # do not cut inside a multi-byte character
        words.append(_EW_PREFIX + base64.b64encode(raw[start:end]).decode("ascii") + "?=")
        start = end
    return words


def encode_phrase(name: str, column: int = 4) -> str:
    """A display name as it goes before ``<addr>``: atom, quoted string, or encoded words.

    The name must already be cleaned. RFC 2047 says the space between two
    adjacent encoded words is dropped; Python's address parser keeps it. So
    each run of words that needs encoding becomes *one* encoded word (its
    spaces inside) between plain atoms, and both readings agree; a long run
    gives an encoded word over RFC 2047's 75 characters, which decoders
    accept, and ``clean_name`` keeps it within the 998-octet line limit.
    """
    if not name:
        return ""
    if name.isascii() and "=?" not in name:
        if not _SPECIALS.search(name):
            return name
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    tokens: list[str] = []
    run: list[str] = []
    for word in name.split(" "):
        if word.isascii() and not _SPECIALS.search(word) and "=?" not in word:
            if run:
                tokens.append(_one_word(" ".join(run)))
                run = []
            tokens.append(word)
        else:
            run.append(word)
    if run:
        tokens.append(_one_word(" ".join(run)))
    out, col = tokens[0], column + len(tokens[0])
    for tok in tokens[1:]:
        sep = "\r\n " if col + 1 + len(tok) > 78 else " "
        out += sep + tok
        col = (1 if sep != " " else col + 1) + len(tok)
    return out


def _one_word(text: str) -> str:
    return _EW_PREFIX + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def clean_name(value: str) -> str:
    """A display name: one clean line of at most 256 characters and 480 UTF-8 bytes."""
    name = clean_text(value, MAX_NAME)
    raw = name.encode("utf-8")
    if len(raw) > MAX_NAME_BYTES:  # cut on a byte boundary; a partial last character is dropped
        name = raw[: MAX_NAME_BYTES - 3].decode("utf-8", "ignore").rstrip() + "…"
    return name


def encode_unstructured(value: str, header_len: int) -> str:
    """An unstructured value (Subject): folded at spaces when ASCII, else encoded words.

    ``header_len`` is the length of ``Name: `` so the first line is folded right.
    """
    text = clean_text(value)
    if not text.isascii() or "=?" in text:
        return "\r\n ".join(_encoded_words(text))
    lines: list[str] = []
    line = ""
    budget = 78 - header_len
    for word in text.split(" "):
        if len(word) > 900:  # cannot fold an unbroken run: encoded words fold anywhere
            return "\r\n ".join(_encoded_words(text))
        if line and len(line) + 1 + len(word) > budget:
            lines.append(line)
            line, budget = word, 77  # continuation lines start with one space
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\r\n ".join(lines)


def check_address(addr: str) -> str:
    """An addr-spec that cannot break a header: no spaces, brackets or line breaks.

    A non-ASCII domain is IDNA-encoded; a non-ASCII local part needs SMTPUTF8,
    which we do not speak, so it is refused.
    """
    addr = addr.strip()
    if not _ADDR.match(addr):
        raise RenderError(f"not a usable email address: {addr!r}")
    local, _, domain = addr.rpartition("@")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise RenderError(f"not a usable email address: {addr!r}") from None
    if not local.isascii():
        raise RenderError(
            f"cannot address {addr!r}: a non-ASCII mailbox name needs SMTPUTF8",
            hint="ask the subscriber for an ASCII address",
        )
    return f"{local}@{domain}"


def format_mailbox(name: str, addr: str) -> str:
    """``Name <addr>`` (or the bare address) with the name cleaned and encoded."""
    return mailbox(clean_name(name), addr)


def mailbox(name: str, addr: str) -> str:
    """``format_mailbox`` for a name already passed through ``clean_name``."""
    addr = check_address(addr)
    phrase = encode_phrase(name)
    if not phrase:
        return addr
    last = phrase.rsplit("\n", 1)[-1]
    sep = "\r\n " if len(last) + len(addr) > 70 else " "  # keep lines near 78 when the name is long
    return f"{phrase}{sep}<{addr}>"


@lru_cache(maxsize=64)
def parse_mailbox(value: str) -> tuple[str, str]:
    """(name, addr) from a configured 'Name <addr>' string.

    Cached: every message parses the same From and Reply-To, and the stdlib's
    parser took ~0.07 ms for each (a bad value raises, and is not cached).
    """
    name, addr = parseaddr(clean_text(value))
    if not addr:
        raise RenderError(f"not an email address: {value!r}", hint="use 'Name <news@example.org>'")
    return name, addr


def check_message_id(value: str) -> str:
    if not _MSGID.match(value):
        raise RenderError(f"not a valid Message-ID: {value!r}")
    return value


def list_id(title: str, domain: str) -> str:
    """RFC 2919 List-Id: ``phrase <list.domain>``."""
    phrase = encode_phrase(clean_text(title, 120))
    lid = f"<list.{domain}>"
    return f"{phrase} {lid}" if phrase else lid


def format_date(date: datetime) -> str:
    if date.tzinfo is None:
        raise RenderError("the Date of a message needs a time zone", hint="pass an aware datetime")
    return format_datetime(date)


def header_line(name: str, value: str) -> bytes:
    """``Name: value`` CRLF as bytes (ASCII only: values were encoded above)."""
    line = f"{name}: {value}\r\n"
    if not line.isascii():
        raise RenderError(f"header {name} is not ASCII after encoding: {value!r}")
    return line.encode("ascii")
