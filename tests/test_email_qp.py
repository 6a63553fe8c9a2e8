"""Quoted-printable of prepared templates: decodes to the text, lines within limits, markers whole."""

from __future__ import annotations

import re
from binascii import a2b_qp

from hypothesis import given
from hypothesis import strategies as st

from publisher.render.email_qp import QP_MAX, qp_template

MARKER = re.compile(r"\x00slot:([a-z_]+)\x00")
PIECES = st.sampled_from(
    ["a", " ", "\t", ".", "=", "é", "€", "From ", "\n", "\r\n", "x" * 80, "y" * 74, ".x", "\x01", "\u202e"]
)
SLOTS = st.sampled_from(["\x00slot:name\x00", "\x00slot:unsubscribe_url\x00"])


@given(st.lists(st.one_of(PIECES, SLOTS), max_size=40))
def test_a_template_decodes_to_its_text_with_every_slot_in_place(parts: list[str]) -> None:
    text = "".join(parts)
    out = qp_template(text, MARKER)
    chunks = [c for c in out if isinstance(c, bytes)]
    slots = [c for c in out if isinstance(c, str)]
    assert slots == MARKER.findall(text.replace("\r\n", "\n"))
    joined = b"".join(c if isinstance(c, bytes) else b"<%s>" % c.encode() for c in out)
    for line in joined.split(b"\r\n"):
        plain = re.sub(rb"<[a-z_]+>", b"", line)
        assert len(plain) <= QP_MAX and not plain.startswith(b".")
        assert not plain.endswith((b" ", b"\t"))
    decoded = a2b_qp(b"".join(chunks).replace(b"\r\n", b"\n")).decode("utf-8")
    assert decoded == MARKER.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def test_lines_are_encoded_byte_for_byte_as_before() -> None:
    """Pinned bytes (from the encoder before the one-pass escapes): the prepared messages must not change."""
    text = "\n".join(
        [
            "a=b " * 25,
            ".dot=x",
            "From me=you",
            "trail= ",
            "é€ run=",
            "x" * 74 + "=",
            "\u200c\xa0" * 3 + "=",
            "plain line",
        ]
    )
    assert qp_template(text + "\n\x00slot:name\x00 = x", MARKER) == [
        b"a=3Db a=3Db a=3Db a=3Db a=3Db a=3Db a=3Db a=3Db a=3Db a=3Db a=3Db a=3Db a=\r\n"
        b"=3Db a=3Db a=3Db a=3Db a=3Db a=3Db a=3Db a=3Db a=3Db a=3Db a=3Db a=3Db a=3D=\r\n"
        b"b=20\r\n=2Edot=3Dx\r\n=46rom me=3Dyou\r\ntrail=3D=20\r\n=C3=A9=E2=82=AC run=3D\r\n"
        + b"x" * 74
        + b"=\r\n=3D\r\n=E2=80=8C=C2=A0=E2=80=8C=C2=A0=E2=80=8C=C2=A0=3D\r\nplain line\r\n",
        "name",
        b"=\r\n =3D x",
    ]
