"""What the build renders: a key per output, and the work for the outputs whose key moved.

Every output's key hashes everything it is made from (the settings and
templates, the articles it shows and what of them it shows), so an output is
re-rendered exactly when its key changes. The work is a list of tasks run in
a fork pool; each task renders bytes and writes them only if they differ
(unchanged files keep their mtime).
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from publisher.config import Settings
from publisher.feeds import FEED_FILES, site_feeds, tag_feeds
from publisher.models import Article, Issue
from publisher.ops.build_cache import OutputEntry, Row, hkey
from publisher.ops.build_content import reload_issue, shared
from publisher.render import pages

# (kind, output path or folder, key, arguments): kinds are article, archive, tag, feeds, email
Task = tuple[str, str, str, tuple[Any, ...]]
Written = tuple[str, str, int, bool]  # (path, key, size, bytes changed)


@dataclass
class Planner:
    """Decides, output by output, whether the previous build's file can stay."""

    out: Path
    old: dict[str, OutputEntry]
    outputs: dict[str, OutputEntry]  # this build's manifest, filled as outputs are kept or made
    folders: dict[str, int] = field(default_factory=dict)  # big output folders -> mtime_ns last build
    tasks: list[Task] = field(default_factory=list)
    prefix: str = ""
    trusted: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.prefix = str(self.out) + os.sep
        for folder, stamp in self.folders.items():
            try:
                if os.stat(self.prefix + folder).st_mtime_ns == stamp:
                    self.trusted.add(folder)  # nothing added, removed or renamed in it since
            except OSError:
                pass

    def want(self, path: str, key: str) -> bool:
        """True if ``path`` must be (re)made: new key, or the file is gone or was altered.

        In a big folder whose mtime did not move since the last build (emails/ holds
        30,000 files), no file can have gone, so none is stat-ed.
        """
        entry = self.old.get(path)
        if entry is None or entry[0] != key:
            return True
        if path.rpartition("/")[0] in self.trusted:
            return False
        try:
            return os.stat(self.prefix + path).st_size != entry[1]
        except OSError:
            return True

    def plan(
        self, kind: str, paths: list[str], key: str, args: tuple[Any, ...], where: str | None = None
    ) -> None:
        """Keep ``paths`` if all are current, else add a task making them (``where``: its folder)."""
        if all(not self.want(p, key) for p in paths):
            for p in paths:
                self.outputs[p] = self.old[p]
        else:
            self.tasks.append((kind, paths[0] if where is None else where, key, args))

    def plan_one(self, kind: str, path: str, key: str, args: tuple[Any, ...]) -> None:
        """``plan`` for an output that is one file (ten thousand article pages): no list, no generator."""
        if self.want(path, key):
            self.tasks.append((kind, path, key, args))
        else:
            self.outputs[path] = self.old[path]


def big_folders(out: Path, outputs: dict[str, OutputEntry], least: int = 100) -> dict[str, int]:
    """mtime_ns of the output folders holding at least ``least`` outputs (taken after writing)."""
    count = Counter(path.rpartition("/")[0] for path in outputs)
    stamps = {}
    for folder, n in count.items():
        if n >= least and folder:
            with contextlib.suppress(OSError):
                stamps[folder] = os.stat(out / folder).st_mtime_ns
    return stamps


def plan_articles(
    p: Planner,
    base: str,
    articles: list[Article],
    keys: dict[str, tuple[str, str, str]],
    related: dict[str, tuple[str, ...]],
) -> None:
    """<slug>/index.html: its own source, its latest and related lists (what they show of each)."""
    newest = articles[: pages.LATEST + 1]
    newest_slugs = {a.slug for a in newest}
    common = " ".join(keys[x.slug][1] for x in pages.latest_for(articles[-1], newest)) if articles else ""
    for a in articles:
        slug = a.slug
        latest = (
            " ".join([keys[x.slug][1] for x in pages.latest_for(a, newest)])
            if slug in newest_slugs
            else common
        )
        rel = " ".join([keys[s][1] for s in related.get(slug, ())])
        p.plan_one("article", slug + "/index.html", hkey(base, keys[slug][0], latest, rel), (slug,))


