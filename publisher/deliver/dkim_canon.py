"""Relaxed DKIM canonicalisation (RFC 6376 §3.4.2, §3.4.4) of SMTP-ready bytes.

Hand-written because dkimpy's helpers cost as much as the RSA signature they
feed. Measured on the sample issue (12.2 KB, an 11.6 KB body with runs of
spaces from the HTML's indentation): ``dkim.canonicalization.Relaxed.
canonicalize_body`` takes ~290 us a message (three regex passes, one match per
space) and ``dkim.rfc822_parse`` another ~120 us (it splits every body line),
against ~285 us for the 2048-bit RSA signature in OpenSSL. Here the split is
one ``bytes.find``, only the signed fields are canonicalised, and the body goes
through one literal-led regex and a few ``bytes.replace`` passes (~35 us,
SHA-256 included). tests/test_dkim.py holds these functions against dkimpy's
verifier and its canonicaliser.
"""

from __future__ import annotations

import re

# A field: its name (printable ASCII but colon), the colon, and the value with any folded lines.
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", re.MULTILINE)
_SPACES = re.compile(rb"  +")


def split_message(data: bytes) -> tuple[bytes, bytes]:
    """(the header block, its last CRLF included; the body) of CRLF message bytes."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return data, b""
    return data[: end + 2], data[end + 4 :]


def header_fields(block: bytes) -> dict[bytes, bytes]:
    """Lower-cased name -> raw value of a header block's fields.

    A name that occurs twice keeps its last (bottom-most) value: the instance a
    verifier takes for a name listed once in ``h=``.
    """
    return {m.group(1).lower(): m.group(2) for m in _FIELD.finditer(block)}


def squeeze(text: bytes) -> bytes:
    """Every run of spaces and tabs as one space.

    Tabs first become spaces (one memchr pass), so the regex starts with a
    two-space literal and its search skips the single spaces in C: ~17 us on
    the sample body, against ~190 us for ``[ \\t]{2,}|\\t`` and ~55 us for
    ``bytes.replace`` until no two spaces remain.
    """
    if b"\t" in text:
        text = text.replace(b"\t", b" ")
    if b"  " in text:
        text = _SPACES.sub(b" ", text)
    return text


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """One field, relaxed: lower-case name, value unfolded, WSP squeezed and trimmed, CRLF."""
    return name.lower() + b":" + squeeze(value.replace(b"\r\n", b"")).strip(b" \t") + b"\r\n"


def relaxed_body(body: bytes) -> bytes:
    """The body, relaxed: WSP squeezed, none at line ends, no empty lines at the end."""
    body = squeeze(body)
    if b" \r\n" in body:
        body = body.replace(b" \r\n", b"\r\n")
    end = len(body)
    while body.endswith(b"\r\n", 0, end):
        end -= 2
    if end == 0:
        return b""
    return body if end == len(body) - 2 else body[:end] + b"\r\n"
