"""`publisher build`: content -> pages, feeds, related lists and emails in the output folder.

The output is a pure function of the content, settings and templates: every
output is keyed by a hash of what it is made from, re-rendered only when that
key changes, and written only when its bytes change (so unchanged files keep
their mtime and a rebuild of an unchanged site writes nothing). Files an
earlier build wrote that are no longer produced are removed (a manifest is
kept with the cache under ``paths.state``).

The costly steps run over ``jobs`` processes: parsing, Markdown and term
counting (one pass per changed issue), then every page, feed and email whose
key moved; related news is ranked in between over ``jobs`` threads.
"""

from __future__ import annotations

import inspect
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from publisher.config import Settings
from publisher.errors import ContentError, Problem
from publisher.feeds import FEED_FILES
from publisher.models import Article, Library
from publisher.ops.build_cache import HtmlStore, digest, hkey, load_state, save_state, tree_digest
from publisher.ops.build_content import full_articles, jobs_default, load_library, parallel_map
from publisher.ops.build_pages import (
    Planner,
    Written,
    plan_articles,
    plan_feeds,
    plan_lists,
    run_task,
    tags_of,
)
from publisher.related import RelatedIndex, RelatedParams, doc_terms
from publisher.render import markdown, pages

Progress = Callable[[Iterable[Any], int, str], Iterable[Any]]
RELATED = RelatedParams()
_COST = {"email": 0, "feeds": 1, "tag": 2, "archive": 2, "article": 3}  # heavy tasks first


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
    jobs: int = 1  # processes used for the parallel steps


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
    workers = jobs or jobs_default()
    state = load_state(settings, out)
    old, state.outputs = state.outputs, {}
    k = settings.digests.related
    params = RELATED if k > 0 else None
    if params is not None and (
        state.related is None or state.related.k != k or state.related.params != params
    ):
        state.units.clear()  # the index is made from every article's terms: read them all again
    renderer = _renderer()
    library, reread, new_html, terms = load_library(settings, state, workers, params, renderer)
    articles = list(library.articles)  # published, newest first
    _reserved(articles)
    keys = {slug: ks for unit in state.units.values() for slug, ks in unit.keys.items()}
    related = _related(settings, state, articles, k, terms, keys, workers)
    base = digest(settings.model_dump_json(), tree_digest(settings.paths.templates), renderer)
    planner = Planner(out, old, state.outputs)
    plan_articles(planner, base, articles, keys, related)
    plan_lists(planner, base, "", "", articles, keys)
    tags = tags_of(articles)
    for tag, tagged in tags.items():
        plan_lists(planner, base, pages.tag_path(tag), tag, tagged, keys)
        plan_feeds(planner, base, pages.tag_path(tag), tag, tagged, keys, settings.feeds.max_items)
    plan_feeds(planner, base, "", "", articles, keys, settings.feeds.max_items)
    n_emails = _plan_emails(planner, base, settings, library, state) if emails else 0
    store = HtmlStore(settings, out)
    try:
        store.put(new_html)
        shared = _shared(settings, out, articles, tags, related, reread, state, planner, store, new_html)
        written = _run(planner, shared, workers, progress)
        if reread:
            store.keep_only({a.content_hash for u in state.units.values() for a in _unit_articles(u)})
    finally:
        store.close()
    _media(planner, articles, written)
    _static(planner, settings, written)
    removed = _remove_stale(out, set(old) - set(state.outputs))
    if written or removed or reread or state.outputs != old:
        save_state(settings, out, state)
    return BuildReport(
        out_dir=out,
        articles=len(articles),
        issues=len(library.published_issues),
        pages=len(articles) + len(pages.page_chunks(len(articles))) + len(tags),
        tags=len(tags),
        feeds=3 * (1 + len(tags)),
        emails=n_emails,
        written=tuple(sorted(written)),
        removed=tuple(sorted(removed)),
        outputs=len(state.outputs),
        reloaded=len(reread),
        rendered=len(new_html),
        seconds=time.perf_counter() - started,
        jobs=workers,
    )


def _reserved(articles: list[Article]) -> None:
    """The archive's own pages live under page/: no article may take that slug."""
    clash = [a for a in articles if a.slug == "page"]
    if clash:
        where = str(clash[0].source)
        raise ContentError(
            [
                Problem(
                    where, "slug 'page' is used by the archive's older pages (page/2/ ...); rename the file"
                )
            ]
        )


def _renderer() -> str:
    """The Markdown renderer's own code and library version: cached HTML dies with them."""
    import markdown_it

    return digest(markdown_it.__version__, inspect.getsource(markdown))


