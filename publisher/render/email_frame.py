"""What every list mail shares: the frame around the content and the one render step.

Issues (``email``) and digests (``digest``) differ only in their templates and
what fills them; both render their HTML and text templates and inline the CSS
here, so a fix to that step (or to the header, preheader and footer every
template shows) reaches both kinds of mail at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2
from markupsafe import Markup

from publisher.config import Settings
from publisher.errors import RenderError, relpath
from publisher.render.email_headers import parse_mailbox
from publisher.render.email_mime import MARKER_PREFIX, template_slots
from publisher.render.inline import inline_css
from publisher.render.links import counting_note
from publisher.render.templates import environment, text_environment
from publisher.render.text import wrap

# Invisible filler after the preheader so clients do not pull body text into the inbox preview.
_PREHEADER_PAD = Markup("&#8204;&nbsp;" * 40)
_RTL_LANGUAGES = {"ar", "fa", "he", "ur", "yi", "ps", "sd", "ug", "dv", "ckb"}


@dataclass(frozen=True)
class RenderedEmail:
    """A mail before MIME assembly: inlined HTML and text, both with slot markers."""

    subject: str
    html: str
    text: str
    notes: tuple[str, ...] = ()


def date_text(settings: Settings, when: datetime) -> str:
    """A date as readers see it in mail: '7 April 2026', in the site's time zone."""
    local = when.astimezone(settings.site.tz)
    return f"{local.day} {local:%B %Y}"


def reject_marker(settings: Settings, source: Path, fields: Iterable[str]) -> None:
    """Content must not contain the slot marker, or personalisation would fill it in."""
    if any(MARKER_PREFIX in f for f in fields):
        raise RenderError(
            f"{relpath(source, settings.base_dir)}: contains the reserved word {MARKER_PREFIX!r}",
            hint="it marks per-subscriber fields in emails; reword that text",
        )


def frame_context(
    settings: Settings, *, subject: str, preheader: str, view_url: str, why: str
) -> dict[str, object]:
    """What every email template's frame needs (header, preheader, footer, slots): issues and digests."""
    site = settings.site
    _, sender_addr = parse_mailbox(settings.email.from_)
    a = settings.analytics
    counting = counting_note(a.clicks, a.per_subscriber, a.opens)  # the footer says what is counted
    privacy_url = (settings.web.public_url or site.url).rstrip("/") + "/privacy"
    return {
        "site": site,
        "text_dir": "rtl" if site.language.split("-")[0].lower() in _RTL_LANGUAGES else "ltr",
        "subject": subject,
        "preheader": preheader,
        "preheader_pad": _PREHEADER_PAD,
        "view_url": view_url,
        "sender_line": f"{site.title} is written by {site.author.name} and sent from {sender_addr}.",
        "postal_address": site.postal_address,
        "why": why,
        "why_text": "\n".join(wrap("Why you get this: " + why)),
        "counting": counting,
        "counting_text": "\n".join(wrap(f"{counting} How we count: {privacy_url}")),
        "privacy_url": privacy_url,
        "slots": template_slots(),
        "test_copy": False,  # a `send --to` copy: banner above the text (issues only)
    }


@dataclass(frozen=True)
class Templates:
    """A mail's pair of templates, and the hints its errors give."""

    html: str
    text: str
    hint: str | None = None  # for a template mistake
    missing_hint: str | None = None  # set: a missing template gets its own message and this hint


def render_email(
    settings: Settings, templates: Templates, subject: str, context: dict[str, object]
) -> RenderedEmail:
    """Render both templates and inline the CSS: the expensive, once-per-content step of every list mail."""
    folder = settings.paths.templates
    html = render_template(settings, environment(folder), templates.html, context, templates)
    text = render_template(settings, text_environment(folder), templates.text, context, templates)
    inlined, notes = inline_css(html)
    return RenderedEmail(subject=subject, html=inlined, text=text, notes=tuple(notes))


def render_template(
    settings: Settings,
    env: jinja2.Environment,
    name: str,
    context: dict[str, object],
    templates: Templates,
) -> str:
    """Render one template; a template mistake becomes a RenderError naming the file and line."""
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateError as exc:
        path = relpath(Path(settings.paths.templates) / name, settings.base_dir)
        if isinstance(exc, jinja2.TemplateNotFound) and templates.missing_hint is not None:
            raise RenderError(f"{path}: no such template", hint=templates.missing_hint) from None
        line = getattr(exc, "lineno", None)
        raise RenderError(f"{path}{':' + str(line) if line else ''}: {exc}", hint=templates.hint) from None
