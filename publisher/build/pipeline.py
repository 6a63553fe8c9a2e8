"""`publisher build`: content -> pages, feeds, related lists and emails in the output folder.

The output is a pure function of the content, settings and templates: every
output is keyed by a hash of what it is made from, re-rendered only when that
key changes, and written only when its bytes change (so unchanged files keep
their mtime and a rebuild of an unchanged site writes nothing). Files an
earlier build wrote that are no longer produced are removed (the manifest is
kept in the build cache under ``paths.state``).

The costly steps run over ``jobs`` processes: parsing, Markdown and term
counting (one pass per changed issue), then every page, feed and email whose
key moved; related news is ranked in between over ``jobs`` threads.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from publisher.build.cache import CacheState
from publisher.build.files import copy_media, copy_static, remove_stale
from publisher.build.keys import digest, renderer_digest, tree_digest
from publisher.build.library import load_library, published_issues, published_rows
from publisher.build.plan import ArticleKeys, Planner, big_folders, plan_emails, plan_site, tags_of
from publisher.build.pool import jobs_default
from publisher.build.ranking import rank_related, related_params
from publisher.build.render import Progress, render_all, render_context
from publisher.build.store import BuildCache
from publisher.build.tasks import Listing
from publisher.config import Settings
from publisher.render import pages
from publisher.render.templates import keep_compiled


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
    start_method: str | None = None,
) -> BuildReport:
    """Build the site into ``out_dir`` (default ``paths.output``); see the module docstring.

    ``emails=False`` skips the issue emails (their outputs from an earlier build are then
    removed as stale). ``start_method``: multiprocessing's for the pools (default: the platform's).
    """
    started = time.perf_counter()
    out = (out_dir or settings.paths.output).resolve()
    workers = jobs or jobs_default()
    keep_compiled(settings.paths.templates, settings.paths.state / "build" / "templates")
    with _few_collections(), BuildCache.opened(settings, out) as cache:
        state = cache.load(freeze=True)
        old, state.outputs = state.outputs, {}
        params = related_params(settings, state)
        renderer = renderer_digest()
        loaded = load_library(
            settings, state, workers, params, salt=renderer, emails=emails, start_method=start_method
        )
        cache.put_html(loaded.html)
        rows, issues = published_rows(state), published_issues(state)
        related = rank_related(settings, state, rows, loaded, workers)
        newest = [r.slug for r in rows[: pages.LATEST + 1]]
        listing = Listing(rows, tags_of(rows), related, newest, settings.feeds.max_items)
        planner = Planner(out, old, state.outputs, state.folders_out)
        base = digest(settings.model_dump_json(), tree_digest(settings.paths.templates), renderer)
        if emails:
            plan_emails(planner, base, settings, issues, state)
        plan_site(planner, base, rows, listing.tags, _article_keys(state), related, listing.feed_items)
        context = render_context(settings, planner, listing, state, loaded, cache)
        written = render_all(planner, context, workers, progress, start_method)
        written += copy_media(planner, issues) + copy_static(planner, settings)
        removed = remove_stale(out, set(old) - set(state.outputs))
        _save(cache, state, out, old, written + removed, bool(loaded.reread))
    return BuildReport(
        out_dir=out,
        articles=len(rows),
        issues=len(issues),
        pages=len(rows) + len(pages.page_chunks(len(rows))) + len(listing.tags),
        tags=len(listing.tags),
        feeds=3 * (1 + len(listing.tags)),
        emails=len(issues) if emails else 0,
        written=tuple(sorted(written)),
        removed=tuple(sorted(removed)),
        outputs=len(state.outputs),
        reloaded=len(loaded.reread),
        rendered=len(loaded.html),
        seconds=time.perf_counter() - started,
        jobs=workers,
    )


def _article_keys(state: CacheState) -> ArticleKeys:
    """slug -> (article key, list key, related key), from the cached issues."""
    return {k[0]: k[1:] for unit in state.units.values() for k in unit.keys}


def _save(
    cache: BuildCache,
    state: CacheState,
    out: Path,
    old: dict[str, tuple[str, int]],
    changed: list[str],
    reread: bool,
) -> None:
    """Keep what this build learnt, if anything moved (an unchanged site writes nothing)."""
    if reread:
        cache.keep_html({h for u in state.units.values() for h in u.hashes})
    if changed:
        state.folders_out = big_folders(out, state.outputs)
    if changed or reread or state.outputs != old:
        cache.save(state)


@contextmanager
def _few_collections(threshold: int = 100_000) -> Iterator[None]:
    """Run the cyclic garbage collector ~100x less often while building.

    A cold build of 10,000 articles keeps millions of objects alive (articles, terms,
    HTML, cache entries) and makes few reference cycles, so the collector's ~900
    passes in the main process (0.5 s there, some of it while the workers want both
    cores) found next to nothing. It still runs; the threshold is restored after, and
    what the build froze (its loaded state, see ``BuildCache.load``) is unfrozen.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], threshold), *old[1:])
    try:
        yield
    finally:
        gc.unfreeze()  # the loaded state was frozen (BuildCache.load(freeze=True))
        gc.set_threshold(*old)
