"""The welcome mail (``sequences/welcome/01-*.md``): rendered once, personalised per subscriber.

Made the way issues and digests are (``email_frame``'s frame and render step,
``email_mime``'s assembly and per-recipient fill), only with templates
``welcome.html`` and ``welcome.txt`` and one Markdown body. The body's
``{{ name }}``-style variables become the same slot markers the templates
use, so the name and the links are filled in, encoded and escaped by the one
personalisation step every list mail goes through (a hostile name cannot
reach a header or the HTML raw).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urljoin

from markupsafe import Markup

from publisher.config import Settings
from publisher.errors import relpath
from publisher.render.email_frame import RenderedEmail, Templates, frame_context, reject_marker, render_email
from publisher.render.email_mime import SLOTS, PreparedMessage, prepare_message, slot
from publisher.render.inline import absolutise
from publisher.render.markdown import markdown_to_html
from publisher.render.text import markdown_to_text, underline, wrap

_TEMPLATES = Templates(
    html="welcome.html",
    text="welcome.txt",
    hint="fix the template, or restore it from the project's templates/ folder",
    missing_hint="copy welcome.html and welcome.txt from the templates/ of a new `publisher init` project",
)
# ``{{ name }}`` and the like: the slots every message fills (``content.sequences`` refuses others).
_VARIABLE = re.compile(r"\{\{\s*(" + "|".join(SLOTS) + r")\s*\}\}")


class Step(Protocol):
    """What the render needs of a step (``content.sequences.SequenceStep``; render may not import content)."""

    @property
    def sequence(self) -> str: ...
    @property
    def slug(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def preheader(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def source(self) -> Path: ...


def _slotted(body: str) -> str:
    """The body with each ``{{ variable }}`` as its slot marker."""
    return _VARIABLE.sub(lambda m: slot(m.group(1)), body)


def _unjoin(rendered: str, base: str) -> str:
    """Undo what making links absolute did to a slot marker used as a link (``[x]({{ preferences_url }})``).

    The marker looks like a relative URL, so ``absolutise`` prefixes the site;
    the filled value is already absolute.
    """
    for name in ("preferences_url", "unsubscribe_url"):
        marker = slot(name)
        rendered = rendered.replace(urljoin(base, marker), marker)
    return rendered


def render_welcome(settings: Settings, step: Step) -> RenderedEmail:
    """Render both welcome templates for ``step`` and inline the CSS (once per drain)."""
    site = settings.site
    reject_marker(settings, step.source, (step.title, step.subject, step.preheader, step.body))
    base = site.url.rstrip("/") + "/"
    body = _slotted(step.body)
    html = _unjoin(absolutise(markdown_to_html(body), base, "w-"), base)
    text = _unjoin(markdown_to_text(body, base_url=site.url), base)
    why = (
        f"you confirmed your subscription to {site.title} at {site.domain}. "
        "One click on the unsubscribe link below stops these emails."
    )
    context = {
        **frame_context(
            settings, subject=step.subject, preheader=step.preheader, view_url=f"{site.url}/", why=why
        ),
        "title": step.title,
        "heading": underline("\n".join(wrap(step.title)), "="),
        "body_html": Markup(html),
        "body_text": text.strip(),
    }
    return render_email(settings, _TEMPLATES, step.subject, context)


def prepare_welcome(settings: Settings, step: Step, *, send_key: str, date: datetime) -> PreparedMessage:
    """The slotted MIME message of a welcome or sequence step; the drain personalises it per subscriber.

    Its links are counted like an issue's (``analytics``): the re-engagement
    mail of sunsetting is answered by a click. The send must record
    ``prepared.links`` before the mail goes out (``ops.welcome.step_message``).
    """
    rendered = render_welcome(settings, step)
    count = settings.analytics.clicks or settings.analytics.opens
    source = relpath(step.source, settings.base_dir)
    return prepare_message(
        settings,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        send_key=send_key,
        date=date,
        feedback_id=f"{step.slug}:{step.sequence}:newsletter:{settings.site.domain}",
        source=source,
        click_secret=settings.secret_key() if count else None,
    )
