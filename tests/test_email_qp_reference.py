"""The one-pass template encoder gives the bytes the line-at-a-time encoder gave.

``qp_template`` escapes and joins whole runs of lines in C passes and folds
long lines with one regex; ``_reference`` below is the encoder it replaced (a
Python step per line and per output line), kept here as the specification:
every prepared message, and so every golden file, keeps its bytes.
"""

from __future__ import annotations

import re
from binascii import hexlify

from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.render.email_mime import _MARKER
from publisher.render.email_qp import CRLF, QP_MAX, SOFT, qp_template

MARKER = re.compile(r"\x00slot:([a-z_]+)\x00")
_PLAIN_LINE = re.compile(r"(?!\.|From )[!-~ \t]*(?<![ \t])")
_ESCAPE = re.compile(rb"[^!-~ \t]+")


def _reference(text: str, marker: re.Pattern[str]) -> list[bytes | str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    out: list[bytes | str] = []
    buf = bytearray()
    col = 0
    for n, line in enumerate(text.split("\n")):
        if n:
            buf += CRLF
            col = 0
        if _PLAIN_LINE.fullmatch(line) and not marker.search(line):
            enc = line.encode("ascii").replace(b"=", b"=3D")
            if len(enc) < QP_MAX:
                buf += enc
            else:
                _append(buf, 0, enc)
            continue
        pos = 0
        pieces: list[tuple[str, str]] = []
        for m in marker.finditer(line):
            pieces += [("text", line[pos : m.start()]), ("slot", m.group(1))]
            pos = m.end()
        pieces.append(("text", line[pos:]))
        for i, (kind, value) in enumerate(pieces):
            if kind == "slot":
                if col:
                    buf += SOFT
                out += [bytes(buf), value]
                buf, col = bytearray(SOFT), 0
                continue
            raw = value.encode("utf-8")
            enc = _ESCAPE.sub(lambda m: b"=" + hexlify(m[0], b"=").upper(), raw.replace(b"=", b"=3D"))
            if i == len(pieces) - 1 and raw[-1:] in (b" ", b"\t"):
                enc = enc[:-1] + b"=%02X" % raw[-1]
            if col == 0 and raw.startswith(b"From "):
                enc = b"=46" + enc[1:]
            col = _append(buf, col, enc)
    out.append(bytes(buf))
    return out


def _append(buf: bytearray, col: int, enc: bytes) -> int:
    i, n = 0, len(enc)
    while i < n:
        if col == 0 and enc[i] == 0x2E:
            buf += b"=2E"
            col, i = 3, i + 1
            continue
        end = min(n, i + QP_MAX - 1 - col)
        if end < n:
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


_PIECES = st.sampled_from(
    [
        "a",
        " ",
        "\t",
        ".",
        "=",
        "é",
        "€",
        "From ",
        "From",
        "\n",
        "\r\n",
        "\r",
        "\x00",
        "\x01",
        "\x7f",
        "\u202e",
        "\u200c\xa0",
        "=?utf-8?q?=41?=",
        "x" * 73,
        "y" * 74,
        "z" * 75,
        "w" * 76,
        " \n",
        "\t\n",
        ".x",
        "XPSLOTnameX",
        "XPSLOTunsubscribe_urlX",
        "\x00slot:name\x00",
    ]
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(_PIECES, max_size=40))
def test_the_bytes_are_the_line_at_a_time_encoders(parts: list[str]) -> None:
    text = "".join(parts)
    for marker in (MARKER, _MARKER):
        assert qp_template(text, marker) == _reference(text, marker)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="a=é.€ \t-", min_size=60, max_size=400))
def test_long_lines_fold_where_they_did(line: str) -> None:
    """Escapes at every offset around the 75th column, dots after a fold."""
    assert qp_template(line, MARKER) == _reference(line, MARKER)
    assert qp_template(line + "\nnext", MARKER) == _reference(line + "\nnext", MARKER)


def test_a_ten_kilobyte_line_and_hostile_text() -> None:
    for text in ["é=" * 5_000, "." + "a" * 10_000, "From x\r\n\x00\u202e" * 300]:
        assert qp_template(text, _MARKER) == _reference(text, _MARKER)
