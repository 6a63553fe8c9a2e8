"""CSS inlining with premailer, configured for email and checked afterwards.

premailer's defaults are wrong for us (design §10): it strips ``!important``
(then ``@media`` rules lose to the inline styles and nothing reflows on a
phone), fetches remote CSS, and invents ``bgcolor``/``align``/``width``/
``height="auto"`` attributes from the CSS. Whatever it leaves in ``<style>``
apart from ``@media``, ``:root`` and Outlook.com's ``[data-ogsc]`` rules
(pseudo-classes such as ``a:hover``) most clients ignore, so it is dropped to
keep the message small and predictable.

Every issue email carries the same stylesheet, and premailer re-reads it on each call
(cssutils serialising every property of every rule again: ~90 % of its ~70 ms here),
so ``_SharedSheet`` keeps what premailer derives from one stylesheet text (its inlinable
rules and the text of what stays in ``<style>``) and reuses it: only the document is
parsed, matched and merged per email, with premailer's own code (the same bytes out).

Matching then took ~1 ms of the ~1.5 ms left per email (premailer runs one XPath per rule
over the whole document), though an issue's layout, and most elements of its body, sit in
contexts every other issue has too. ``_Seen`` keeps the ``style`` premailer gave each
element context and, for an email whose every context it has seen, lets premailer handle
only the ``<style>`` elements and sets the kept styles itself: 0.3 ms per email instead of
1.5 (``bench/build.py``'s issues; ``tests/test_build_inline.py`` compares every path with
a fresh premailer).
"""

from __future__ import annotations

import itertools
import logging
import re
from functools import lru_cache
from typing import Any
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


class _Leftover(str):
    """The ``<style>`` text premailer made from a stylesheet's rules it could not inline."""


# (stylesheet text, its index in the document) -> (inlinable rules, [leftover text] or [])
_SHEETS: dict[tuple[str, int], tuple[list[Any], list[_Leftover]]] = {}
_SHEETS_MAX = 64  # distinct stylesheets remembered (a build has one or two)


