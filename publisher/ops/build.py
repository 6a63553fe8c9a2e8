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

import gc
import inspect
import itertools
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from publisher.config import Settings
from publisher.feeds import FEED_FILES
from publisher.models import Issue
from publisher.ops.build_cache import (
    CacheState,
    HtmlStore,
    Row,
    UnitEntry,
    digest,
    hkey,
    load_state,
    save_state,
    tree_digest,
)
from publisher.ops.build_content import (
    full_articles,
    jobs_default,
    load_library,
    parallel_map,
    published_issues,
    published_rows,
)
from publisher.ops.build_emails import FEW, EmailHelper
from publisher.ops.build_pages import (
    Planner,
    Written,
    big_folders,
    plan_articles,
    plan_feeds,
    plan_lists,
    run_task,
    tags_of,
)
from publisher.related import DocTerms, RelatedIndex, RelatedParams, doc_terms
from publisher.render import markdown, pages
from publisher.render.templates import keep_compiled

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
    keep_compiled(settings.paths.templates, settings.paths.state / "build" / "templates")
    helper = EmailHelper(settings) if emails else None  # imports the email renderer meanwhile
    try:
        with _few_collections():
            return _build(settings, out_dir, jobs, progress, emails, helper)
    finally:
        if helper is not None:
            helper.close()


@contextmanager
def _few_collections(threshold: int = 100_000) -> Iterator[None]:
    """Run the cyclic garbage collector ~100x less often while building.

    A cold build of 10,000 articles keeps millions of objects alive (articles, terms,
    HTML, cache entries) and makes few reference cycles, so the collector's ~900
    passes in the main process (0.5 s there, some of it while the workers want both
    cores) found next to nothing. It still runs; the threshold is restored after, and
    what the build froze (its loaded state, see ``load_state``) is unfrozen.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], threshold), *old[1:])
    try:
        yield
    finally:
        gc.unfreeze()  # the loaded state was frozen (load_state(freeze=True))
        gc.set_threshold(*old)


def _build(
    settings: Settings,
    out_dir: Path | None,
    jobs: int | None,
    progress: Progress | None,
    emails: bool,
    helper: EmailHelper | None,
) -> BuildReport:
    started = time.perf_counter()
    out = (out_dir or settings.paths.output).resolve()
    workers = jobs or jobs_default()
    state = load_state(settings, out, freeze=True)
    old, state.outputs = state.outputs, {}
    k = settings.digests.related
    params = RELATED if k > 0 else None
    if params is not None and (
        state.related is None or state.related.k != k or state.related.params != params
    ):
        state.units.clear()  # the index is made from every article's terms: read them all again
    renderer = _renderer()
    reread, new_html, terms = load_library(settings, state, workers, params, renderer, emails)
    rows = published_rows(state)  # library.articles: published, newest first
    keys = {k[0]: k[1:] for unit in state.units.values() for k in unit.keys}
    base = digest(settings.model_dump_json(), tree_digest(settings.paths.templates), renderer)
    planner = Planner(out, old, state.outputs, state.folders_out)
    issues = published_issues(state)
    n_emails = _plan_emails(planner, base, settings, issues, state) if emails else 0
    # a few emails to remake go to the warm helper now: it renders them while this process
    # ranks related news and plans the pages
    mailed = _hand_over(planner, helper, settings, out, reread, state)
    related = _related(settings, state, rows, reread, k, terms, keys, workers)
    plan_articles(planner, base, rows, keys, related)
    plan_lists(planner, base, "", "", rows, keys)
    tags = tags_of(rows)
    for tag, tagged in tags.items():
        plan_lists(planner, base, pages.tag_path(tag), tag, tagged, keys)
        plan_feeds(planner, base, pages.tag_path(tag), tag, tagged, keys, settings.feeds.max_items)
    plan_feeds(planner, base, "", "", rows, keys, settings.feeds.max_items)
    store = HtmlStore(settings, out)
    try:
        store.put(new_html)
        shared = _shared(settings, out, rows, tags, related, reread, state, planner, store, new_html, mailed)
        written = _run(planner, shared, workers, progress, helper, mailed)
        if reread:
            store.keep_only({h for u in state.units.values() for h in u.hashes})
    finally:
        store.close()
    _media(planner, issues, written)
    _static(planner, settings, written)
    removed = _remove_stale(out, set(old) - set(state.outputs))
    if written or removed:
        state.folders_out = big_folders(out, state.outputs)
    if written or removed or reread or state.outputs != old:
        save_state(settings, out, state)
    return BuildReport(
        out_dir=out,
        articles=len(rows),
        issues=len(issues),
        pages=len(rows) + len(pages.page_chunks(len(rows))) + len(tags),
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


def _renderer() -> str:
    """The Markdown renderers' own code and library versions: cached HTML dies with them."""
    import markdown_it
    import markdown_it_pyrs
    import mdit_py_plugins

    return digest(
        markdown_it.__version__,
        markdown_it_pyrs.__version__,
        mdit_py_plugins.__version__,
        inspect.getsource(markdown),
    )


