"""Click counting: rewrite a message's links to ``/r/<token>`` once per send.

The token (``tokens.click_token``) names the send and the link's number, not
the reader, so the rewritten HTML is the same for every recipient: it is
rewritten here, before ``prepare_message`` cuts it into chunks, and
personalisation stays a join of byte chunks (no parse per message). With
``analytics.per_subscriber`` each rewritten link also ends in ``.`` and a
``reader_slot`` marker (``/r/<token>.<reader>``): one slot, filled once per
recipient with ``tokens.reader_token``, so it is still a join of chunks.

Only ``http(s)`` links of ``<a href>`` in the HTML part are rewritten. Never:
slots (the unsubscribe and preferences links are per-recipient slots), links
to the app's own unsubscribe, preferences or confirm pages, ``mailto:``,
``tel:`` or in-page anchors. The text part keeps the original URLs: a reader
of plain text sees where a link goes. Numbers are given in order of first
appearance and one URL keeps one number, so "top links" counts a URL once.
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from publisher.tokens import MAX_LINKS, click_token

# lxml (premailer) writes every attribute double-quoted and escaped: a regex is exact here.
_A_HREF = re.compile(r'(<a\b[^>]*?\shref=")([^"]*)(")', re.IGNORECASE)
_NEVER_PATHS = ("/unsubscribe/", "/preferences/", "/confirm/", "/r/", "/privacy")


@dataclass(frozen=True)
class ClickLinks:
    """What a send's message links to: ``urls[n - 1]`` is link ``n`` (what the send records)."""

    send_key: str
    urls: tuple[str, ...]


def rewritable(url: str, app_url: str, marker: str) -> bool:
    """Whether a link goes through ``/r/``: an http(s) link that is neither a slot nor the app's own page."""
    if marker in url:
        return False
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return False
    if url.startswith(app_url + "/"):
        rest = "/" + url[len(app_url) + 1 :]
        if rest.startswith(_NEVER_PATHS):
            return False
    return True


def rewrite_links(
    html: str,
    *,
    secret: bytes,
    send_key: str,
    app_url: str,
    marker: str,
    reader_slot: str = "",
    numbers: dict[str, int] | None = None,
) -> tuple[str, ClickLinks]:
    """The HTML with its links through ``{app_url}/r/<token>``, and the links it numbered.

    ``marker`` is the slot marker prefix: a link holding one is filled per
    recipient and left alone. ``reader_slot`` (per-subscriber counting) is the
    marker appended to every rewritten link as ``.<reader_slot>``. ``numbers``
    is a numbering to follow and extend in place (URL -> 1..k, in number
    order): a digest's variants share their send's, so one URL keeps one
    number in every variant.
    """
    tail = f".{reader_slot}" if reader_slot else ""
    app_url = app_url.rstrip("/")
    numbers = {} if numbers is None else numbers

    def swap(m: re.Match[str]) -> str:
        url = html_lib.unescape(m.group(2)).strip()
        if not rewritable(url, app_url, marker):
            return m.group(0)
        n = numbers.get(url)
        if n is None:
            if len(numbers) >= MAX_LINKS:
                return m.group(0)
            n = numbers[url] = len(numbers) + 1
        return f"{m.group(1)}{app_url}/r/{click_token(secret, send_key, n)}{tail}{m.group(3)}"

    out = _A_HREF.sub(swap, html)
    return out, ClickLinks(send_key, tuple(numbers))


def counting_note(clicks: bool, per_subscriber: bool, opens: bool) -> str:
    """What the mail footer says is counted (``analytics``): the same words as ``/privacy``'s summary."""
    if clicks and per_subscriber:
        said = (
            "We record which links in our issues you click, to know whether you still read us; "
            "after a long silence we ask you once before pausing your mail."
        )
    elif clicks:
        said = (
            "We count clicks on the links in our issues per link, never per reader: "
            "nothing records that you clicked."
        )
    else:
        said = "We count no clicks: the links in our issues go straight to where they point."
    if opens:
        said += " We estimate how many open each issue with a tiny image, per issue, not per reader."
    return said
