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

import array
import gc
import hashlib
import os
import pickle
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from publisher.config import Settings
from publisher.content.scan import Unit
from publisher.errors import Problem
from publisher.models import Issue
from publisher.packing import Packed, pack, unpack
from publisher.related import RelatedIndex

VERSION = 13  # bump when the cached shapes change


class Row(NamedTuple):
    """A published article as the build plans with it (the full Article is loaded only to render)."""

    slug: str
    tags: tuple[str, ...]
    unit: str  # the UnitEntry it belongs to
    draft: bool = False  # never true: rows are published articles (related news reads this)


class UnitEntry(NamedTuple):
    """One issue (file or folder) as loaded last time, valid while its files are unchanged.

    A named tuple: ten thousand of them pickle and unpickle several times faster than
    objects. Light fields are what every build reads; the issue itself (articles without
    their bodies) stays pickled in ``payload`` until a page or email needs it.
    """

    fingerprint: str  # hash of its .md files' bytes
    payload: bytes  # pickled (issue or None, draft articles)
    images: tuple[tuple[str, int, int], ...]  # (path, size, mtime_ns) of image files it read
    stats: tuple[tuple[str, int, int], ...]  # (path, size, mtime_ns) of its .md files
    keys: tuple[tuple[str, str, str, str], ...]  # (slug, article key, list key, related key)
    issue_slug: str  # "" when the unit holds no issue
    issue_source: str
    published: bool  # a published issue with at least one published article
    stamp: float  # the issue's date as a timestamp (issue order)
    rows: tuple[tuple[str, float, tuple[str, ...]], ...]  # published articles: (slug, timestamp, tags)
    hashes: tuple[str, ...]  # content hashes of all its articles (their HTML is cached)
    media: tuple[tuple[str, str], ...]  # published local images: (site path, source file)

    @property
    def issue(self) -> Issue | None:
        """The issue (articles without bodies), unpickled afresh."""
        return pickle.loads(self.payload)[0]  # type: ignore[no-any-return]


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
    folder_stamps: dict[str, int] = field(default_factory=dict)  # mtime_ns of every folder listed
    units: dict[str, UnitEntry] = field(default_factory=dict)  # kept in units.pickle + units.journal
    related: RelatedIndex | None = None
    outputs: dict[str, OutputEntry] = field(default_factory=dict)  # the manifest: path -> entry
    folders_out: dict[str, int] = field(default_factory=dict)  # big output folders' mtimes
    email_base: str = ""  # what every email's key was made from, beside its issue's files
    units_id: str = ""  # names the units.pickle this state goes with
    journal: int = 0  # units re-written to units.journal since units.pickle
    loaded: dict[str, UnitEntry] = field(default_factory=dict, repr=False)  # units as loaded

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__, units={}, loaded={})
        packed = _pack_outputs(self.outputs)
        if packed is not None:
            state["outputs"], state["_outputs"] = {}, packed
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        packed = state.pop("_outputs", None)
        self.__dict__.update(state)
        if packed is not None:
            self.outputs = _unpack_outputs(packed)


def _pack_outputs(outputs: dict[str, OutputEntry]) -> tuple[Packed, str, bytes] | None:
    """The manifest (40,000 entries with emails) as two strings and an array, not 120,000 objects.

    Every key is a 32-character hash, so the keys are simply concatenated. None (then the
    dict is pickled as it is) if a path holds a NUL or a key is of another length.
    """
    paths = pack(list(outputs))
    keys = "".join(entry[0] for entry in outputs.values())
    if paths is None or len(keys) != 32 * len(outputs):
        return None
    sizes = array.array("q", (entry[1] for entry in outputs.values()))
    return paths, keys, sizes.tobytes()


def _unpack_outputs(packed: tuple[Packed, str, bytes]) -> dict[str, OutputEntry]:
    paths, keys, raw = packed
    sizes = array.array("q")
    sizes.frombytes(raw)
    split = [keys[i : i + 32] for i in range(0, len(keys), 32)]
    return dict(zip(unpack(paths), zip(split, sizes.tolist(), strict=True), strict=True))


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


def files_digest(paths: list[Path], known: dict[str, bytes] | None = None) -> str:
    """Hash of the names and bytes of files (a missing file hashes as missing).

    ``known``: bytes already read, by path (the build's loader has just read them).
    """
    h = hashlib.blake2b(digest_size=16)
    for p in sorted(paths):
        name = str(p)
        h.update(name.encode("utf-8", "surrogatepass") + b"\0")
        try:
            h.update(known[name] if known is not None and name in known else p.read_bytes())
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
def _no_gc(freeze: bool = False) -> Iterator[None]:
    """Pause the cyclic GC: unpickling ~100k objects otherwise triggers it over and over (4x slower).

    ``freeze``: then move every object to the permanent generation (``gc.freeze``), so the
    first collection after does not walk the ~300,000 just loaded (60 ms here); the build
    unfreezes them when it ends. They hold no cycles: reference counting still frees them.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was:
            gc.enable()


_UNREADABLE = (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError, ValueError)


def load_state(settings: Settings, out_dir: Path, *, freeze: bool = False) -> CacheState:
    """The last build's state (empty if missing, unreadable or of another version).

    ``freeze``: see ``_no_gc``; the caller is then to call ``gc.unfreeze()`` when done.
    """
    folder = cache_dir(settings, out_dir)
    with _no_gc(freeze):
        try:
            with (folder / "state.pickle").open("rb") as fh:
                state = pickle.load(fh)
            if not isinstance(state, CacheState) or state.version != VERSION:
                return CacheState()
            state.units = _load_units(folder, state.units_id)
        except _UNREADABLE:
            return CacheState()
        state.loaded = dict(state.units)
        return state


def _load_units(folder: Path, units_id: str) -> dict[str, UnitEntry]:
    """units.pickle, then the changes journalled since (a torn last record is dropped)."""
    with (folder / "units.pickle").open("rb") as fh:
        ident, units = pickle.load(fh)
    if ident != units_id:
        raise ValueError("units.pickle belongs to another state")
    try:
        with (folder / "units.journal").open("rb") as fh:
            while True:
                ident, changes = pickle.load(fh)
                if ident != units_id:
                    break
                for path, entry in changes.items():
                    if entry is None:
                        units.pop(path, None)
                    else:
                        units[path] = entry
    except (OSError, EOFError, pickle.UnpicklingError):
        pass
    return units  # type: ignore[no-any-return]


def save_state(settings: Settings, out_dir: Path, state: CacheState) -> None:
    """Write atomically: a build killed half-way leaves the previous cache intact.

    The units (one per issue, the bulk of the cache) are appended to a journal when few
    changed, so saving after an edit writes one entry, not ten thousand.
    """
    folder = cache_dir(settings, out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    changes: dict[str, UnitEntry | None] = {
        path: entry for path, entry in state.units.items() if state.loaded.get(path) is not entry
    }
    changes.update((path, None) for path in state.loaded.keys() - state.units.keys())
    if changes:
        if state.units_id and state.journal + len(changes) <= max(64, len(state.units) // 10):
            with (folder / "units.journal").open("ab") as fh:
                pickle.dump((state.units_id, changes), fh, protocol=pickle.HIGHEST_PROTOCOL)
            state.journal += len(changes)
        else:
            state.units_id, state.journal = os.urandom(8).hex(), 0
            _atomic(folder / "units.pickle", (state.units_id, state.units))
            (folder / "units.journal").unlink(missing_ok=True)
    _atomic(folder / "state.pickle", state)
    state.loaded = dict(state.units)


def _atomic(path: Path, value: Any) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh, _no_gc():
        pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


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
