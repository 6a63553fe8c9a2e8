"""What the build must render: a key per output, and a task for each output whose key moved.

Every output's key hashes everything it is made from (the settings and
templates, the articles it shows and what of them it shows), so an output is
re-rendered exactly when its key changes; the others keep last build's file.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from publisher.build.cache import CacheState, OutputEntry, Row, UnitEntry
from publisher.build.keys import digest, hkey
from publisher.build.tasks import ArticlePage, Feeds, IssueEmail, ListPage, Task
from publisher.config import Settings
from publisher.feeds import FEED_FILES
from publisher.render import pages

ArticleKeys = dict[str, tuple[str, str, str]]  # slug -> (article key, list key, related key)


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

    def plan(self, task: Task, paths: list[str]) -> None:
        """Keep ``paths`` if all are current, else add ``task``, which makes them."""
        if all(not self.want(p, task.key) for p in paths):
            for p in paths:
                self.outputs[p] = self.old[p]
        else:
            self.tasks.append(task)

    def plan_one(self, task: ArticlePage) -> None:
        """``plan`` for an output that is one file (ten thousand article pages): no list."""
        if self.want(task.path, task.key):
            self.tasks.append(task)
        else:
            self.outputs[task.path] = self.old[task.path]


def big_folders(out: Path, outputs: dict[str, OutputEntry], least: int = 100) -> dict[str, int]:
    """mtime_ns of the output folders holding at least ``least`` outputs (taken after writing)."""
    count = Counter(path.rpartition("/")[0] for path in outputs)
    stamps = {}
    for folder, n in count.items():
        if n >= least and folder:
            with contextlib.suppress(OSError):
                stamps[folder] = os.stat(out / folder).st_mtime_ns
    return stamps


def tags_of(rows: list[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = defaultdict(list)
    for a in rows:
        for t in dict.fromkeys(a.tags):
            out[t].append(a)
    return dict(sorted(out.items()))


def plan_site(
    p: Planner,
    base: str,
    rows: list[Row],
    tags: dict[str, list[Row]],
    keys: ArticleKeys,
    related: dict[str, tuple[str, ...]],
    feed_items: int,
) -> None:
    """Every page and feed: articles, the archive, each tag's pages and feeds, the site's feeds."""
    plan_articles(p, base, rows, keys, related)
    plan_lists(p, base, "", "", rows, keys)
    for tag, tagged in tags.items():
        plan_lists(p, base, pages.tag_path(tag), tag, tagged, keys)
        plan_feeds(p, base, pages.tag_path(tag), tag, tagged, keys, feed_items)
    plan_feeds(p, base, "", "", rows, keys, feed_items)


def plan_articles(
    p: Planner, base: str, rows: list[Row], keys: ArticleKeys, related: dict[str, tuple[str, ...]]
) -> None:
    """<slug>/index.html: its own source, its latest and related lists (what they show of each)."""
    newest = rows[: pages.LATEST + 1]
    newest_slugs = {a.slug for a in newest}
    common = " ".join(keys[x.slug][1] for x in pages.latest_for(rows[-1], newest)) if rows else ""  # type: ignore[arg-type]  # a Row has the slug it reads
    for a in rows:
        slug = a.slug
        latest = (
            " ".join([keys[x.slug][1] for x in pages.latest_for(a, newest)])  # type: ignore[arg-type]  # as above
            if slug in newest_slugs
            else common
        )
        rel = " ".join([keys[s][1] for s in related.get(slug, ())])
        path = slug + "/index.html"
        p.plan_one(ArticlePage(path, hkey(base, keys[slug][0], latest, rel), slug))


def plan_lists(p: Planner, base: str, folder: str, tag: str, rows: list[Row], keys: ArticleKeys) -> None:
    """The archive (``tag`` empty) or a tag's pages: entries of each page, and its place."""
    chunks = pages.page_chunks(len(rows))
    for page, first, end in chunks:
        shown = " ".join(keys[a.slug][1] for a in rows[first:end])
        place = f"{page}/{len(chunks)}/{len(rows) if page == 0 else ''}/{page == len(chunks) - 1}"
        path = pages.list_page_path(folder, page)
        p.plan(ListPage(path, hkey(base, tag, place, shown), tag, page), [path])


def plan_feeds(
    p: Planner, base: str, folder: str, tag: str, rows: list[Row], keys: ArticleKeys, n: int
) -> None:
    key = hkey(base, tag, *(keys[a.slug][0] for a in rows[:n]))
    p.plan(Feeds(folder, key, tag), [folder + name for name in FEED_FILES])


def plan_emails(
    p: Planner, base: str, settings: Settings, issues: list[UnitEntry], state: CacheState
) -> None:
    """emails/<slug>.html/.txt/.eml per published issue: a function of the issue's files.

    With the emails' base unchanged since the last build, an issue loaded as it was then
    keeps its files without its key being hashed again (in a trusted emails/ folder).
    """
    base = hkey(base, digest(settings.secret_key()))
    old, outputs, trusted = p.old, p.outputs, "emails" in p.trusted
    as_before = {id(u) for u in state.loaded.values()} if trusted and state.email_base == base else set()
    for u in issues:
        stem = "emails/" + u.issue_slug
        names = [stem + ".html", stem + ".txt", stem + ".eml"]
        key = "" if id(u) in as_before else hkey(base, u.fingerprint, repr(u.images))
        if trusted:  # the common case inlined: 10,000 issues, three files each, none stat-ed
            kept = [old.get(n) for n in names]
            if None not in kept and (not key or all(e[0] == key for e in kept)):  # type: ignore[index]  # no None
                outputs.update(zip(names, kept, strict=True))  # type: ignore[arg-type]  # no None
                continue
        key = key or hkey(base, u.fingerprint, repr(u.images))
        p.plan(IssueEmail(names[0], key, u.issue_slug, u.issue_source), names)
    state.email_base = base
