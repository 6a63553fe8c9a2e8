"""Load the content for the build: each issue re-read only when its files changed.

The content stage (``publisher.content``) parses every file each time, which
is right for `publisher check` but too slow for a rebuild of a large archive
after one edit. Here the folder listing is compared with the last build's
(an unchanged listing means an unchanged scan), each issue's files are
stat-ed (and hashed only when their size or mtime moved), and only changed
issues are parsed. Parsing runs in a process pool, and each worker also renders
the articles' Markdown and counts their terms for related news, so the three
costliest per-article steps share one pass over both cores.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from publisher.build.cache import CacheState, Row, Scan, UnitEntry
from publisher.build.keys import digest, files_digest, hkey
from publisher.build.pool import parallel_map
from publisher.config import Settings
from publisher.content import body_media
from publisher.content.loader import Loader, hint_for
from publisher.content.scan import Unit, scan
from publisher.errors import ContentError, Problem
from publisher.models import Article, Issue
from publisher.related import DocTerms, RelatedParams, doc_terms
from publisher.render.markdown import markdown_to_html


@dataclass(frozen=True)
class LoadContext:
    """What each loading worker reads: the same for every issue of one build."""

    settings: Settings
    related: RelatedParams | None  # count terms for related news (None: related lists are off)
    emails: bool  # send the re-read issues back whole (an email needs the bodies)
    loader: Loader  # one per worker: it remembers the folders it resolved


@dataclass
class Loaded:
    """What ``load_library`` re-read: issues by slug, their articles' HTML and term counts."""

    reread: dict[str, Issue] = field(default_factory=dict)  # in full if emails, else without bodies
    html: dict[str, str] = field(default_factory=dict)  # published articles' HTML by content hash
    terms: dict[str, DocTerms] = field(default_factory=dict)  # published articles' terms by slug


def article_key(a: Article) -> str:
    """An article is a function of its source bytes, its path and its image (and the settings)."""
    return digest(a.content_hash, str(a.source), a.issue_slug, a.image, a.image_length, a.image_type)


def entry_key(a: Article) -> str:
    """What a list shows of an article (a list's page changes only if one of these does)."""
    return digest(a.slug, a.title, a.date.isoformat(), a.summary, a.author)


def related_key(a: Article) -> str:
    """Changes whenever what related news reads of the article does (its bytes and its date)."""
    return hkey(a.content_hash, a.date.isoformat())


# -- the folder listing ---------------------------------------------------------------------


def listing(root: Path) -> tuple[tuple[str, bool], ...]:
    """Every path under ``root`` with whether it is a file: all that ``scan`` looks at."""
    out: list[tuple[str, bool]] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            is_file = e.is_file()
            out.append((e.path, is_file))
            if not is_file and e.is_dir():
                stack.append(Path(e.path))
    out.sort()
    return tuple(out)


