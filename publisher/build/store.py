"""The build cache: one SQLite file per output folder, under ``paths.state``.

Three tables: ``units`` (each issue as loaded, pickled, one row per issue, so
saving after one edit writes one row, not ten thousand), ``html`` (article HTML
by content hash, read only for the few pages and feeds a rebuild re-renders)
and ``meta`` (pickled blobs: the scan, the related-news index, the manifest of
outputs, a few keys). The manifest is one blob, not a row per output: every
build reads all of it, and 41,000 rows cost ~85 ms to read here against ~20 ms
to unpickle one dict. One transaction per save: a build killed half-way leaves
the previous cache whole.
It is a cache, so durability is traded for speed (``synchronous=OFF``); a file
that is torn, foreign or of another version is simply started afresh.
"""

from __future__ import annotations

import gc
import pickle
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from publisher.build.cache import VERSION, CacheState, Scan, UnitEntry
from publisher.build.keys import digest
from publisher.config import Settings

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS units (path TEXT PRIMARY KEY, entry BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS html (hash TEXT PRIMARY KEY, html TEXT NOT NULL)",
)
_LIGHT = ("loader_key", "folders_out", "email_base")  # CacheState fields kept in one meta row
_OLD_FILES = ("state.pickle", "units.pickle", "units.journal", "html.sqlite")  # before the one file
_UNREADABLE = (
    sqlite3.DatabaseError,
    pickle.UnpicklingError,
    EOFError,
    AttributeError,
    ImportError,
    TypeError,
)
_P = pickle.HIGHEST_PROTOCOL


def cache_dir(settings: Settings, out_dir: Path) -> Path:
    """One cache per output folder, so `--out elsewhere` never confuses the default site's."""
    return settings.paths.state / "build" / digest(str(out_dir.resolve()))[:16]


class BuildCache:
    """The cache file, open for one build: ``load``, then ``put_html``/``save`` as the build goes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        for name in _OLD_FILES:
            (path.parent / name).unlink(missing_ok=True)
        self.path = path
        try:
            self.db = self._open()
        except sqlite3.DatabaseError:  # torn or foreign: start afresh
            for name in (path.name, path.name + "-wal", path.name + "-shm"):
                (path.parent / name).unlink(missing_ok=True)
            self.db = self._open()

    @classmethod
    @contextmanager
    def opened(cls, settings: Settings, out_dir: Path) -> Iterator[BuildCache]:
        cache = cls(cache_dir(settings, out_dir) / "cache.sqlite")
        try:
            yield cache
        finally:
            cache.db.close()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        for statement in _SCHEMA:
            db.execute(statement)
        row = db.execute("SELECT value FROM meta WHERE name = 'version'").fetchone()
        if row is not None and row[0] != VERSION:
            with _transaction(db):
                for table in ("meta", "units", "html"):
                    db.execute(f"DELETE FROM {table}")
        return db

    def load(self, *, freeze: bool = False) -> CacheState:
        """The last build's state (empty if missing or unreadable).

        ``freeze``: see ``_no_gc``; the caller is then to call ``gc.unfreeze()`` when done.
        """
        with _no_gc(freeze):
            try:
                state = self._read()
            except _UNREADABLE:
                state = CacheState()
        state.loaded = dict(state.units)
        return state

    def _read(self) -> CacheState:
        meta = dict(self.db.execute("SELECT name, value FROM meta"))
        if meta.get("version") != VERSION:
            return CacheState()
        state = CacheState(**pickle.loads(meta["light"]))
        state.scan = pickle.loads(meta["scan"])
        state.related = pickle.loads(meta["related"]) if "related" in meta else None
        state.units = {path: pickle.loads(entry) for path, entry in self.db.execute("SELECT * FROM units")}
        state.outputs = pickle.loads(meta["outputs"])
        if not isinstance(state.scan, Scan) or not all(
            isinstance(u, UnitEntry) for u in state.units.values()
        ):
            return CacheState()
        return state

    def save(self, state: CacheState) -> None:
        """Write the units that changed since ``load`` and the blobs, in one transaction."""
        loaded, units = state.loaded, state.units
        changed = [(p, pickle.dumps(u, _P)) for p, u in units.items() if loaded.get(p) is not u]
        gone = [(p,) for p in loaded.keys() - units.keys()]
        light = {name: getattr(state, name) for name in _LIGHT}
        meta: list[tuple[str, Any]] = [
            ("version", VERSION),
            ("light", pickle.dumps(light, _P)),
            ("scan", pickle.dumps(state.scan, _P)),
            ("outputs", pickle.dumps(state.outputs, _P)),
        ]
        if state.related is not None:
            meta.append(("related", pickle.dumps(state.related, _P)))
        with _no_gc(), _transaction(self.db):
            self.db.executemany("INSERT OR REPLACE INTO units VALUES (?, ?)", changed)
            self.db.executemany("DELETE FROM units WHERE path = ?", gone)
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta)
            if state.related is None:
                self.db.execute("DELETE FROM meta WHERE name = 'related'")
        state.loaded = dict(units)

    def get_html(self, hashes: Iterable[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(hashes))
        out: dict[str, str] = {}
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            marks = ",".join("?" * len(part))
            out.update(self.db.execute(f"SELECT hash, html FROM html WHERE hash IN ({marks})", part))
        return out

    def put_html(self, items: dict[str, str]) -> None:
        if items:
            with _transaction(self.db):
                self.db.executemany("INSERT OR REPLACE INTO html VALUES (?, ?)", items.items())

    def keep_html(self, hashes: set[str]) -> None:
        """Forget HTML no article has any more (edited or removed articles)."""
        gone = {h for (h,) in self.db.execute("SELECT hash FROM html")} - hashes
        if gone:
            with _transaction(self.db):
                self.db.executemany("DELETE FROM html WHERE hash = ?", [(h,) for h in gone])


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


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