def _related(
    settings: Settings,
    state: CacheState,
    rows: list[Row],
    reread: dict[str, Issue],
    k: int,
    terms: dict[str, DocTerms],
    keys: dict[str, tuple[str, str, str]],
    jobs: int,
) -> dict[str, tuple[str, ...]]:
    """Related lists, updated from the last build's index (the same answer as a fresh fit).

    Rows stand in for articles the index already knows; re-read articles come in full.
    """
    if k <= 0 or not rows:
        state.related = None
        return {}
    rkeys = {slug: ks[2] for slug, ks in keys.items()}
    full = {a.slug: a for issue in reread.values() for a in issue.articles}
    idx = state.related
    known = idx.known(rows, rkeys) if idx is not None else set()  # type: ignore[arg-type]
    lacking = [r for r in rows if r.slug not in terms and r.slug not in known]
    if lacking:  # cached without their bodies and unknown to the index: read them again
        more = full_articles(settings, state, [r.unit for r in lacking], {r.slug for r in lacking})
        full.update((a.slug, a) for a in more)
        terms = terms | {a.slug: doc_terms(a, RELATED) for a in more}
    pool: list[Any] = [full.get(r.slug, r) for r in rows]
    if idx is None or not idx.update(pool, terms=terms, keys=rkeys, jobs=jobs):
        idx = RelatedIndex.fit(pool, k, RELATED, terms=terms, keys=rkeys, jobs=jobs, previous=idx)
    state.related = idx
    return idx.top


def _plan_emails(
    p: Planner, base: str, settings: Settings, issues: list[UnitEntry], state: CacheState
) -> int:
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
            if None not in kept and (not key or all(e[0] == key for e in kept)):  # type: ignore[index]
                outputs.update(zip(names, kept, strict=True))  # type: ignore[arg-type]
                continue
        key = key or hkey(base, u.fingerprint, repr(u.images))
        p.plan("email", names, key, (u.issue_slug, u.issue_source), where=names[0])
    state.email_base = base
    return len(issues)


def _hand_over(
    p: Planner,
    helper: EmailHelper | None,
    settings: Settings,
    out: Path,
    reread: dict[str, Issue],
    state: CacheState,
) -> list[Any]:
    """Give a few planned emails to the helper (they leave the planner's tasks); [] if none."""
    mails = [t for t in p.tasks if t[0] == "email"]
    if helper is None or not mails or len(mails) > FEW:
        return []
    names = [f"emails/{t[3][0]}{ext}" for t in mails for ext in (".html", ".txt", ".eml")]
    helper.submit(
        mails,
        {
            "settings": settings,
            "out": out,
            "old": {n: p.old[n] for n in names if n in p.old},
            "reread": {t[3][0]: reread[t[3][0]] for t in mails if t[3][0] in reread},
            "state": CacheState(folders=state.folders),
            "secret": settings.secret_key(),
            "by_slug": {},
            "html": {},
        },
    )
    p.tasks = [t for t in p.tasks if t[0] != "email"]
    return mails


