"""``inline._STYLE_ELEMENT`` finds what the lazy ``(<style[^>]*>)(.*?)(</style>)`` found.

The pattern picks the ``<style>`` elements out of every inlined message; its
body loop is unrolled for speed, and must match the same spans (case, nesting,
an element left open, a ``</style`` that does not close it).
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.render import inline

LAZY = re.compile(r"(<style[^>]*>)(.*?)(</style>)", re.S | re.I)
_PIECES = st.sampled_from(
    ["<style>", "<STYLE media=x>", "<styles>", "</style>", "</STYLE>", "</style", "</styl>", "<", ">",
     "a{b:c}", "\n", "é", "<!-- <style> -->", "<p>", "ſ", "<ſtyle>", "</ſtyle>", "\x00"]
)  # fmt: skip


@settings(max_examples=1000, deadline=None)
@given(st.lists(_PIECES, max_size=30))
def test_the_same_style_elements_are_found(parts: list[str]) -> None:
    html = "".join(parts)
    assert inline._STYLE_ELEMENT.findall(html) == LAZY.findall(html)


def test_an_unclosed_style_is_not_an_element() -> None:
    html = "<style>" + "a<b " * 5_000  # never closed: nothing found, as before
    assert inline._STYLE_ELEMENT.findall(html) == LAZY.findall(html) == []
