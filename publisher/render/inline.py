"""CSS inlining with premailer, configured for email and checked afterwards.

premailer's defaults are wrong for us (design §10): it strips ``!important``
(then ``@media`` rules lose to the inline styles and nothing reflows on a
phone), fetches remote CSS, and invents ``bgcolor``/``align``/``width``/
``height="auto"`` attributes from the CSS. Whatever it leaves in ``<style>``
apart from ``@media``, ``:root`` and Outlook.com's ``[data-ogsc]`` rules
(pseudo-classes such as ``a:hover``) most clients ignore, so it is dropped to
keep the message small and predictable.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urljoin

from lxml import etree
from lxml import html as lxml_html
from premailer import Premailer

# Attributes premailer would otherwise derive from CSS (``_style_to_basic_html_attributes``).
BASIC_ATTRIBUTES = ["align", "valign", "bgcolor", "width", "height"]
# Rules kept in <style>: @media (phones, dark mode; !important beats the inline styles), the
# document's colour schemes (Apple Mail) and Outlook.com's dark-mode hooks (it marks what it recoloured).
KEPT_RULES = ("@media", ":root", "[data-ogsc]", "[data-ogsb]")
_STYLE_SLOT = "\x00style\x00"  # where the one <style> goes (NUL never occurs in rendered HTML)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def inline_css(html: str) -> tuple[str, list[str]]:
    """Inline the document's ``<style>`` CSS; keep only ``@media`` rules (``!important``) in ``<style>``.

    Returns the HTML and notes about rules that could not be kept.
    """
    premailer = Premailer(
        html,
        strip_important=False,
        allow_network=False,
        allow_loading_external_files=False,
        disable_basic_attributes=BASIC_ATTRIBUTES,
        disable_link_rewrites=True,  # links are made absolute before, and markers must stay intact
        align_floating_images=False,
        remove_classes=False,
        keep_style_tags=False,
        cssutils_logging_level=logging.CRITICAL,  # vendor properties (mso-*) are expected, not errors
    )
    out = premailer.transform(pretty_print=False)
    return _keep_media_only(out)


def _keep_media_only(html: str) -> tuple[str, list[str]]:
    """Drop non-kept rules premailer left in <style> (it keeps pseudo-class rules).

    What is kept from every ``<style>`` goes into the first of them, so the message has one.
    """
    notes: list[str] = []
    kept_all: list[str] = []
    first = True
    for open_tag, css, close_tag in re.findall(r"(<style[^>]*>)(.*?)(</style>)", html, flags=re.S | re.I):
        kept, dropped = _split_media(css)
        if dropped:
            notes.append("dropped CSS rules that cannot be inlined: " + "; ".join(dropped))
        if kept.strip():
            kept_all.append(kept)
        html = html.replace(f"{open_tag}{css}{close_tag}", _STYLE_SLOT if first else "", 1)
        first = False
    return html.replace(_STYLE_SLOT, f"<style>{chr(10).join(kept_all)}</style>" if kept_all else "", 1), notes


def _split_media(css: str) -> tuple[str, list[str]]:
    """Top-level CSS blocks: (the kept ones joined, selectors of the others)."""
    kept: list[str] = []
    dropped: list[str] = []
    i, n = 0, len(css)
    while i < n:
        start = css.find("{", i)
        if start < 0:
            break
        depth, j = 0, start
        while j < n:
            if css[j] == "{":
                depth += 1
            elif css[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        prelude = css[i:start].strip()
        block = css[i : j + 1].strip()
        if prelude.lower().startswith(KEPT_RULES):
            kept.append(block)
        elif prelude:
            dropped.append(prelude)
        i = j + 1
    return "\n".join(kept), dropped


def absolutise(fragment: str, base_url: str, id_prefix: str = "") -> str:
    """Make relative ``href``/``src`` absolute against ``base_url``; optionally prefix ids.

    Mail has no page to be relative to. Fragment links (footnotes) stay
    in-document, with ``id_prefix`` keeping several articles' ``#fn1`` apart.
    """
    if not fragment.strip():
        return fragment
    root = lxml_html.fragment_fromstring(fragment, create_parent="div")
    base = base_url.rstrip("/") + "/"
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        for attr in ("href", "src"):
            url = el.get(attr)
            if url is None:
                continue
            url = url.strip()
            if url.startswith("#"):
                if id_prefix:
                    el.set(attr, "#" + id_prefix + url[1:])
                continue
            if url.startswith("//"):
                el.set(attr, "https:" + url)
            elif not _SCHEME.match(url):
                el.set(attr, urljoin(base, url))
        if id_prefix and el.get("id"):
            el.set("id", id_prefix + el.get("id"))
    return _escape_text(root.text or "") + "".join(
        etree.tostring(child, encoding="unicode", method="html") for child in root
    )


def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