def plan_lists(
    p: Planner,
    base: str,
    folder: str,
    tag: str,
    articles: list[Article],
    keys: dict[str, tuple[str, str, str]],
) -> None:
    """The archive (``tag`` empty) or a tag's pages: entries of each page, and its place."""
    chunks = pages.page_chunks(len(articles))
    for page, first, end in chunks:
        shown = " ".join(keys[a.slug][1] for a in articles[first:end])
        place = f"{page}/{len(chunks)}/{len(articles) if page == 0 else ''}/{page == len(chunks) - 1}"
        key = hkey(base, tag, place, shown)
        p.plan("tag" if tag else "archive", [pages.list_page_path(folder, page)], key, (tag, page))


def plan_feeds(
    p: Planner,
    base: str,
    folder: str,
    tag: str,
    articles: list[Article],
    keys: dict[str, tuple[str, str, str]],
    n: int,
) -> None:
    key = hkey(base, tag, *(keys[a.slug][0] for a in articles[:n]))
    p.plan("feeds", [folder + name for name in FEED_FILES], key, (tag,), where=folder)


def tags_of(articles: list[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = defaultdict(list)
    for a in articles:
        for t in dict.fromkeys(a.tags):
            out[t].append(a)
    return dict(sorted(out.items()))


def published(issue: Issue, live: tuple[Article, ...]) -> Issue:
    return issue if live == issue.articles else replace(issue, articles=live)


# -- in the pool ------------------------------------------------------------------------------


def write_if_changed(path: Path, data: bytes, fresh: bool = False) -> bool:
    """Write atomically, and only if the bytes differ (readers never see half a file).

    ``fresh``: the last build did not make this file, so it is written without reading
    what may be there, into a folder made first (a cold build's 11,000 files cost a
    third of the system calls).
    """
    name = str(path)
    folder = os.path.dirname(name)
    if fresh:
        try:
            os.mkdir(folder)
        except FileExistsError:
            pass
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
    else:
        try:
            if os.stat(name).st_size == len(data):
                with open(name, "rb") as fh:
                    if fh.read() == data:
                        return False
        except OSError:
            pass
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


def run_task(task: Task) -> list[Written]:
    """Render one task's outputs and write them (in a pool child, or inline for small builds)."""
    kind, where, key, args = task
    out: Path = shared("out")
    old: dict[str, OutputEntry] = shared("old")
    return [
        (path, key, len(data), write_if_changed(out / path, data, path not in old))
        for path, data in _render(kind, where, args)
    ]


def _render(kind: str, where: str, args: tuple[Any, ...]) -> Iterator[tuple[str, bytes]]:
    settings: Settings = shared("settings")
    by_slug: dict[str, Article] = shared("by_slug")
    html: dict[str, str] = shared("html")
    if kind == "article":
        a = by_slug[args[0]]
        rel = [by_slug[s] for s in shared("related").get(a.slug, ())]
        latest = pages.latest_for(a, shared("newest"))
        yield where, pages.article_page(settings, a, html[a.content_hash], latest, rel)
    elif kind in ("archive", "tag"):
        tag, page = args
        arts = shared("tags")[tag] if tag else shared("articles")
        chunks = pages.page_chunks(len(arts))
        _, first, end = next(c for c in chunks if c[0] == page)
        pager = pages.pager_for(page, len(chunks), len(arts))
        shown = [by_slug[r.slug] for r in arts[first:end]]
        if tag:
            yield where, pages.tag_page(settings, tag, shown, pager, page, len(arts))
        else:
            yield where, pages.archive_page(settings, shown, pager, page)
    elif kind == "feeds":
        (tag,) = args
        rows = shared("tags")[tag] if tag else shared("articles")
        arts = [by_slug[r.slug] for r in rows[: settings.feeds.max_items]]
        by_slug_html = {a.slug: html[a.content_hash] for a in arts}
        if tag:
            made = tag_feeds(settings, tag, where, arts, by_slug_html)
        else:
            made = site_feeds(settings, arts, by_slug_html)
        for name, data in made.items():
            yield where + name, data
    elif kind == "email":
        from publisher.render.email import issue_email_files  # premailer: only when an email is made

        slug, source = args
        issue = shared("reread").get(slug) or reload_issue(settings, shared("state"), Path(source))
        live = tuple(a for a in issue.articles if not a.draft)
        yield from issue_email_files(settings, published(issue, live), secret=shared("secret")).items()
