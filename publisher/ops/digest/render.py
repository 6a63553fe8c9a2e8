"""The digest email: titles, summaries, links and related news; rendered once per article list.

Rendering and CSS inlining (tens of milliseconds) happen once per distinct
article list and are shared by every zone's send that carries that list;
``prepare_message`` (cheap) then builds the slotted MIME message per send, and
the drain personalises it per recipient in microseconds. Full article text is
never included: ten full articles would pass the size at which Gmail clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2

from publisher.config import Settings
from publisher.errors import RenderError, relpath
from publisher.models import Article
from publisher.render.email import frame_context
from publisher.render.email_mime import MARKER_PREFIX, PreparedMessage, prepare_message
from publisher.render.inline import inline_css
from publisher.render.templates import environment, text_environment
from publisher.render.text import underline, wrap
from publisher.store.digests import Contents, Lede

HTML_TEMPLATE = "digest.html"
TEXT_TEMPLATE = "digest.txt"
_WORD = {"daily": "daily", "weekly": "weekly"}


@dataclass(frozen=True)
class RenderedDigest:
    subject: str
    html: str  # inlined, with slot markers
    text: str
    notes: tuple[str, ...] = ()


def _date_text(settings: Settings, when: datetime) -> str:
    local = when.astimezone(settings.site.tz)
    return f"{local.day} {local:%B %Y}"


def _url(settings: Settings, article: Article) -> str:
    return f"{settings.site.url}/{article.slug}/"


def _clean(settings: Settings, article: Article) -> None:
    """Content must not carry the slot marker, or personalisation would fill it in."""
    for text in (article.title, article.summary, article.author or ""):
        if MARKER_PREFIX in text:
            raise RenderError(
                f"{relpath(article.source, settings.base_dir)}: contains the reserved word {MARKER_PREFIX!r}",
                hint="it marks per-subscriber fields in emails; reword that text",
            )


def subject_for(settings: Settings, frequency: str, articles: Sequence[Article]) -> str:
    """Names the lead story, so the inbox line says what is new (same for every reader of the list)."""
    lead = articles[0].title
    more = len(articles) - 1
    tail = f" and {more} more" if more else ""
    return f"{settings.site.title} {_WORD.get(frequency, frequency)}: {lead}{tail}"


def lede_for(settings: Settings, frequency: str, n: int, lede: Lede) -> str:
    """The opening line: what these articles are to this reader (a first digest has no "last" one)."""
    stories = f"{n} new {'story' if n == 1 else 'stories'} from {settings.site.title}"
    if lede is Lede.SUBSCRIBED:
        return f"{stories} since you subscribed."
    if lede is Lede.LATEST:
        latest = "story" if n == 1 else f"{n} stories"
        return f"The latest {latest} from {settings.site.title}, to start your {frequency} digest."
    return f"{stories} since your last {frequency} digest."


def render_digest(
    settings: Settings,
    frequency: str,
    articles: Sequence[Article],
    related: dict[str, tuple[Article, ...]],
    lede: Lede = Lede.LAST,
) -> RenderedDigest:
    """Render both digest templates for one article list and inline the CSS."""
    if not articles:
        raise RenderError("a digest needs at least one article")
    site = settings.site
    items = []
    for a in articles:
        _clean(settings, a)
        rel = related.get(a.slug, ())
        meta = _date_text(settings, a.date) + (f" · {a.author}" if a.author else "")
        items.append(
            {
                "title": a.title,
                "url": _url(settings, a),
                "meta": meta,
                "summary": a.summary,
                "summary_text": "\n".join(wrap(a.summary)) if a.summary else "",
                "heading": underline("\n".join(wrap(a.title)), "-"),
                "related": [
                    {
                        "title": r.title,
                        "url": _url(settings, r),
                        "text": "\n".join(
                            wrap(f"{r.title} ({_url(settings, r)})", initial="- ", subsequent="  ")
                        ),
                    }
                    for r in rel
                ],
            }
        )
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
    html = _render(settings, environment(settings.paths.templates), HTML_TEMPLATE, context)
    text = _render(settings, text_environment(settings.paths.templates), TEXT_TEMPLATE, context)
    inlined, notes = inline_css(html)
    return RenderedDigest(subject, inlined, text, tuple(notes))


def _render(settings: Settings, env: jinja2.Environment, name: str, context: dict[str, object]) -> str:
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateNotFound:
        raise RenderError(
            f"{relpath(Path(settings.paths.templates) / name, settings.base_dir)}: no such template",
            hint="copy digest.html and digest.txt from the project's templates/ folder",
        ) from None
    except jinja2.TemplateError as exc:
        line = getattr(exc, "lineno", None)
        path = relpath(Path(settings.paths.templates) / name, settings.base_dir)
        raise RenderError(f"{path}{':' + str(line) if line else ''}: {exc}") from None


def prepare_digest(
    settings: Settings, rendered: RenderedDigest, *, send_key: str, date: datetime, frequency: str
) -> PreparedMessage:
    """The slotted MIME message of one variant in one send (cheap: no rendering here)."""
    return prepare_message(
        settings,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        send_key=send_key,
        date=date,
        feedback_id=f"{frequency}:digest:newsletter:{settings.site.domain}",
        source=f"{frequency} digest",
    )


class DigestRenderer:
    """Renders each distinct article list once (related news included) and reuses it."""

    def __init__(
        self,
        settings: Settings,
        frequency: str,
        articles: dict[str, Article],
        related: dict[str, tuple[str, ...]],
        related_count: int,
    ) -> None:
        self.settings, self.frequency, self.articles = settings, frequency, articles
        self.related, self.k = related, related_count
        self.cache: dict[Contents, RenderedDigest] = {}

    def rendered(self, contents: Contents) -> RenderedDigest:
        got = self.cache.get(contents)
        if got is None:
            slugs = contents.articles
            chosen = [self.articles[s] for s in slugs if s in self.articles]
            if not chosen:
                raise RenderError(
                    f"none of the articles planned for this digest exist any more: {', '.join(slugs)}"
                )
            inside = set(slugs)
            rel: dict[str, tuple[Article, ...]] = {}
            for a in chosen:
                picks = [self.articles[r] for r in self.related.get(a.slug, ()) if r in self.articles]
                # already in this digest: not "related", it is right there
                rel[a.slug] = tuple(r for r in picks if r.slug not in inside)[: self.k]
            got = self.cache[contents] = render_digest(
                self.settings, self.frequency, chosen, rel, contents.lede
            )
        return got
