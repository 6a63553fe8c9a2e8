"""The issue email: render and inline once, then personalise per subscriber.

This module knows what an *issue* looks like (templates ``email.html`` and
``email.txt``). The frame and the render-and-inline step are ``email_frame``'s
and the MIME assembly and per-recipient fill ``email_mime``'s, shared with the
digest (``digest``) so both kinds of mail are made the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from html import unescape
from pathlib import Path
from urllib.parse import unquote, urlsplit

from markupsafe import Markup
from PIL import Image

from publisher.config import Settings
from publisher.errors import RenderError, relpath
from publisher.models import Article, Issue, Recipient
from publisher.render.email_frame import (
    RenderedEmail,
    Templates,
    date_text,
    frame_context,
    reject_marker,
    render_email,
)
from publisher.render.email_mime import (
    PreparedMessage,
    make_recipient,
    prepare_message,
    unsubscribe_mailto,
)
from publisher.render.inline import absolutise
from publisher.render.markdown import markdown_to_html
from publisher.render.text import absolute_url, markdown_to_text, underline, wrap
from publisher.tokens import message_id, site_link

__all__ = [
    "PreparedMessage",
    "Recipient",
    "issue_email_files",
    "make_recipient",
    "prepare_issue_email",
    "prepare_message",
    "render_issue_email",
    "sample_recipient",
]

SAMPLE_NAME = "Sample Reader"
SAMPLE_EMAIL = "reader@example.org"
EMAIL_IMAGE_WIDTH = 536  # the content column: 600 px less 2 x 32 px of padding
# markdown-it writes every attribute double-quoted and escaped, src first: a regex is exact here.
_IMG_SRC = re.compile(r'(<img src=")([^"]*)(")')
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # a URL, not a file beside the article


_TEMPLATES = Templates(
    html="email.html",
    text="email.txt",
    hint="fix the template, or restore it from the project's templates/ folder",
)


def _image_url(settings: Settings, image: str | None) -> str:
    if not image:
        return ""
    return absolute_url(image, settings.site.url)


def image_size(file: Path | None) -> tuple[int, int] | None:
    """Width and height to give an <img>, at most the column's width; None when unreadable (e.g. SVG).

    Without them Outlook shows an image at its natural size, and every client
    reflows the text when the image arrives.
    """
    if file is None:
        return None
    try:
        with Image.open(file) as im:
            width, height = im.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    if width <= 0 or height <= 0:
        return None
    if width > EMAIL_IMAGE_WIDTH:
        width, height = EMAIL_IMAGE_WIDTH, max(1, round(height * EMAIL_IMAGE_WIDTH / width))
    return width, height


def _sized_images(fragment: str, folder: Path) -> str:
    """Give each local image of a rendered body (relative to ``folder``) its width and height."""

    def fix(m: re.Match[str]) -> str:
        src = unescape(m.group(2)).strip()
        local = src and not src.startswith(("#", "/", "\\")) and not _SCHEME.match(src)
        size = image_size(folder / unquote(urlsplit(src).path)) if local else None
        return m.group(0) + (f' width="{size[0]}" height="{size[1]}"' if size else "")

    return _IMG_SRC.sub(fix, fragment)


def _article_context(
    settings: Settings, issue: Issue, article: Article, n: int, html: Mapping[str, str]
) -> dict[str, object]:
    url = f"{settings.site.url}/{article.slug}/"  # the body is written for its page: resolve against it
    known = html.get(article.content_hash) if article.content_hash else None
    body = _sized_images(known or markdown_to_html(article.body), article.source.parent)
    author = article.author or ""
    meta = date_text(settings, article.date) + (f" · {author}" if author else "")
    hero = image_size(article.image_file)
    return {
        "title": article.title,
        "url": url,
        "date_text": date_text(settings, article.date),
        "author": author,
        "image_url": _image_url(settings, article.image),
        "image_alt": article.image_alt or article.title,  # the text part's "[Image: …]" label
        "hero_alt": article.image_alt,  # as on the page and in feeds: empty marks a decorative image
        "image_width": hero[0] if hero else EMAIL_IMAGE_WIDTH,
        "image_height": hero[1] if hero else None,
        "body_html": Markup(absolutise(body, url, id_prefix=f"a{n}-")),
        "heading": underline("\n".join(wrap(article.title)), "-" if issue.is_folder else "="),
        "meta": meta,
        "body_text": markdown_to_text(article.body, base_url=url, heading_offset=int(issue.is_folder)),
    }


def _check_no_markers(settings: Settings, issue: Issue, subject: str) -> None:
    """Content must not contain the slot marker, or personalisation would fill it in."""
    reject_marker(settings, issue.source, [subject, issue.title, issue.intro, issue.preheader])
    for a in issue.articles:
        reject_marker(
            settings, a.source, [a.title, a.body, a.summary, a.author or "", a.image or "", a.image_alt]
        )


def render_issue_email(
    settings: Settings, issue: Issue, *, test_copy: bool = False, html: Mapping[str, str] | None = None
) -> RenderedEmail:
    """Render both templates for ``issue`` and inline the CSS (the expensive, once-per-issue part).

    A test copy (``send --to``) says so: ``email.test_prefix`` before the
    subject and a banner above the text, so it is never taken for the real mail.
    ``html``: article bodies already rendered (``markdown_to_html``), by content hash.
    """
    site = settings.site
    subject = issue.subject or issue.title
    _check_no_markers(settings, issue, subject)
    # A draft issue renders whole (a preview); a published one leaves out its draft articles.
    articles = [
        _article_context(settings, issue, a, n, html or {})
        for n, a in enumerate(issue.articles, start=1)
        if issue.draft or not a.draft
    ]
    if not articles:
        raise RenderError(f"{relpath(issue.source, settings.base_dir)}: the issue has no article to send")
    first_summary = next((a.summary for a in issue.articles if a.summary), "")
    context = {
        **frame_context(
            settings,
            subject=subject,
            preheader=issue.preheader or first_summary,
            view_url=f"{site.url}/{issue.slug}/",
            why=f"you subscribed to {site.title} at {site.domain}. "
            "One click on the unsubscribe link below stops these emails.",
        ),
        "issue": issue,
        "articles": articles,
        "intro_html": Markup(absolutise(markdown_to_html(issue.intro), site.url, "intro-"))
        if issue.intro.strip()
        else "",
        "intro_text": markdown_to_text(issue.intro, base_url=site.url).strip() if issue.intro.strip() else "",
        "issue_heading": underline("\n".join(wrap(issue.title)), "="),
        "test_copy": test_copy,
    }
    rendered = render_email(settings, _TEMPLATES, subject, context)
    if test_copy:
        return replace(rendered, subject=settings.email.test_prefix + subject)
    return rendered


def prepare_issue_email(
    settings: Settings,
    issue: Issue,
    *,
    send_key: str,
    date: datetime,
    test_copy: bool = False,
    clicks: bool = True,
    html: Mapping[str, str] | None = None,
) -> PreparedMessage:
    """Render and inline ``issue`` once; the result personalises each recipient in microseconds.

    Links go through ``/r/`` (``analytics.clicks``) except in a test copy and
    with ``clicks=False`` (the build's sample files: a public page counts no clicks).
    """
    rendered = render_issue_email(settings, issue, test_copy=test_copy, html=html)
    count = clicks and not test_copy and (settings.analytics.clicks or settings.analytics.opens)
    prepared = prepare_message(
        settings,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        send_key=send_key,
        date=date,
        feedback_id=f"{issue.slug}:issue:newsletter:{settings.site.domain}",
        source=relpath(issue.source, settings.base_dir),
        click_secret=settings.secret_key() if count else None,
    )
    if rendered.notes:
        notes = tuple(f"{relpath(issue.source, settings.base_dir)}: {n}" for n in rendered.notes)
        prepared = _with_warnings(prepared, notes)
    return prepared


def _with_warnings(prepared: PreparedMessage, notes: tuple[str, ...]) -> PreparedMessage:
    return replace(prepared, warnings=prepared.warnings + notes)


def sample_recipient(settings: Settings, secret: bytes, send_key: str) -> Recipient:
    """The sample reader of the build's email files.

    Its links are fixed placeholders, not signed tokens: tokens carry the time
    they were made, which would change the files on every build, and a page on
    the public site should not carry a working unsubscribe link anyway.
    """
    site = settings.site
    return Recipient(
        email=SAMPLE_EMAIL,
        name=SAMPLE_NAME,
        message_id=message_id(secret, send_key, SAMPLE_EMAIL, site.domain),
        unsubscribe_url=site_link(site.url, "unsubscribe/sample-reader"),
        preferences_url=site_link(site.url, "preferences/sample-reader"),
        unsubscribe_mailto=unsubscribe_mailto(settings),
    )


def issue_email_files(
    settings: Settings, issue: Issue, *, secret: bytes | None = None, html: Mapping[str, str] | None = None
) -> dict[str, bytes]:
    """Build outputs for one issue, personalised for a sample reader; identical bytes on every build.

    Keys are paths under the output folder: ``emails/<slug>.html``, ``.txt`` and ``.eml``.
    ``html``: the build's article bodies, by content hash (not rendered a second time).
    """
    send_key = f"issue:{issue.slug}"
    prepared = prepare_issue_email(
        settings, issue, send_key=send_key, date=issue.date, clicks=False, html=html
    )
    reader = sample_recipient(settings, settings.secret_key() if secret is None else secret, send_key)
    return {
        f"emails/{issue.slug}.html": prepared.fill_html(reader).encode("utf-8"),
        f"emails/{issue.slug}.txt": prepared.fill_text(reader).encode("utf-8"),
        f"emails/{issue.slug}.eml": prepared.personalise(reader),
    }