def _shared(
    settings: Settings,
    out: Path,
    rows: list[Row],
    tags: dict[str, list[Row]],
    related: dict[str, tuple[str, ...]],
    reread: dict[str, Issue],
    state: CacheState,
    planner: Planner,
    store: HtmlStore,
    new_html: dict[str, str],
    mailed: list[Any],
) -> dict[str, Any]:
    """What the pool's children read (inherited through fork, never pickled).

    Only the articles the tasks show are loaded in full (on a cold build: all of them,
    already in memory), and only the HTML of the pages and feeds to render.
    """
    full = {a.slug: a for issue in reread.values() for a in issue.articles}
    unit_of = {r.slug: r.unit for r in rows}
    newest = [r.slug for r in rows[: pages.LATEST + 1]]
    shown: set[str] = set()
    body: set[str] = set()  # articles whose HTML a task needs
    n = settings.feeds.max_items
    for kind, _, _, args in planner.tasks:
        if kind == "article":
            shown.update((args[0], *related.get(args[0], ()), *newest))
            body.add(args[0])
        elif kind in ("archive", "tag"):
            listed = tags[args[0]] if args[0] else rows
            chunk = next(c for c in pages.page_chunks(len(listed)) if c[0] == args[1])
            shown.update(r.slug for r in listed[chunk[1] : chunk[2]])
        elif kind == "feeds":
            listed = tags[args[0]] if args[0] else rows
            shown.update(r.slug for r in listed[:n])
            body.update(r.slug for r in listed[:n])
    for path in {unit_of[s] for s in shown if s not in full}:
        issue = state.units[path].issue
        full.update((a.slug, a) for a in (issue.articles if issue else ()))
    need = {full[s].content_hash for s in body}
    html = {h: new_html[h] for h in need if h in new_html}
    html.update(store.get(need - set(html)))
    secret = settings.secret_key() if mailed or any(t[0] == "email" for t in planner.tasks) else b""
    return {
        "settings": settings,
        "out": out,
        "old": planner.old,
        "articles": rows,
        "by_slug": full,
        "newest": [full[s] for s in newest if s in full],
        "tags": tags,
        "related": related,
        "html": html,
        "reread": reread,
        "state": state,
        "secret": secret,
    }


def _run(
    planner: Planner,
    shared: dict[str, Any],
    jobs: int,
    progress: Progress | None,
    helper: EmailHelper | None,
    mailed: list[Any],
) -> list[str]:
    tasks = planner.tasks
    done: list[list[Written]] = []
    if mailed and helper is not None:
        got = helper.collect()
        if got is None:  # the helper failed: render them here, to raise the error the user should see
            tasks = tasks + mailed
        else:
            done = got
    tasks = sorted(tasks, key=lambda t: _COST[t[0]])
    results: Iterable[list[Written]] = parallel_map(run_task, tasks, jobs, shared, chunk=8)
    if progress is not None and len(tasks) >= 100:
        results = progress(results, len(tasks), "pages, feeds and emails")
    written = []
    for made in itertools.chain(done, results):
        for path, key, size, changed in made:
            planner.outputs[path] = (key, size)
            if changed:
                written.append(path)
    return written


def _media(p: Planner, issues: list[UnitEntry], written: list[str]) -> None:
    """Copy each local image of a published article (hero and body) to its site path, once per path."""
    seen: set[str] = set()
    for u in issues:
        for image, source in u.media:
            if image in seen:
                continue
            seen.add(image)
            st = os.stat(source)
            key = digest(source, st.st_size, st.st_mtime_ns)
            if p.want(image, key):
                with open(source, "rb") as fh:
                    _put(p, image, key, fh.read(), written)
            else:
                p.outputs[image] = p.old[image]


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