class _SharedSheet(Premailer):  # type: ignore[misc]  # premailer has no type hints
    """Premailer that derives rules from a stylesheet text once per process, not once per email.

    The rules are plain tuples of strings (specificity, selector, declarations) and the
    leftover text is what ``_css_rules_to_string`` returns for them: both depend only on
    the stylesheet text, its index and the options, which are fixed in ``inline_css``.
    With ``match`` off it handles the ``<style>`` elements only (no rule to match: the
    styles come from ``_Seen``); ``selectors`` lists the selectors of the rules it saw.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.match = True
        self.selectors: list[str] = []

    def _parse_style_rules(self, css_body: str, ruleset_index: int) -> tuple[list[Any], list[Any]]:
        key = (css_body, ruleset_index)
        hit = _SHEETS.get(key)
        if hit is None:
            rules, leftover = super()._parse_style_rules(css_body, ruleset_index)
            kept = [_Leftover(super()._css_rules_to_string(leftover))] if leftover else []
            hit = (rules, kept)
            if len(_SHEETS) < _SHEETS_MAX:
                _SHEETS[key] = hit
        self.selectors.extend(rule[1] for rule in hit[0])
        return list(hit[0]) if self.match else [], list(hit[1])

    def _css_rules_to_string(self, rules: list[Any]) -> str:
        if len(rules) == 1 and isinstance(rules[0], _Leftover):
            return str(rules[0])
        return super()._css_rules_to_string(rules)  # type: ignore[no-any-return]  # untyped base


class _Seen:
    """The style premailer gave each element context, for one set of ``<style>`` elements.

    With selectors made of type, class, id and universal selectors joined by descendant
    or child combinators, which rules match an element depends only on the tag and the
    attributes they read (``attributes``) of the element and its ancestors; premailer's
    merge adds the element's own ``style``. So two elements with the same context get the
    same ``style`` from premailer, and most of an issue email (the layout, and the ``p``,
    ``li``, ``a`` of a body) has contexts seen before: those emails skip premailer's
    matching (~1 ms of its ~1.5 ms here) and take the styles it gave before. An email
    with a context not seen yet goes through premailer whole, and its contexts are kept.
    """

    def __init__(self, attributes: tuple[str, ...] | None) -> None:
        self.attributes = attributes  # None: a selector reads more (siblings, pseudo-classes): never reuse
        self.chains: dict[tuple[object, ...], int] = {}  # (parent's chain, tag, attributes) -> its id
        self.styles: dict[tuple[int, str | None], str | None] = {}  # (chain, own style) -> style after
        self._ids = itertools.count()

    def contexts(self, page: Any) -> list[tuple[Any, tuple[int, str | None]]] | None:
        """Each element of ``page`` with its context, in document order; None: not to be reused."""
        attributes = self.attributes
        if attributes is None or len(self.chains) > _CONTEXTS_MAX:
            return None
        out: list[tuple[Any, tuple[int, str | None]]] = []
        chains, ids = self.chains, self._ids
        stack: list[tuple[Any, int]] = [(page, -1)]
        while stack:
            el, parent = stack.pop()
            sig = (parent, el.tag, *[el.get(name) for name in attributes])
            chain = chains.get(sig)
            if chain is None:
                chain = chains.setdefault(sig, next(ids))
            out.append((el, (chain, el.get("style"))))
            stack.extend((child, chain) for child in reversed(el) if isinstance(child.tag, str))
        return out

    def knows(self, contexts: list[tuple[Any, tuple[int, str | None]]]) -> bool:
        styles = self.styles
        return all(key in styles for _, key in contexts)

    def learn(self, contexts: list[tuple[Any, tuple[int, str | None]]]) -> None:
        for el, key in contexts:
            self.styles[key] = el.get("style")

    def restore(self, contexts: list[tuple[Any, tuple[int, str | None]]]) -> None:
        styles = self.styles
        for el, key in contexts:
            style = styles[key]
            if style is not None:
                el.set("style", style)


def _context_attributes(selectors: list[str]) -> tuple[str, ...] | None:
    """The attributes matching ``selectors`` reads beside the tag; None if it reads more than that."""
    if not all(_ANCESTOR_ONLY.fullmatch(selector) for selector in selectors):
        return None
    text = "".join(selectors)
    return tuple(name for name, sign in (("class", "."), ("id", "#")) if sign in text)


# (the <style> elements' text and attributes) -> styles by element context
_SEEN: dict[tuple[tuple[str | None, tuple[tuple[str, str], ...]], ...], _Seen] = {}
_CONTEXTS_MAX = 50_000  # element contexts kept per set of stylesheets (the bench's 200 first issues: 35)
# Selectors whose matches depend on nothing but tags, classes and ids of an element and its ancestors.
_ANCESTOR_ONLY = re.compile(r"[A-Za-z0-9_\-.#*>\s]+")


def inline_css(html: str) -> tuple[str, list[str]]:
    """Inline the document's ``<style>`` CSS; keep only ``@media`` rules (``!important``) in ``<style>``.

    Returns the HTML and notes about rules that could not be kept.
    """
    stripped = html.strip()  # what premailer parses, and how (``transform`` on a string)
    tree = etree.fromstring(stripped, etree.HTMLParser()).getroottree()
    page = tree.getroot()
    sheets = tuple((el.text, tuple(el.attrib.items())) for el in page.iter("style"))
    seen = _SEEN.get(sheets)
    contexts = seen.contexts(page) if seen is not None else None
    reuse = contexts is not None and seen is not None and seen.knows(contexts)
    premailer = _SharedSheet(
        None,
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
    premailer.match = not reuse
    premailer.transform(page)  # in place: <style> elements, and every element's style unless reused
    if seen is None:
        if len(_SEEN) < _SHEETS_MAX:
            _SEEN[sheets] = _Seen(_context_attributes(premailer.selectors))
    elif contexts is not None:
        if reuse:
            seen.restore(contexts)
        else:
            seen.learn(contexts)
    root = tree if stripped.startswith(tree.docinfo.doctype) else page
    return _keep_media_only(etree.tostring(root, method="html", encoding="utf-8").decode("utf-8"))


def _keep_media_only(html: str) -> tuple[str, list[str]]:
    """Drop non-kept rules premailer left in <style> (it keeps pseudo-class rules).

    What is kept from every ``<style>`` goes into the first of them, so the message has one.
    """
    notes: list[str] = []
    kept_all: list[str] = []
    first = True
    for open_tag, css, close_tag in _STYLE_ELEMENT.findall(html):
        kept, dropped = _split_media(css)
        if dropped:
            notes.append("dropped CSS rules that cannot be inlined: " + "; ".join(dropped))
        if kept.strip():
            kept_all.append(kept)
        html = html.replace(f"{open_tag}{css}{close_tag}", _STYLE_SLOT if first else "", 1)
        first = False
    return html.replace(_STYLE_SLOT, f"<style>{chr(10).join(kept_all)}</style>" if kept_all else "", 1), notes


# A <style> element: what ``(<style[^>]*>)(.*?)(</style>)`` matches, with the body's loop
# unrolled (runs of [^<] in one step): ~0.07 ms a message less than the lazy ``.*?``.
_STYLE_ELEMENT = re.compile(r"(<style[^>]*>)([^<]*(?:<(?!/style>)[^<]*)*)(</style>)", re.S | re.I)


@lru_cache(maxsize=16)
def _split_media(css: str) -> tuple[str, tuple[str, ...]]:
    """Top-level CSS blocks: (the kept ones joined, selectors of the others); the same for every email."""
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
    return "\n".join(kept), tuple(dropped)


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
