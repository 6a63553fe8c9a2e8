"""The email inliner reuses what premailer derives from a stylesheet: the bytes of a fresh premailer."""

from __future__ import annotations

import logging

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
