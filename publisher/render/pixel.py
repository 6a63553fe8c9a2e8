"""Opens (``analytics.opens``, off by default): one 1x1 image at ``/o/<token>`` in the HTML part.

The token (``tokens.make_token`` with ``Purpose.OPEN``) seals the send's key
and nothing else, so the image URL is the same in every recipient's message:
it is added here, once, before ``prepare_message`` cuts the HTML into chunks,
and personalisation stays a join of byte chunks. AES-SIV without a nonce
makes it deterministic, so a re-render (a worker's fingerprint check, a
retry) gives the same bytes. The text part gets nothing: a plain-text reader
loads no image, and a URL there would only be noise.

What the image can tell is weak and says so in every report: Apple Mail
Privacy Protection fetches every image of every message through its proxy
whether or not anyone reads it, and Gmail fetches through its own proxy once
and caches, so opens are an estimate (``ops.opens`` classifies the loads).
"""

from __future__ import annotations

import html as html_lib
import re

from publisher.config import Settings
from publisher.tokens import Purpose, make_token

_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
# Sized by attribute and style (Outlook honours one, webmail the other); alt="" so no
# screen reader announces it and no client shows a broken-image box with text in it.
_PIXEL = (
    '<img src="{src}" width="1" height="1" alt="" border="0" '
    'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0">'
)


def pixel_url(settings: Settings, secret: bytes, send_key: str) -> str:
    """Where the send's image is served: ``{app url}/o/<token>``."""
    app_url = (settings.web.public_url or settings.site.url).rstrip("/")
    return f"{app_url}/o/{make_token(secret, Purpose.OPEN, send_key)}"


def with_pixel(settings: Settings, html: str, secret: bytes | None, send_key: str) -> str:
    """``html`` with the send's 1x1 image before ``</body>``; unchanged when opens are off or no secret.

    No secret means a message nobody counts (a test copy, the build's sample
    file): those get no image either.
    """
    if secret is None or not settings.analytics.opens:
        return html
    tag = _PIXEL.format(src=html_lib.escape(pixel_url(settings, secret, send_key), quote=True))
    ends = list(_BODY_END.finditer(html))
    if not ends:
        return html + tag
    at = ends[-1].start()
    return html[:at] + tag + html[at:]
