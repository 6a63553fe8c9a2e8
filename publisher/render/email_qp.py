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
    pos = 0
    for m in marker.finditer(text):
        if _append_text(buf, text[pos : m.start()], last=False):
            buf += SOFT
        out.append(bytes(buf))
        out.append(m.group(1))
        buf = bytearray(SOFT)
        pos = m.end()
    _append_text(buf, text[pos:], last=True)
    out.append(bytes(buf))
    return out


def _append_text(buf: bytearray, text: str, *, last: bool) -> int:
    """Encode the text between two markers (or the text's ends) onto ``buf``; the column it ends at.

    Whole lines are escaped and joined in a few C passes over the text, and only
    a line to fold (over 75 characters, or starting with a dot) is taken a slice
    at a time: a Python step per line was a fifth of an issue email's CPU. The
    last partial line (a marker follows it) can end with a space, which is not
    at the end of a line; at the end of the text (``last``) it is.
    """
    enc = text.encode("utf-8").replace(b"=", b"=3D")
    if enc.startswith(b"From ") or b"\nFrom " in enc:
        enc = _FROM.sub(b"=46rom ", enc)  # mbox readers mangle a line starting "From "
    if b" \n" in enc or b"\t\n" in enc or (last and enc[-1:] in (b" ", b"\t")):
        enc = (_END_SPACE_LAST if last else _END_SPACE).sub(_escape_space, enc)
    if enc.translate(None, _NOT_CONTROL):  # an ASCII control character (rare): escape all at once
        enc = _ESCAPE.sub(_escape_run, enc)
    *lines, tail = enc.split(b"\n")
    for line in lines:
        if not line.isascii():
            line = _ESCAPE.sub(_escape_run, line)
        buf += line if len(line) < QP_MAX and line[:1] != b"." else _fold(line)
        buf += CRLF
    return _append_encoded(buf, 0, tail if tail.isascii() else _ESCAPE.sub(_escape_run, tail))


# Bytes but the ASCII controls (tab and line feed are kept); bytes to write as =XX ('=' is
# already =3D); whitespace ending a line (lost in transit otherwise); a line starting "From ".
_NOT_CONTROL = bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100)) + b"\t\n"
_ESCAPE = re.compile(rb"[^!-~ \t\n]+")
_END_SPACE = re.compile(rb"[ \t](?=\n)")
_END_SPACE_LAST = re.compile(rb"[ \t](?=\n)|[ \t]\Z")
_FROM = re.compile(rb"^From ", re.M)


def _escape_space(m: re.Match[bytes]) -> bytes:
    return b"=%02X" % m[0][0]


def _fold(line: bytes) -> bytes:
    """A line over 75 characters, or starting with a dot, folded with soft breaks.

    ``_CHUNK`` cuts the same pieces as ``_append_encoded`` (at most 75 characters, no
    ``=XX`` split) in one C call; a piece starting with a dot needs its loop.
    """
    chunks = _CHUNK.findall(line)
    if any(chunk[:1] == b"." for chunk in chunks):
        out = bytearray()
        _append_encoded(out, 0, line)
        return bytes(out)
    return SOFT.join(chunks)


# Up to 75 characters not ending inside an escape: neither of the last two is an escape's '='.
_CHUNK = re.compile(rb".{1,%d}(?<!=)(?<!=.)" % (QP_MAX - 1), re.S)


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
