"""`publisher build`: content -> pages, feeds, related lists and emails in the output folder.

The output is a pure function of the content, settings and templates: every
output is keyed by a hash of what it is made from, re-rendered only when that
key changes, and written only when its bytes change (so unchanged files keep
their mtime and a rebuild of an unchanged site writes nothing). Files an
earlier build wrote that are no longer produced are removed (a manifest is
kept with the cache under ``paths.state``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from publisher.config import Settings
from publisher.feeds import FEED_FILES, site_feeds, tag_feeds
from publisher.models import Article, Issue, Library
from publisher.ops.build_cache import (
    CacheState,
    OutputEntry,
    digest,
    hkey,
    load_state,
    save_state,
    tree_digest,
)
from publisher.ops.build_content import jobs_default, load_library, parallel_map, render_html, shared
from publisher.related import RelatedIndex
from publisher.render import pages

Progress = Callable[[Iterable[Any], int, str], Iterable[Any]]


@dataclass(frozen=True)
class BuildReport:
    """What a build produced, for the CLI to print and tests to check."""

    out_dir: Path
    articles: int
    issues: int
    pages: int
    tags: int
    feeds: int
    emails: int
    written: tuple[str, ...]  # paths (relative to out_dir) whose bytes changed
    removed: tuple[str, ...]
    outputs: int  # every file the build owns
    reloaded: int  # issues re-read from disk (the rest came from the cache)
    rendered: int  # articles whose Markdown was rendered
    seconds: float
    notes: tuple[str, ...] = ()


@dataclass
class _Run:
    settings: Settings
    out: Path
    state: CacheState
    old: dict[str, OutputEntry]
    jobs: int
    progress: Progress | None
    written: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    prefix: str = ""  # str(out) + "/", for cheap stats
    akeys: dict[str, str] = field(default_factory=dict)  # slug -> what the article is made from
    ekeys: dict[str, str] = field(default_factory=dict)  # slug -> what a list shows of it
    dirty: bool = False  # cache state changed in a way the counts do not show

    def __post_init__(self) -> None:
        self.prefix = str(self.out) + os.sep

    def want(self, path: str, key: str) -> bool:
        """True if ``path`` must be (re)made: new key, or the file is gone or was altered."""
        entry = self.old.get(path)
        if entry is None or entry[0] != key:
            return True
        try:
            return os.stat(self.prefix + path).st_size != entry[1]
        except OSError:
            return True

    def put(self, path: str, key: str, data: bytes) -> None:
        if write_if_changed(self.out / path, data):
            self.written.append(path)
        self.state.outputs[path] = (key, len(data))

    def keep(self, path: str) -> None:
        self.state.outputs[path] = self.old[path]


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write atomically, and only if the bytes differ (readers never see half a file)."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def build(
    settings: Settings,
    out_dir: Path | None = None,
    *,
    jobs: int | None = None,
    progress: Progress | None = None,
    emails: bool = True,
) -> BuildReport:
    """Build the site into ``out_dir`` (default ``paths.output``); see the module docstring.

    ``emails=False`` skips the issue emails (their outputs from an earlier build are then
    removed as stale): rendering and inlining one costs ~25 ms, the bulk of a cold build.
    """
    started = time.perf_counter()
    out = (out_dir or settings.paths.output).resolve()
    state = load_state(settings, out)
    run = _Run(settings, out, state, dict(state.outputs), jobs or jobs_default(), progress)
    state.outputs = {}
    library, reloaded = load_library(settings, state, run.jobs)
    articles = list(library.articles)  # published, newest first
    html, rendered = render_html(articles, state, run.jobs)
    related = _related(settings, state, articles)
    base = digest(settings.model_dump_json(), tree_digest(settings.paths.templates))
    by_slug = {a.slug: a for a in articles}
    for unit in state.units.values():
        for slug, (akey, ekey) in unit.keys.items():
            run.akeys[slug] = akey
            run.ekeys[slug] = ekey

    n_pages = _article_pages(run, base, articles, html, related, by_slug)
    run_archive(run, base, articles)
    tags = _tags(articles)
    for tag, tagged in tags.items():
        _tag_outputs(run, base, tag, tagged, html)
    _site_feeds(run, base, articles, html)
    n_emails = _emails(run, base, library) if emails else 0
    _media(run, articles)
    _static(run)
    removed = _remove_stale(out, set(run.old) - set(state.outputs))
    if run.written or removed or reloaded or rendered or state.outputs != run.old or run.dirty:
        save_state(settings, out, state)
    return BuildReport(
        out_dir=out,
        articles=len(articles),
        issues=len(library.published_issues),
        pages=n_pages + 1 + len(tags),
        tags=len(tags),
        feeds=3 * (1 + len(tags)),
        emails=n_emails,
        written=tuple(sorted(run.written)),
        removed=tuple(sorted(removed)),
        outputs=len(state.outputs),
        reloaded=reloaded,
        rendered=rendered,
        seconds=time.perf_counter() - started,
        notes=tuple(run.notes),
    )


def _related(settings: Settings, state: CacheState, articles: list[Article]) -> dict[str, tuple[str, ...]]:
    k = settings.digests.related
    if k <= 0 or not articles:
        state.related = None
        return {}
    idx = state.related
    if idx is None or idx.k != k or not idx.update(articles):
        idx = RelatedIndex.fit(articles, k)
    state.related = idx
    return idx.top


def _article_pages(
    run: _Run,
    base: str,
    articles: list[Article],
    html: dict[str, str],
    related: dict[str, tuple[str, ...]],
    by_slug: dict[str, Article],
) -> int:
    newest = articles[: pages.LATEST + 1]
    newest_slugs = {a.slug for a in newest}
    todo: list[tuple[str, str, int]] = []
    ek = run.ekeys
    common_latest = " ".join(ek[x.slug] for x in pages.latest_for(articles[-1], newest)) if articles else ""
    for i, a in enumerate(articles):
        path = a.slug + "/index.html"
        if a.slug in newest_slugs:
            latest = " ".join(ek[x.slug] for x in pages.latest_for(a, newest))
        else:
            latest = common_latest
        rel = " ".join(ek.get(s, s) for s in related.get(a.slug, ()))
        key = hkey(base, run.akeys[a.slug], latest, rel)
        if run.want(path, key):
            todo.append((path, key, i))
        else:
            run.keep(path)
    ctx = {
        "settings": run.settings,
        "articles": articles,
        "html": html,
        "related": related,
        "by_slug": by_slug,
    }
    ctx["newest"] = newest
    ctx["out"] = run.out
    results = parallel_map(_render_article, todo, run.jobs, ctx)
    for path, key, size, changed in _with_progress(run, results, len(todo), "article pages"):
        run.state.outputs[path] = (key, size)
        if changed:
            run.written.append(path)
    return len(articles)


def _with_progress(run: _Run, items: Iterable[Any], total: int, label: str) -> Iterable[Any]:
    if run.progress is None or total < 100:
        return items
    return run.progress(items, total, label)


def _render_article(item: tuple[str, str, int]) -> tuple[str, str, int, bool]:
    """Runs in a pool child: render one article page and write it."""
    path, key, i = item
    settings: Settings = shared("settings")
    a: Article = shared("articles")[i]
    by_slug = shared("by_slug")
    rel = [by_slug[s] for s in shared("related").get(a.slug, ()) if s in by_slug]
    data = pages.article_page(settings, a, shared("html")[a.slug], pages.latest_for(a, shared("newest")), rel)
    changed = write_if_changed(shared("out") / path, data)
    return path, key, len(data), changed


def run_archive(run: _Run, base: str, articles: list[Article]) -> None:
    key = digest(base, " ".join(run.ekeys[a.slug] for a in articles))
    if run.want("index.html", key):
        run.put("index.html", key, pages.archive_page(run.settings, articles))
    else:
        run.keep("index.html")


def _tags(articles: list[Article]) -> dict[str, list[Article]]:
    out: dict[str, list[Article]] = defaultdict(list)
    for a in articles:
        for t in dict.fromkeys(a.tags):
            out[t].append(a)
    return dict(sorted(out.items()))


def _feed_key(run: _Run, base: str, articles: list[Article], n: int) -> str:
    return digest(base, [run.akeys[a.slug] for a in articles[:n]])


def _tag_outputs(run: _Run, base: str, tag: str, tagged: list[Article], html: dict[str, str]) -> None:
    folder = pages.tag_path(tag)
    key = digest(base, tag, " ".join(run.ekeys[a.slug] for a in tagged))
    if run.want(folder + "index.html", key):
        run.put(folder + "index.html", key, pages.tag_page(run.settings, tag, tagged))
    else:
        run.keep(folder + "index.html")
    fkey = _feed_key(run, base, tagged, run.settings.feeds.max_items)
    if all(not run.want(folder + name, fkey) for name in FEED_FILES):
        for name in FEED_FILES:
            run.keep(folder + name)
        return
    for name, data in tag_feeds(run.settings, tag, folder, tagged, html).items():
        run.put(folder + name, fkey, data)


def _site_feeds(run: _Run, base: str, articles: list[Article], html: dict[str, str]) -> None:
    key = _feed_key(run, base, articles, run.settings.feeds.max_items)
    if all(not run.want(name, key) for name in FEED_FILES):
        for name in FEED_FILES:
            run.keep(name)
        return
    for name, data in site_feeds(run.settings, articles, html).items():
        run.put(name, key, data)


def _emails(run: _Run, base: str, library: Library) -> int:
    """emails/<slug>.html/.txt/.eml per published issue, from the email renderer.

    The renderer (and premailer behind it) is imported only when an email must be made.
    """
    secret = run.settings.secret_key()
    base = digest(base, digest(secret))
    count = 0
    for issue in library.published_issues:
        live = tuple(a for a in issue.articles if not a.draft)
        if not live:
            continue
        count += 1
        key = digest(base, replace(issue, articles=()), [run.akeys[a.slug] for a in live])
        names = [f"emails/{issue.slug}{ext}" for ext in (".html", ".txt", ".eml")]
        if all(not run.want(n, key) for n in names):
            for n in names:
                run.keep(n)
            continue
        from publisher.render.email import issue_email_files

        for name, data in issue_email_files(run.settings, _published(issue, live), secret=secret).items():
            run.put(name, key, data)
    return count


def _published(issue: Issue, live: tuple[Article, ...]) -> Issue:
    return issue if live == issue.articles else replace(issue, articles=live)


def _media(run: _Run, articles: list[Article]) -> None:
    """Copy each local article image to <out>/<Article.image> (once per file)."""
    seen: set[str] = set()
    for a in articles:
        if a.image_file is None or not a.image or a.image in seen:
            continue
        seen.add(a.image)
        st = a.image_file.stat()
        key = digest(str(a.image_file), st.st_size, st.st_mtime_ns)
        if run.want(a.image, key):
            run.put(a.image, key, a.image_file.read_bytes())
        else:
            run.keep(a.image)


def _static(run: _Run) -> None:
    """templates/static/* -> <out>/static/* (the stylesheet)."""
    root = run.settings.paths.templates / pages.STATIC_DIR
    if not root.is_dir():
        return
    for src in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f"{pages.STATIC_DIR}/{src.relative_to(root).as_posix()}"
        data = src.read_bytes()
        run.put(rel, digest(data), data)


def _remove_stale(out: Path, stale: set[str]) -> list[str]:
    """Delete outputs an earlier build wrote and this one did not, then their empty folders."""
    removed = []
    for rel in sorted(stale):
        path = out / rel
        try:
            path.unlink()
            removed.append(rel)
        except FileNotFoundError:
            continue
        parent = path.parent
        while parent != out and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    return removed


def clean_output(out: Path) -> None:
    """Remove an output folder entirely (for `build --clean`)."""
    shutil.rmtree(out, ignore_errors=True)


def iter_changes(paths: list[Path], stop: Any = None, debounce_ms: int = 200) -> Iterator[set[str]]:
    """File changes under ``paths`` (watchfiles), as sets of changed paths."""
    from watchfiles import watch

    for changes in watch(*paths, stop_event=stop, debounce=debounce_ms, raise_interrupt=False):
        yield {p for _, p in changes}
