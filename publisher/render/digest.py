"""The digest email: titles, summaries, links and related news; rendered once per article list.

Made the way the issue email is (``email_frame``'s frame and render step,
``email_mime``'s assembly), only with templates ``digest.html`` and
``digest.txt``. Rendering and CSS inlining (tens of milliseconds) happen once
per distinct article list and are shared by every zone's send that carries
that list; ``prepare_digest`` (cheap) then builds the slotted MIME message per
send, and the drain personalises it per recipient in microseconds. Full article
text is never included: ten full articles would pass the size at which Gmail clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from publisher.config import Settings
from publisher.errors import RenderError
from publisher.models import Article
from publisher.render.email_frame import (
    RenderedEmail,
    Templates,
    date_text,
    frame_context,
    reject_marker,
    render_email,
)
from publisher.render.email_mime import PreparedMessage, prepare_message
from publisher.render.text import underline, wrap

HTML_TEMPLATE = "digest.html"
TEXT_TEMPLATE = "digest.txt"
_TEMPLATES = Templates(
    html=HTML_TEMPLATE,
    text=TEXT_TEMPLATE,
    missing_hint="copy digest.html and digest.txt from the project's templates/ folder",
)
_WORD = {"daily": "daily", "weekly": "weekly"}
# What the opening line calls the articles: the values of ``store.digests.Lede``.
LEDE_LAST, LEDE_SUBSCRIBED, LEDE_LATEST = "last", "subscribed", "latest"


def _url(settings: Settings, article: Article) -> str:
    return f"{settings.site.url}/{article.slug}/"


def subject_for(settings: Settings, frequency: str, articles: Sequence[Article]) -> str:
    """Names the lead story, so the inbox line says what is new (same for every reader of the list)."""
    lead = articles[0].title
    more = len(articles) - 1
    tail = f" and {more} more" if more else ""
    return f"{settings.site.title} {_WORD.get(frequency, frequency)}: {lead}{tail}"


def lede_for(settings: Settings, frequency: str, n: int, lede: str) -> str:
    """The opening line: what these articles are to this reader (a first digest has no "last" one)."""
    stories = f"{n} new {'story' if n == 1 else 'stories'} from {settings.site.title}"
    if lede == LEDE_SUBSCRIBED:
        return f"{stories} since you subscribed."
    if lede == LEDE_LATEST:
        latest = "story" if n == 1 else f"{n} stories"
        return f"The latest {latest} from {settings.site.title}, to start your {frequency} digest."
    return f"{stories} since your last {frequency} digest."


def _item(settings: Settings, article: Article, related: Sequence[Article]) -> dict[str, object]:
    """One article's entry: title, meta line, summary and its related news."""
    reject_marker(settings, article.source, (article.title, article.summary, article.author or ""))
    a = article
    return {
        "title": a.title,
        "url": _url(settings, a),
        "meta": date_text(settings, a.date) + (f" · {a.author}" if a.author else ""),
        "summary": a.summary,
        "summary_text": "\n".join(wrap(a.summary)) if a.summary else "",
        "heading": underline("\n".join(wrap(a.title)), "-"),
        "related": [
            {
                "title": r.title,
                "url": _url(settings, r),
                "text": "\n".join(wrap(f"{r.title} ({_url(settings, r)})", initial="- ", subsequent="  ")),
            }
            for r in related
        ],
    }


def render_digest(
    settings: Settings,
    frequency: str,
    articles: Sequence[Article],
    related: dict[str, tuple[Article, ...]],
    lede: str = LEDE_LAST,
) -> RenderedEmail:
    """Render both digest templates for one article list and inline the CSS."""
    if not articles:
        raise RenderError("a digest needs at least one article")
    site = settings.site
    items = [_item(settings, a, related.get(a.slug, ())) for a in articles]
    subject = subject_for(settings, frequency, articles)
    opening = lede_for(settings, frequency, len(articles), lede)
    why = (
        f"you chose a {frequency} digest of {site.title} at {site.domain}. "
        "One click on the unsubscribe link below stops these emails."
    )
    context = {
        **frame_context(
            settings,
            subject=subject,
            preheader=" · ".join(a.title for a in articles[:3]),
            view_url=f"{site.url}/",
            why=why,
        ),
        "lede": opening,
        "lede_text": "\n".join(wrap(opening)),
        "articles": items,
    }
    return render_email(settings, _TEMPLATES, subject, context)


def prepare_digest(
    settings: Settings,
    rendered: RenderedEmail,
    *,
    send_key: str,
    date: datetime,
    frequency: str,
    click_secret: bytes | None = None,
    link_numbers: dict[str, int] | None = None,
) -> PreparedMessage:
    """The slotted MIME message of one variant in one send (cheap: no rendering here).

    With ``click_secret`` its links go through ``/r/`` like an issue's, numbered
    by ``link_numbers``: the send's numbering, shared by (and extended by) all
    the send's variants, so one URL has one number whichever variant it is in.
    """
    return prepare_message(
        settings,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        send_key=send_key,
        date=date,
        feedback_id=f"{frequency}:digest:newsletter:{settings.site.domain}",
        source=f"{frequency} digest",
        click_secret=click_secret,
        click_numbers=link_numbers,
    )