def _related(
    settings: Settings,
    state: Any,
    articles: list[Article],
    k: int,
    terms: dict[str, Any],
    keys: dict[str, tuple[str, str, str]],
    jobs: int,
) -> dict[str, tuple[str, ...]]:
    """Related lists, updated from the last build's index (the same answer as a fresh fit)."""
    if k <= 0 or not articles:
        state.related = None
        return {}
    rkeys = {slug: ks[2] for slug, ks in keys.items()}
    idx = state.related
    known = idx.known(articles, rkeys) if idx is not None else set()
    lacking = [a for a in articles if a.slug not in terms and a.slug not in known]
    if lacking:  # cached without their bodies and unknown to the index: count them from the files
        terms = terms | {a.slug: doc_terms(a, RELATED) for a in full_articles(settings, state, lacking)}
    if idx is None or not idx.update(articles, terms=terms, keys=rkeys, jobs=jobs):
        idx = RelatedIndex.fit(articles, k, RELATED, terms=terms, keys=rkeys, jobs=jobs, previous=idx)
    state.related = idx
    return idx.top


def _unit_articles(unit: Any) -> Iterator[Article]:
    if unit.issue is not None:
        yield from unit.issue.articles
    yield from unit.drafts


def _plan_emails(p: Planner, base: str, settings: Settings, library: Library, state: Any) -> int:
    """emails/<slug>.html/.txt/.eml per published issue: a function of the issue's files."""
    base = hkey(base, digest(settings.secret_key()))
    fingerprints = {
        (str(u.issue.source)): u.fingerprint + repr(u.images)
        for u in state.units.values()
        if u.issue is not None
    }
    count = 0
    for issue in library.published_issues:
        if not any(not a.draft for a in issue.articles):
            continue
        count += 1
        names = [f"emails/{issue.slug}{ext}" for ext in (".html", ".txt", ".eml")]
        key = hkey(base, fingerprints[str(issue.source)])
        p.plan("email", names, key, (issue.slug, str(issue.source)), where=names[0])
    return count


def _shared(
    settings: Settings,
    out: Path,
    articles: list[Article],
    tags: dict[str, list[Article]],
    related: dict[str, tuple[str, ...]],
    reread: dict[str, Any],
    state: Any,
    planner: Planner,
    store: HtmlStore,
    new_html: dict[str, str],
) -> dict[str, Any]:
    """What the pool's children read (inherited through fork, never pickled)."""
    by_slug = {a.slug: a for a in articles}
    need: set[str] = set()
    for kind, _, _, args in planner.tasks:
        if kind == "article":
            need.add(by_slug[args[0]].content_hash)
        elif kind == "feeds":
            chosen = tags[args[0]] if args[0] else articles
            need.update(a.content_hash for a in chosen[: settings.feeds.max_items])
    html = {h: new_html[h] for h in need if h in new_html}
    html.update(store.get(need - set(html)))
    secret = settings.secret_key() if any(t[0] == "email" for t in planner.tasks) else b""
    return {
        "settings": settings,
        "out": out,
        "articles": articles,
        "by_slug": by_slug,
        "newest": articles[: pages.LATEST + 1],
        "tags": tags,
        "related": related,
        "html": html,
        "reread": reread,
        "state": state,
        "secret": secret,
    }


def _run(planner: Planner, shared: dict[str, Any], jobs: int, progress: Progress | None) -> list[str]:
    tasks = sorted(planner.tasks, key=lambda t: _COST[t[0]])
    results: Iterable[list[Written]] = parallel_map(run_task, tasks, jobs, shared, chunk=8)
    if progress is not None and len(tasks) >= 100:
        results = progress(results, len(tasks), "pages, feeds and emails")
    written = []
    for made in results:
        for path, key, size, changed in made:
            planner.outputs[path] = (key, size)
            if changed:
                written.append(path)
    return written


def _media(p: Planner, articles: list[Article], written: list[str]) -> None:
    """Copy each local article image to <out>/<Article.image> (once per file)."""
    seen: set[str] = set()
    for a in articles:
        if a.image_file is None or not a.image or a.image in seen:
            continue
        seen.add(a.image)
        st = a.image_file.stat()
        key = digest(str(a.image_file), st.st_size, st.st_mtime_ns)
        if p.want(a.image, key):
            _put(p, a.image, key, a.image_file.read_bytes(), written)
        else:
            p.outputs[a.image] = p.old[a.image]


def _static(p: Planner, settings: Settings, written: list[str]) -> None:
    """templates/static/* -> <out>/static/* (the stylesheet)."""
    root = settings.paths.templates / pages.STATIC_DIR
    if not root.is_dir():
        return
    for src in sorted(q for q in root.rglob("*") if q.is_file()):
        rel = f"{pages.STATIC_DIR}/{src.relative_to(root).as_posix()}"
        data = src.read_bytes()
        _put(p, rel, digest(data), data, written)


def _put(p: Planner, path: str, key: str, data: bytes, written: list[str]) -> None:
    from publisher.ops.build_pages import write_if_changed

    if write_if_changed(p.out / path, data):
        written.append(path)
    p.outputs[path] = (key, len(data))


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


__all__ = ["FEED_FILES", "BuildReport", "build", "clean_output", "iter_changes"]
