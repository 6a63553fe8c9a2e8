"""Quoted-printable for prepared messages: slot markers kept whole, values encoded alone.

The stdlib encoders cannot do this: they would split a marker across a soft
line break, and a value substituted into a line would push it past the
76-character limit. Here every marker sits on a line of its own, so the
template is encoded once and each value is encoded by itself (``qp_value``,
a C-speed ``b2a_qp`` or a plain slice for URL-safe text) at send time.
"""

from __future__ import annotations

import re
from binascii import b2a_qp, hexlify

QP_MAX = 76
CRLF = b"\r\n"
SOFT = b"=\r\n"


def qp_template(text: str, marker: re.Pattern[str]) -> list[bytes | str]:
    """QP-encode ``text`` with markers kept whole: bytes chunks and slot names, in order.

    Each marker starts a fresh line (a soft break before it) and is followed by
    a soft break, so a substituted value of any length is encoded on its own
    lines and never pushes a template line past 76 characters.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    out: list[bytes | str] = []
    buf = bytearray()
    col = 0
    for n, line in enumerate(text.split("\n")):
        if n:
            buf += CRLF
            col = 0
        if _PLAIN_LINE.fullmatch(line) and not marker.search(line):  # most lines: only '=' to escape
            enc = line.encode("ascii").replace(b"=", b"=3D")
            if len(enc) < QP_MAX:
                buf += enc
            else:
                _append_encoded(buf, 0, enc)
            continue
        pos = 0
        pieces: list[tuple[str, str]] = []
        for m in marker.finditer(line):
            pieces.append(("text", line[pos : m.start()]))
            pieces.append(("slot", m.group(1)))
            pos = m.end()
        pieces.append(("text", line[pos:]))
        for i, (kind, value) in enumerate(pieces):
            if kind == "slot":
                if col:
                    buf += SOFT
                out.append(bytes(buf))
                out.append(value)
                buf = bytearray(SOFT)
                col = 0
                continue
            raw = value.encode("utf-8")
            # a trailing space is only "at the end of a line" if no marker follows
            ends_line = i == len(pieces) - 1
            enc = _escape_bytes(raw)
            if ends_line and raw[-1:] in (b" ", b"\t"):
                enc = enc[:-1] + b"=%02X" % raw[-1]  # whitespace ending a line is lost in transit
            if col == 0 and raw.startswith(b"From "):
                enc = b"=46" + enc[1:]  # mbox readers mangle a line starting "From "
            col = _append_encoded(buf, col, enc)
    out.append(bytes(buf))
    return out


# A line whose only escapes are '=': printable ASCII, no leading '.' or "From ", no
# whitespace at the end (the general path below would do nothing else to it).
_PLAIN_LINE = re.compile(r"(?!\.|From )[!-~ \t]*(?<![ \t])")


_QP_UNSAFE = re.compile(
    r"[^!-<>-~ ]|^\.| $"
)  # needs escaping: non-printable, '=', a leading '.', a final space


_QP_TOKEN = re.compile(rb"=[0-9A-F]{2}|.", re.S)


def qp_value(value: str) -> bytes:
    """QP-encode one substituted value; lines of at most 75 so the soft break after it fits.

    No line of the result starts with a dot, so a prepared message never needs
    SMTP dot-stuffing (the transport can skip scanning it).
    """
    if value.isascii() and not _QP_UNSAFE.search(value):  # URLs and most names: no escapes needed
        raw = value.encode("ascii")
        if len(raw) <= QP_MAX - 1:
            return raw
        step = QP_MAX - 1
        if all(raw[i] != 0x2E for i in range(step, len(raw), step)):
            return SOFT.join([raw[i : i + step] for i in range(0, len(raw), step)])
        return _wrap([raw[i : i + 1] for i in range(len(raw))])
    enc = b2a_qp(value.encode("utf-8"))  # values are one line: its only line breaks are soft
    return _wrap(_QP_TOKEN.findall(enc.replace(b"=\n", b"")))


def _wrap(tokens: list[bytes]) -> bytes:
    out = bytearray()
    _append(out, 0, tokens)
    return bytes(out)


def _append(buf: bytearray, col: int, tokens: list[bytes]) -> int:
    """Add QP tokens (a byte or an ``=XX`` each) to ``buf`` at column ``col``; the new column.

    Lines stay within 75 characters (room for a soft break's ``=``) and none
    starts with a dot.
    """
    for tok in tokens:
        if col + len(tok) > QP_MAX - 1:
            buf += SOFT
            col = 0
        if col == 0 and tok == b".":
            tok = b"=2E"  # a line starting with '.' is special to SMTP
        buf += tok
        col += len(tok)
    return col


# Runs of bytes written as =XX once '=' is (whitespace too, but only last on a line: see above).
_ESCAPE = re.compile(rb"[^!-~ \t]+")


def _escape_bytes(raw: bytes) -> bytes:
    """``raw`` with '=' and every byte outside printable ASCII written as ``=XX``."""
    enc = raw.replace(b"=", b"=3D")  # most escapes in HTML: one C pass instead of a call each
    return _ESCAPE.sub(_escape_run, enc)


def _escape_run(m: re.Match[bytes]) -> bytes:
    return b"=" + hexlify(m[0], b"=").upper()  # a UTF-8 character (or a run of them) in one call


def _append_encoded(buf: bytearray, col: int, enc: bytes) -> int:
    """``_append`` for already encoded text: a slice per output line, never splitting an ``=XX``."""
    i, n = 0, len(enc)
    while i < n:
        if col == 0 and enc[i] == 0x2E:
            buf += b"=2E"  # a line starting with '.' is special to SMTP
            col, i = 3, i + 1
            continue
        end = min(n, i + QP_MAX - 1 - col)
        if end < n:  # a soft break follows: keep an escape whole
            if enc[end - 1] == 0x3D:
                end -= 1
            elif enc[end - 2] == 0x3D:
                end -= 2
        if end <= i:
            buf += SOFT
            col = 0
            continue
        buf += enc[i:end]
        col += end - i
        i = end
        if i < n:
            buf += SOFT
            col = 0
    return col
