"""The email inliner reuses what premailer derives from a stylesheet: the bytes of a fresh premailer."""

from __future__ import annotations

import logging

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from premailer import Premailer

from publisher.render import inline

SHEET_A = """
body { margin: 0; color: #222 }
p { font-size: 16px; line-height: 1.5 }
a { color: #0645ad } a:hover { color: red }
@media (max-width: 600px) { p { font-size: 18px } }
:root { color-scheme: light dark }
"""
SHEET_B = "p { color: green !important } td { padding: 4px }"
# Only type, class and id selectors, descendant and child combinators: styles are reused by context.
SHEET_C = """
p { margin: 0 0 8px 0 } .box p { color: #333 } .box > p { font-size: 15px }
div.box { padding: 4px } #lead { font-weight: bold } .box .note, td p { color: red !important }
ul li { margin: 0 } .box * { line-height: 1.4 } td { padding: 2px }
@media (max-width: 600px) { .box { padding: 0 !important } }
"""


def doc(sheet: str, body: str) -> str:
    return f"<html><head><style>{sheet}</style></head><body>{body}</body></html>"


def stock(html: str) -> tuple[str, list[str]]:
    """What inline_css did before it kept anything between calls: a premailer made afresh."""
    made = Premailer(
        html,
        strip_important=False,
        allow_network=False,
        allow_loading_external_files=False,
        disable_basic_attributes=inline.BASIC_ATTRIBUTES,
        disable_link_rewrites=True,
        align_floating_images=False,
        remove_classes=False,
        keep_style_tags=False,
        cssutils_logging_level=logging.CRITICAL,
    ).transform(pretty_print=False)
    return inline._keep_media_only(made)


def test_a_shared_stylesheet_inlines_each_body_as_a_fresh_premailer_would() -> None:
    bodies = [
        '<p>One <a href="https://x.example">link</a></p>',
        '<table><tr><td><p style="margin:0">Two</p></td></tr></table>',
        "<p>Three</p><p>and four</p>",
    ]
    docs = [doc(sheet, body) for body in bodies for sheet in (SHEET_A, SHEET_B)]
    for html in docs + docs:  # the second round is served from the kept rules
        assert inline.inline_css(html) == stock(html)
    assert {key[0] for key in inline._SHEETS} >= {SHEET_A, SHEET_B}


def test_elements_in_contexts_seen_before_get_the_styles_premailer_gave() -> None:
    bodies = [
        '<div class="box"><p>One</p><div><p class="note">deep</p></div></div>',
        '<div class="box"><p id="lead" style="color:blue">Two</p><ul><li>a</li><li>b</li></ul></div>',
        '<table><tr><td><p style="margin:0">Three</p></td></tr></table><p class="box">alone</p>',
        '<div class="box"><p>Four</p></div><div class="box"><p class="note">five</p></div>',
    ]
    docs = [doc(SHEET_C, body) for body in bodies]
    for html in docs + docs + docs[::-1]:  # later rounds take the styles learned from earlier ones
        assert inline.inline_css(html) == stock(html)
    seen = next(v for k, v in inline._SEEN.items() if any(sheet[0] == SHEET_C for sheet in k))
    assert seen.attributes == ("class", "id")
    assert seen.styles  # learned, so reused


def test_a_sheet_whose_matches_depend_on_siblings_is_never_reused() -> None:
    sheet = "li:first-child { color: red } li { margin: 0 }"
    for body in ["<ul><li>one</li><li>two</li></ul>", "<ul><li>one</li></ul>"] * 2:
        html = doc(sheet, body)
        assert inline.inline_css(html) == stock(html)
    seen = next(v for k, v in inline._SEEN.items() if any(s[0] == sheet for s in k))
    assert seen.attributes is None
    assert not seen.styles


_TAGS = st.sampled_from(["div", "p", "td", "li", "span"])
_ATTRS = st.sampled_from(
    ["", ' class="box"', ' class="note"', ' id="lead"', ' style="color:blue"', ' class="box note"']
)


def _element(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda t, a, c: f"<{t}{a}>x{c}</{t}>", _TAGS, _ATTRS, children)


_BODIES = st.lists(
    st.recursive(st.just(""), lambda c: st.lists(_element(c), max_size=3).map("".join), max_leaves=8)
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies=_BODIES)
def test_reused_styles_are_premailers_for_any_nesting(bodies: list[str]) -> None:
    for body in bodies + bodies:
        html = doc(SHEET_C, body)
        assert inline.inline_css(html) == stock(html)
