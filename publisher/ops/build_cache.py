"""The build's memory between runs: parsed issues, article HTML, related news, outputs.

Kept under ``paths.state`` (machine-local, never published), one cache per
output folder, in two files: ``state.pickle`` (what every build reads: the
issues without their bodies, the related-news index, the manifest of
outputs) and ``html.sqlite`` (article HTML by content hash, read only for the
few pages and feeds a rebuild re-renders, updated row by row). Every entry is
keyed by what it was made from (file bytes, settings, templates), so a stale
entry is never used: it is simply recomputed. Losing the cache costs one cold
build, nothing else, except that outputs of the previous build can no longer
be recognised as stale and removed.
"""

from __future__ import annotations

import gc
import hashlib
import os
import pickle
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from publisher.config import Settings
from publisher.content.scan import Unit
from publisher.errors import Problem
from publisher.models import Article, Issue
from publisher.related import RelatedIndex

VERSION = 6  # bump when the cached shapes change


@dataclass
class UnitEntry:
    """One issue (file or folder) as loaded last time, valid while its files are unchanged."""

    fingerprint: str  # hash of its .md files' bytes
    issue: Issue | None  # articles without their bodies
    drafts: tuple[Article, ...]
    images: tuple[tuple[str, int, int], ...]  # (path, size, mtime_ns) of image files it read
    stats: tuple[tuple[str, int, int], ...] = ()  # (path, size, mtime_ns) of its .md files
    keys: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # slug -> (article, list, related)


# An output as the manifest records it: (hash of everything it was made from, size in bytes).
# A plain tuple: tens of thousands of them unpickle much faster than objects.
OutputEntry = tuple[str, int]


@dataclass
class CacheState:
    version: int = VERSION
    loader_key: str = ""  # settings that change how files are read (time zone, domain, paths)
    listing: tuple[tuple[str, bool], ...] | None = None  # every path under issues/: the scan's input
    scan_units: list[tuple[str, bool]] = field(default_factory=list)  # (path, is folder), scan order
    folders: dict[str, Unit] = field(default_factory=dict)
    scan_problems: tuple[Problem, ...] = ()
    units: dict[str, UnitEntry] = field(default_factory=dict)
    related: RelatedIndex | None = None
    outputs: dict[str, OutputEntry] = field(default_factory=dict)  # the manifest: path -> entry


def hkey(*parts: str) -> str:
    """digest() for strings only: the hot path of page keys (tens of thousands per build)."""
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def digest(*parts: Any) -> str:
    """A short stable hash of values' reprs (frozen dataclasses and tuples repr deterministically)."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part if isinstance(part, bytes) else repr(part).encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()


def files_digest(paths: list[Path]) -> str:
    """Hash of the names and bytes of files (a missing file hashes as missing)."""
    h = hashlib.blake2b(digest_size=16)
    for p in sorted(paths):
        h.update(str(p).encode("utf-8", "surrogatepass") + b"\0")
        try:
            h.update(p.read_bytes())
        except OSError:
            h.update(b"\x00missing")
        h.update(b"\x1f")
    return h.hexdigest()


def tree_digest(root: Path) -> str:
    """Hash of every file under ``root`` (the templates: any change re-renders pages)."""
    if not root.is_dir():
        return "none"
    return files_digest([p for p in root.rglob("*") if p.is_file()])


def cache_dir(settings: Settings, out_dir: Path) -> Path:
    """One cache per output folder, so `--out elsewhere` never confuses the default site's."""
    return settings.paths.state / "build" / digest(str(out_dir.resolve()))[:16]


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic GC: unpickling ~100k objects otherwise triggers it over and over (4x slower)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def load_state(settings: Settings, out_dir: Path) -> CacheState:
    path = cache_dir(settings, out_dir) / "state.pickle"
    try:
        with path.open("rb") as fh, _no_gc():
            state = pickle.load(fh)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError, ValueError):
        return CacheState()
    if not isinstance(state, CacheState) or state.version != VERSION:
        return CacheState()
    return state


def save_state(settings: Settings, out_dir: Path, state: CacheState) -> None:
    """Write atomically: a build killed half-way leaves the previous cache intact."""
    folder = cache_dir(settings, out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"state.pickle.{os.getpid()}.tmp"
    with tmp.open("wb") as fh, _no_gc():
        pickle.dump(state, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, folder / "state.pickle")


class HtmlStore:
    """Article HTML by content hash in SQLite: a rebuild reads the few rows it needs.

    A cache, so durability is traded for speed (no fsync); a torn write is
    caught by SQLite and the store is then started afresh.
    """

    def __init__(self, settings: Settings, out_dir: Path) -> None:
        folder = cache_dir(settings, out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "html.sqlite"
        try:
            self.db = self._open()
            self.db.execute("SELECT count(*) FROM html").fetchone()
        except sqlite3.DatabaseError:
            self.path.unlink(missing_ok=True)
            self.db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("CREATE TABLE IF NOT EXISTS html (hash TEXT PRIMARY KEY, html TEXT NOT NULL)")
        return db

    def get(self, hashes: Iterable[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(hashes))
        out: dict[str, str] = {}
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            marks = ",".join("?" * len(part))
            out.update(self.db.execute(f"SELECT hash, html FROM html WHERE hash IN ({marks})", part))
        return out

    def put(self, items: dict[str, str]) -> None:
        if items:
            with self._transaction():
                self.db.executemany("INSERT OR REPLACE INTO html VALUES (?, ?)", items.items())

    def keep_only(self, hashes: set[str]) -> None:
        """Forget HTML no article has any more (edited or removed articles)."""
        known = {h for (h,) in self.db.execute("SELECT hash FROM html")}
        gone = known - hashes
        if gone:
            with self._transaction():
                self.db.executemany("DELETE FROM html WHERE hash = ?", [(h,) for h in gone])

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()
