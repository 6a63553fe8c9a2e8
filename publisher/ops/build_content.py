"""Load the content and render article HTML for the build, reusing what did not change.

The content stage (``publisher.content``) parses every file each time, which
is right for `publisher check` but too slow for a rebuild of a large archive
after one edit: here each issue is re-read only when its files' bytes (or the
images it uses) changed, and each article's HTML is re-rendered only when its
source did. Cold work is spread over a process pool.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from publisher.config import Settings
from publisher.content.loader import Loader, hint_for
from publisher.content.scan import Unit, scan
from publisher.errors import ContentError, Problem
from publisher.models import Article, Issue, Library
from publisher.ops.build_cache import CacheState, UnitEntry, digest, files_digest
from publisher.render.markdown import markdown_to_html

T = TypeVar("T")
R = TypeVar("R")
PARALLEL_MIN = 200  # below this many items a pool costs more than it saves

# Set in the parent just before the pool forks, read by the children (never at import).
_SHARED: dict[str, Any] = {}


def jobs_default() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def parallel_map(fn: Callable[[T], R], items: Sequence[T], jobs: int, shared: dict[str, Any]) -> Iterator[R]:
    """Map in order over a fork pool (children inherit ``shared`` without pickling it).

    A generator, so a progress bar can follow the results as they come.
    """
    _SHARED.update(shared)
    try:
        if jobs <= 1 or len(items) < PARALLEL_MIN:
            yield from map(fn, items)
            return
        chunk = max(16, min(256, len(items) // (jobs * 8)))
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            yield from pool.map(fn, items, chunksize=chunk)
    finally:
        _SHARED.clear()


def shared(name: str) -> Any:
    return _SHARED[name]


def article_key(a: Article) -> str:
    """An article is a function of its source bytes, its path and its image (and the settings)."""
    return digest(a.content_hash, str(a.source), a.issue_slug, a.image, a.image_length, a.image_type)


def entry_key(a: Article) -> str:
    """What a list shows of an article (a list's page changes only if one of these does)."""
    return digest(a.slug, a.title, a.date.isoformat(), a.summary, a.author)


# -- loading ------------------------------------------------------------------------------


def _unit_files(unit: Unit) -> list[Path]:
    return sorted(p for p in unit.paths if p.suffix.lower() == ".md")


def _stats(files: list[Path]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for f in files:
        try:
            st = os.stat(f)
            out.append((str(f), st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((str(f), -1, -1))
    return tuple(out)


def _image_stats(articles: Iterable[Article]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for a in articles:
        if a.image_file is not None:
            try:
                st = a.image_file.stat()
                out.append((str(a.image_file), st.st_size, st.st_mtime_ns))
            except OSError:
                out.append((str(a.image_file), -1, -1))
    return tuple(sorted(out))


def _images_unchanged(images: tuple[tuple[str, int, int], ...]) -> bool:
    for path, size, mtime in images:
        try:
            st = os.stat(path)
        except OSError:
            return False
        if (st.st_size, st.st_mtime_ns) != (size, mtime):
            return False
    return True


def _load_unit(item: tuple[Unit, str]) -> tuple[str, UnitEntry | None, list[Problem]]:
    unit, fingerprint = item
    loader = Loader(shared("settings"))
    issue, drafts = loader.issue(unit)
    if loader.problems:
        return str(unit.path), None, loader.problems
    arts = list(issue.articles if issue else ()) + list(drafts)
    files = _unit_files(unit)
    keys = {a.slug: (article_key(a), entry_key(a)) for a in arts}
    entry = UnitEntry(fingerprint, issue, tuple(drafts), _image_stats(arts), _stats(files))
    entry.files = tuple(str(f) for f in files)
    entry.keys = keys
    return str(unit.path), entry, []


def load_library(settings: Settings, state: CacheState, jobs: int) -> tuple[Library, int]:
    """The library (drafts included), re-reading only changed issues; (library, issues re-read).

    Raises ContentError with every problem, as ``publisher.content.load_content`` does.
    """
    found = scan(settings)
    key = digest(settings.site.timezone, settings.site.url, str(settings.paths.issues))
    if state.loader_key != key:
        state.units.clear()
        state.loader_key = key
    fresh: dict[str, UnitEntry] = {}
    todo: list[tuple[Unit, str]] = []
    for unit in found.units:
        old = state.units.get(str(unit.path))
        files = _unit_files(unit)
        stats = _stats(files)
        if old is not None and old.stats == stats and _images_unchanged(old.images):
            fresh[str(unit.path)] = old  # same sizes and mtimes: no need to read the bytes
            continue
        fp = files_digest(files)
        if old is not None and old.fingerprint == fp and _images_unchanged(old.images):
            old.stats = stats  # touched but not changed
            fresh[str(unit.path)] = old
        else:
            todo.append((unit, fp))
    problems = [p.problem for p in found.problems]
    for path, entry, errs in parallel_map(_load_unit, todo, jobs, {"settings": settings}):
        problems.extend(errs)
        if entry is not None:
            fresh[path] = entry
    state.units = fresh
    if problems:
        ordered = sorted(problems, key=lambda p: (p.where, p.line or 0))
        raise ContentError(ordered, hint=hint_for(ordered))
    issues: list[Issue] = [e.issue for e in fresh.values() if e.issue is not None]
    issues.sort(key=lambda i: (-i.date.timestamp(), i.slug))
    return Library(tuple(issues)), len(todo)


# -- article HTML -------------------------------------------------------------------------


def _render_one(body: str) -> str:
    return markdown_to_html(body)


def render_html(articles: Sequence[Article], state: CacheState, jobs: int) -> tuple[dict[str, str], int]:
    """slug -> article HTML, rendering only sources not seen before; (html, rendered count)."""
    todo = [a for a in articles if a.content_hash not in state.html]
    unique = list({a.content_hash: a for a in todo}.values())
    rendered = list(parallel_map(_render_one, [a.body for a in unique], jobs, {}))
    new = dict(zip((a.content_hash for a in unique), rendered, strict=True))
    keep = {a.content_hash for a in articles}
    state.html = {h: v for h, v in state.html.items() if h in keep} | new
    return {a.slug: state.html[a.content_hash] for a in articles}, len(unique)