def _stats(files: Iterable[str]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for f in files:
        try:
            st = os.stat(f)
            out.append((f, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((f, -1, -1))
    return tuple(out)


def _image_stats(articles: Iterable[Article]) -> tuple[tuple[str, int, int], ...]:
    """The hero and body images read: a changed or deleted one re-reads (so re-checks) the issue."""
    files = [str(a.image_file) for a in articles if a.image_file is not None]
    files += [source for a in articles for _, source in body_media(a)]
    return tuple(sorted(set(_stats(files))))


def _media(articles: Iterable[Article]) -> tuple[tuple[str, str], ...]:
    """(site path, source file) of every local image the published ``articles`` show."""
    out = [(a.image, str(a.image_file)) for a in articles if a.image and a.image_file]
    return tuple(out + [m for a in articles for m in body_media(a)])


def _unit_files(unit: Unit) -> list[str]:
    return sorted(str(p) for p in unit.paths if p.suffix.lower() == ".md")


# -- loading in the workers -----------------------------------------------------------------

UnitLoaded = tuple[str, UnitEntry | None, list[Problem], Issue | None, dict[str, str], dict[str, DocTerms]]


def _strip(a: Article) -> Article:
    """The cached copy: the body is only ever needed again when the file changes (then re-read)."""
    return replace(a, body="")


def _load_unit(c: LoadContext, item: tuple[Unit, str]) -> UnitLoaded:
    """Parse one issue, render its articles' Markdown and count their terms (in a pool child)."""
    unit, fingerprint = item
    stats = _stats(_unit_files(unit))  # before reading: a file changed meanwhile is read again next time
    loader = c.loader
    loader.problems = []
    loader.warnings = []  # `publisher check` shows them; the build does not
    loader.read = {} if not fingerprint else None
    issue, drafts = loader.issue(unit)
    # a new unit is hashed from the very bytes just parsed (no second read of each file)
    fingerprint = fingerprint or files_digest([Path(f) for f, _, _ in stats], loader.read)
    loader.read = None
    if loader.problems:
        return str(unit.path), None, loader.problems, None, {}, {}
    live = list(issue.articles if issue else ())
    arts = live + list(drafts)
    published = [a for a in live if not a.draft and issue is not None and not issue.draft]
    html = {a.content_hash: markdown_to_html(a.body) for a in published}  # drafts are never shown
    params = c.related
    terms = {a.slug: doc_terms(a, params) for a in published} if params is not None else {}
    kept = replace(issue, articles=tuple(_strip(a) for a in issue.articles)) if issue else None
    payload = pickle.dumps((kept, tuple(_strip(a) for a in drafts)), protocol=pickle.HIGHEST_PROTOCOL)
    entry = UnitEntry(
        fingerprint=fingerprint,
        payload=payload,
        images=_image_stats(arts),
        stats=stats,
        keys=tuple((a.slug, article_key(a), entry_key(a), related_key(a)) for a in arts),
        issue_slug=issue.slug if issue else "",
        issue_source=str(issue.source) if issue else "",
        published=bool(published),
        stamp=issue.date.timestamp() if issue else 0.0,
        rows=tuple((a.slug, a.date.timestamp(), a.tags) for a in published),
        hashes=tuple(a.content_hash for a in arts),
        media=_media(published),
    )
    # the bodies travel back only when an email needs them (10,000 of them are ~20 MB of pickle)
    return str(unit.path), entry, [], issue if c.emails else kept, html, terms


def _folders_unchanged(stamps: dict[str, int]) -> bool:
    """No folder's mtime moved: nothing was added, removed or renamed (an edit in place is not)."""
    try:
        return bool(stamps) and all(os.stat(f).st_mtime_ns == t for f, t in stamps.items())
    except OSError:
        return False


def _units(settings: Settings, state: CacheState) -> list[tuple[str, bool]]:
    """The scan's units as (path, is folder); the scan itself only when the folder listing changed."""
    last = state.scan
    if last.listing is not None and _folders_unchanged(last.folder_stamps):
        return last.units
    root = settings.paths.issues
    stamps = {}
    if root.is_dir():
        stamps[str(root)] = os.stat(root).st_mtime_ns
    seen = listing(root) if root.is_dir() else None
    for path, is_file in seen or ():
        if not is_file and os.path.isdir(path):
            stamps[path] = os.stat(path).st_mtime_ns
    last.folder_stamps = stamps
    if seen is None or seen != last.listing:
        found = scan(settings)  # raises when the folder is missing
        state.scan = Scan(
            listing=seen,
            units=[(str(u.path), u.is_folder) for u in found.units],
            folders={str(u.path): u for u in found.units if u.is_folder},
            problems=tuple(p.problem for p in found.problems),
            folder_stamps=stamps,
        )
    return state.scan.units


def _file_unit(path: str) -> Unit:
    p = Path(path)
    return Unit(p.stem, p, is_folder=False)


def load_library(
    settings: Settings,
    state: CacheState,
    jobs: int,
    related: RelatedParams | None,
    *,
    salt: str = "",
    emails: bool = True,
    start_method: str | None = None,
) -> Loaded:
    """Bring ``state.units`` in line with the files, re-reading only changed issues.

    Raises ContentError with every problem, as ``publisher.content.load_content`` does.
    ``salt`` (e.g. the Markdown renderer's version) drops every cached issue when it changes.
    """
    key = digest(settings.site.timezone, settings.site.url, str(settings.paths.issues), related, salt)
    if state.loader_key != key:
        state.units.clear()
        state.loader_key = key
    fresh, todo = _unchanged(settings, state)
    problems = list(state.scan.problems)
    loaded = Loaded()
    context = LoadContext(settings, related, emails, Loader(settings))
    for path, entry, errs, issue, unit_html, unit_terms in parallel_map(
        _load_unit, todo, jobs, context, start_method=start_method
    ):
        problems.extend(errs)
        if entry is not None:
            fresh[path] = entry
            loaded.html.update(unit_html)
            loaded.terms.update(unit_terms)
            if issue is not None:
                loaded.reread[issue.slug] = issue
    state.units = fresh
    if problems:
        ordered = sorted(problems, key=lambda p: (p.where, p.line or 0))
        raise ContentError(ordered, hint=hint_for(ordered))
    return loaded


def _unchanged(settings: Settings, state: CacheState) -> tuple[dict[str, UnitEntry], list[tuple[Unit, str]]]:
    """(cached units whose files are unchanged, (unit, fingerprint or "") of the rest to read)."""
    fresh: dict[str, UnitEntry] = {}
    todo: list[tuple[Unit, str]] = []
    for path, folder in _units(settings, state):
        old = state.units.get(path)
        if old is not None and old.stats == _stats(f for f, _, _ in old.stats) and _same(old.images):
            fresh[path] = old  # same sizes and mtimes: no need to read the bytes
            continue
        unit = state.folders[path] if folder else _file_unit(path)
        if old is None:  # new to the cache: the worker reads and hashes it (no serial read here)
            todo.append((unit, ""))
            continue
        files = _unit_files(unit)
        fp = files_digest([Path(f) for f in files])
        if old.fingerprint == fp and _same(old.images):
            fresh[path] = old._replace(stats=_stats(files))  # touched but not changed
        else:
            todo.append((unit, fp))
    return fresh, todo


def published_rows(state: CacheState) -> list[Row]:
    """``Library.articles`` as rows: published, newest first, ties by slug."""
    live = [
        (-stamp, slug, Row(slug, tags, path))
        for path, u in state.units.items()
        if u.published
        for slug, stamp, tags in u.rows
    ]
    live.sort(key=lambda t: (t[0], t[1]))
    return [r for _, _, r in live]


def published_issues(state: CacheState) -> list[UnitEntry]:
    """Units holding a published issue, newest first (``Library.published_issues`` order)."""
    units = [u for u in state.units.values() if u.published]
    units.sort(key=lambda u: (-u.stamp, u.issue_slug))
    return units


def _same(images: tuple[tuple[str, int, int], ...]) -> bool:
    return not images or _stats(f for f, _, _ in images) == images


def reload_issue(settings: Settings, folders: dict[str, Unit], source: Path) -> Issue:
    """An issue in full (bodies included) from its unchanged files: for an email to remake."""
    folder = str(source.parent)
    unit = folders[folder] if source.name == "index.md" and folder in folders else _file_unit(str(source))
    issue, _ = Loader(settings).issue(unit)
    if issue is None:
        raise ContentError([Problem(str(source), "changed while the build was running; build again")])
    return issue


def full_articles(settings: Settings, state: CacheState, units: list[str], slugs: set[str]) -> list[Article]:
    """Articles ``slugs`` of the cached ``units`` read again in full from their unchanged files."""
    out: list[Article] = []
    for path in sorted(set(units)):
        entry = state.units[path]
        out.extend(
            a
            for a in reload_issue(settings, state.folders, Path(entry.issue_source)).articles
            if a.slug in slugs
        )
    return out
