"""A round's messages: each distinct article list rendered once, prepared per send.

Rendering is ``render.digest``'s; this module only decides what to render
(the articles of a recorded variant, their related news minus what the digest
already holds) and keeps each render for every zone's send that carries the
same list.
"""

from __future__ import annotations

import json

from publisher.config import Settings
from publisher.errors import RenderError, StoreError
from publisher.models import Article, Library
from publisher.related import related_articles
from publisher.render.digest import prepare_digest, render_digest
from publisher.render.email_frame import RenderedEmail
from publisher.render.email_mime import PreparedMessage
from publisher.store import DigestState, Store
from publisher.store.digests import Contents, DigestSend

CLASHES = 3  # tries to number a send's links while other processes register them too


def related_for(settings: Settings, articles: list[Article], slugs: set[str]) -> dict[str, tuple[str, ...]]:
    """Related slugs for ``slugs`` (a few spare, since picks already in the digest are dropped)."""
    k = settings.digests.related
    if not k or not slugs:
        return {}
    return related_articles(articles, k + settings.digests.max_latest, for_slugs=sorted(slugs))


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
        self.cache: dict[Contents, RenderedEmail] = {}

    def rendered(self, contents: Contents) -> RenderedEmail:
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
                self.settings, self.frequency, chosen, rel, contents.lede.value
            )
        return got


class Renderers:
    """A renderer per frequency over one library; related news computed for what is asked, once."""

    def __init__(self, settings: Settings, library: Library) -> None:
        self.settings = settings
        self.articles = list(library.articles)
        self.by_slug = {a.slug: a for a in self.articles}
        self.related: dict[str, tuple[str, ...]] = {}
        self.made: dict[str, DigestRenderer] = {}

    def warm(self, lists: set[Contents]) -> None:
        missing = {s for c in lists for s in c.articles if s not in self.related and s in self.by_slug}
        if missing:
            self.related.update(related_for(self.settings, self.articles, missing))

    def get(self, frequency: str) -> DigestRenderer:
        if frequency not in self.made:
            self.made[frequency] = DigestRenderer(
                self.settings, frequency, self.by_slug, self.related, self.settings.digests.related
            )
        return self.made[frequency]


def prepared_messages(
    settings: Settings, state: DigestState, renderers: Renderers, send: DigestSend
) -> dict[int, PreparedMessage]:
    """variant id -> the send's prepared message for it (render cached per article list).

    With ``analytics.clicks`` the links go through ``/r/``, numbered per send
    (not per variant) and registered before any of them is mailed; repeating
    this (a resumed round, each worker) finds them registered and numbers alike.
    """
    frequency = json.loads(send.meta or "{}").get("frequency") or send.key.split(":")[1]
    variants = state.variants(send.id)
    renderers.warm(set(variants.values()))
    renderer = renderers.get(frequency)
    clicks = _store(state).clicks if settings.analytics.clicks else None
    secret = settings.secret_key() if clicks is not None else None
    numbers = clicks.numbering(send.key) if clicks is not None else {}
    for _ in range(CLASHES):
        shared = dict(numbers)  # every variant numbers its new URLs after the send's recorded ones
        prepared = {
            vid: prepare_digest(
                settings,
                renderer.rendered(variants[vid]),
                send_key=send.key,
                date=send.created_at,
                frequency=frequency,
                click_secret=secret,
                link_numbers=shared,
            )
            for vid in sorted(variants)
        }
        if clicks is None or shared == numbers:
            return prepared
        numbers = clicks.register(send.key, shared, now=send.created_at)
        if numbers == shared:
            return prepared
    raise StoreError(f"{send.key}: its links could not be numbered (other processes kept numbering them)")


def _store(state: DigestState) -> Store:
    """The store under ``state`` (whose links the send records beside its variants)."""
    return state._store
