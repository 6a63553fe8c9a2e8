"""What the render pool does: one small task per output kind, each rendering its own bytes.

A task names its output and the key it is made for; ``render`` takes the build's
frozen context (``RenderContext``, given to each worker once) and yields
(path, bytes); ``run_task`` writes each file only if its bytes changed, so
unchanged files keep their mtime. ``needs`` tells the planner which articles
the task shows (loaded in full) and whose HTML it prints.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from publisher.build.cache import OutputEntry, Row
from publisher.build.library import reload_issue
from publisher.config import Settings
from publisher.content.scan import Unit
from publisher.feeds import site_feeds, tag_feeds
from publisher.models import Article, Issue
from publisher.render import pages
from publisher.render.templates import freeze_templates

Written = tuple[str, str, int, bool]  # (path, key, size, bytes changed)


@dataclass(frozen=True)
class Listing:
    """The published archive as the pages list it: rows newest first, by tag, related picks."""

    rows: list[Row]
    tags: dict[str, list[Row]]
    related: dict[str, tuple[str, ...]]
    newest: list[str]  # slugs of the newest articles (every page's latest list is drawn from them)
    feed_items: int

    def listed(self, tag: str) -> list[Row]:
        return self.tags[tag] if tag else self.rows

    def chunk(self, tag: str, page: int) -> list[Row]:
        listed = self.listed(tag)
        _, first, end = next(c for c in pages.page_chunks(len(listed)) if c[0] == page)
        return listed[first:end]


@dataclass(frozen=True)
class RenderContext:
    """Everything the tasks read, frozen and handed to each pool worker once (see ``pool``)."""

    settings: Settings
    out: Path
    old: dict[str, OutputEntry]  # the last build's manifest: a file not in it is written fresh
    listing: Listing
    by_slug: dict[str, Article]  # the articles the tasks show, in full
    html: dict[str, str]  # the HTML the tasks print, by content hash
    reread: dict[str, Issue]  # issues re-read this build, in full when emails are made
    folders: dict[str, Unit]  # the scan's folder issues (to read an unchanged issue again)
    secret: bytes  # the emails' Message-ID secret (b"" when no email is made)

    def newest(self) -> list[Article]:
        return [self.by_slug[s] for s in self.listing.newest if s in self.by_slug]

    def prime(self) -> None:
        """In the parent, before a forking pool starts: make one email, so the workers inherit its cost.

        Importing the email renderer (premailer, cssutils, lxml: ~0.2 s), premailer's parse of
        the email stylesheet (~0.3 s) and compiling the email templates are then paid once, not
        once per worker. The email is thrown away; templates stay live in this process.
        """
        issue = next((i for i in self.reread.values() if not i.draft), None)
        if not self.secret or issue is None:
            return
        try:
            list(IssueEmail("", "", issue.slug, str(issue.source)).render(self))
        except Exception:  # only a head start: the worker's own task meets the problem and reports it
            return

    def warm(self) -> None:
        """In each worker, before its first task: fix the templates, import the email renderer once.

        A build's workers live for one build, and its templates do not change
        under it: jinja2 need not stat every template file again on each render.
        """
        freeze_templates(self.settings.paths.templates)
        if self.secret:
            # premailer, cssutils and lxml.html cost ~0.2 s to import: only for builds making emails
            import publisher.render.email  # noqa: F401


@dataclass(frozen=True, slots=True)
class ArticlePage:
    """<slug>/index.html."""

    path: str
    key: str
    slug: str
    cost: ClassVar[int] = 3  # heavy tasks go first (the pool ends together)

    def needs(self, listing: Listing) -> tuple[Iterable[str], Iterable[str]]:
        """(slugs of the articles it shows, slugs of those whose HTML it prints)."""
        return (self.slug, *listing.related.get(self.slug, ()), *listing.newest), (self.slug,)

    def render(self, c: RenderContext) -> Iterator[tuple[str, bytes]]:
        a = c.by_slug[self.slug]
        rel = [c.by_slug[s] for s in c.listing.related.get(a.slug, ())]
        latest = pages.latest_for(a, c.newest())
        yield self.path, pages.article_page(c.settings, a, c.html[a.content_hash], latest, rel)


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of the archive (``tag`` empty) or of a tag's list."""

    path: str
    key: str
    tag: str
    page: int
    cost: ClassVar[int] = 2

    def needs(self, listing: Listing) -> tuple[Iterable[str], Iterable[str]]:
        return (r.slug for r in listing.chunk(self.tag, self.page)), ()

    def render(self, c: RenderContext) -> Iterator[tuple[str, bytes]]:
        listed = c.listing.listed(self.tag)
        pager = pages.pager_for(self.page, len(pages.page_chunks(len(listed))), len(listed))
        shown = [c.by_slug[r.slug] for r in c.listing.chunk(self.tag, self.page)]
        if self.tag:
            yield self.path, pages.tag_page(c.settings, self.tag, shown, pager, self.page, len(listed))
        else:
            yield self.path, pages.archive_page(c.settings, shown, pager, self.page)


