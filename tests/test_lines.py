"""publisher.lines.one_line: whatever a report or a webhook says, one storable, loggable line."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from publisher.lines import one_line, visible


@given(text=st.text(max_size=3000), limit=st.integers(min_value=1, max_value=600))
def test_one_line_is_short_printable_and_storable(text: str, limit: int) -> None:
    line = one_line(text, limit)
    assert len(line) <= limit and line == line.strip()
    assert "  " not in line
    for ch in line:
        assert unicodedata.category(ch) not in ("Cc", "Cs", "Zl", "Zp"), repr(ch)
        assert not ch.isspace() or ch == " ", repr(ch)
        assert ch not in "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
    line.encode("utf-8")  # no lone surrogate: any UTF-8 column takes it


def test_one_line_keeps_ordinary_text() -> None:
    assert (
        one_line("550 5.1.1 <ana@example.org>: User unknown", 500)
        == "550 5.1.1 <ana@example.org>: User unknown"
    )
    assert one_line("a\r\nb\x00c\u2028d\u202ee", 500) == "a b c d e"
    assert one_line("Zoë 李 مريم", 500) == "Zoë 李 مريم"


def test_visible_shows_controls_and_bidi_as_replacement_and_keeps_spacing() -> None:
    assert visible("no send \x1b[31mred\u202e  x") == "no send \ufffd[31mred\ufffd  x"
    assert visible("plain  text") == "plain  text"
