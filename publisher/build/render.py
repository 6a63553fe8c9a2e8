"""The render step: the frozen context the tasks read, and the tasks run over the pool."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from publisher.build.cache import CacheState
from publisher.build.library import Loaded
from publisher.build.plan import Planner
from publisher.build.pool import parallel_map
from publisher.build.store import BuildCache
from publisher.build.tasks import IssueEmail, Listing, RenderContext, Written, run_task
from publisher.config import Settings

Progress = Callable[[Iterable[Any], int, str], Iterable[Any]]


def render_context(
    settings: Settings,
    planner: Planner,
    listing: Listing,
    state: CacheState,
    loaded: Loaded,
    cache: BuildCache,
) -> RenderContext:
    """What the planned tasks read, and no more.

    Only the articles the tasks show are loaded in full (on a cold build: all of them,
    already in memory), and only the HTML of the pages and feeds to render.
    """
    full = {a.slug: a for issue in loaded.reread.values() for a in issue.articles}
    unit_of = {r.slug: r.unit for r in listing.rows}
    shown: set[str] = set()
    body: set[str] = set()  # articles whose HTML a task needs
    for task in planner.tasks:
        slugs, printed = task.needs(listing)
        shown.update(slugs)
        body.update(printed)
    for path in {unit_of[s] for s in shown if s not in full}:
        issue = state.units[path].issue
        full.update((a.slug, a) for a in (issue.articles if issue else ()))
    need = {full[s].content_hash for s in body}
    html = {h: loaded.html[h] for h in need if h in loaded.html}
    html.update(cache.get_html(need - set(html)))
    emails = any(isinstance(t, IssueEmail) for t in planner.tasks)
    return RenderContext(
        settings=settings,
        out=planner.out,
        old=planner.old,
        listing=listing,
        by_slug=full,
        html=html,
        reread=loaded.reread,
        folders=state.folders,
        secret=settings.secret_key() if emails else b"",
    )


def render_all(
    planner: Planner,
    context: RenderContext,
    jobs: int,
    progress: Progress | None,
    start_method: str | None,
) -> list[str]:
    """Run every planned task, heavy ones first; record each output; return the paths written."""
    tasks = sorted(planner.tasks, key=lambda t: t.cost)
    results: Iterable[list[Written]] = parallel_map(
        run_task, tasks, jobs, context, chunk=8, start_method=start_method
    )
    if progress is not None and len(tasks) >= 100:
        results = progress(results, len(tasks), "pages, feeds and emails")
    written = []
    for made in results:
        for path, key, size, changed in made:
            planner.outputs[path] = (key, size)
            if changed:
                written.append(path)
    return written