@dataclass(frozen=True, slots=True)
class Feeds:
    """RSS, Atom and JSON feeds of the site (``tag`` empty) or of a tag, in ``folder``."""

    path: str  # the folder ("" or tags/<tag>/)
    key: str
    tag: str
    cost: ClassVar[int] = 1

    def needs(self, listing: Listing) -> tuple[Iterable[str], Iterable[str]]:
        slugs = [r.slug for r in listing.listed(self.tag)[: listing.feed_items]]
        return slugs, slugs

    def render(self, c: RenderContext) -> Iterator[tuple[str, bytes]]:
        rows = c.listing.listed(self.tag)[: c.settings.feeds.max_items]
        arts = [c.by_slug[r.slug] for r in rows]
        html = {a.slug: c.html[a.content_hash] for a in arts}
        if self.tag:
            made = tag_feeds(c.settings, self.tag, self.path, arts, html)
        else:
            made = site_feeds(c.settings, arts, html)
        for name, data in made.items():
            yield self.path + name, data


@dataclass(frozen=True, slots=True)
class IssueEmail:
    """emails/<slug>.html, .txt and .eml of a published issue, for a sample reader."""

    path: str  # emails/<slug>.html
    key: str
    slug: str
    source: str  # the issue's file, read again when this build did not re-read it
    cost: ClassVar[int] = 0

    def needs(self, listing: Listing) -> tuple[Iterable[str], Iterable[str]]:
        return (), ()

    def render(self, c: RenderContext) -> Iterator[tuple[str, bytes]]:
        # premailer: imported only by builds that make an email (``RenderContext.warm``)
        from publisher.render.email import issue_email_files

        issue = c.reread.get(self.slug) or reload_issue(c.settings, c.folders, Path(self.source))
        live = tuple(a for a in issue.articles if not a.draft)
        published = issue if live == issue.articles else replace(issue, articles=live)
        yield from issue_email_files(c.settings, published, secret=c.secret, html=c.html).items()


Task = ArticlePage | ListPage | Feeds | IssueEmail


def run_task(c: RenderContext, task: Task) -> list[Written]:
    """Render one task's outputs and write them (in a pool worker, or here for small builds)."""
    return [
        (path, task.key, len(data), write_if_changed(c.out / path, data, path not in c.old))
        for path, data in task.render(c)
    ]


def write_if_changed(path: Path, data: bytes, fresh: bool = False) -> bool:
    """Write atomically, and only if the bytes differ (readers never see half a file).

    ``fresh``: the last build did not make this file, so it is written without reading
    what may be there, into a folder made first (a cold build's 11,000 files cost a
    third of the system calls).
    """
    name = str(path)
    folder = os.path.dirname(name)
    if fresh:
        if folder not in _MADE:  # emails/ holds 3 files an issue: one failed mkdir each cost ~10 us
            try:
                os.mkdir(folder)
            except FileExistsError:
                pass
            except FileNotFoundError:
                os.makedirs(folder, exist_ok=True)
            _MADE.add(folder)  # removed since (a rebuild in watch mode)? the open below makes it again
    elif _same_bytes(name, data):
        return False
    tmp = f"{folder}/.{os.path.basename(name)}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, name)
    return True


_MADE: set[str] = set()  # folders this process made or found (its own memo: no state is shared)


def _same_bytes(name: str, data: bytes) -> bool:
    try:
        if os.stat(name).st_size == len(data):
            with open(name, "rb") as fh:
                return fh.read() == data
    except OSError:
        pass
    return False
