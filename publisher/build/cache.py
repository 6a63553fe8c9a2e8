"""What the build remembers between runs, as plain values (``store.BuildCache`` keeps them).

Every entry is keyed by what it was made from (file bytes, settings, templates),
so a stale entry is never used: it is simply recomputed. Losing the cache costs
one cold build, nothing else, except that outputs of the previous build can no
longer be recognised as stale and removed.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import NamedTuple

from publisher.content.scan import Unit
from publisher.errors import Problem
from publisher.models import Issue
from publisher.related import RelatedIndex

VERSION = 15  # bump when the cached shapes change


class Row(NamedTuple):
    """A published article as the build plans with it (the full Article is loaded only to render)."""

    slug: str
    tags: tuple[str, ...]
    unit: str  # the UnitEntry it belongs to
    draft: bool = False  # never true: rows are published articles (related news reads this)


class UnitEntry(NamedTuple):
    """One issue (file or folder) as loaded last time, valid while its files are unchanged.

    A named tuple: ten thousand of them unpickle several times faster than objects.
    Light fields are what every build reads; the issue itself (articles without
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
        return pickle.loads(self.payload)[0]  # type: ignore[no-any-return]  # pickle is untyped


# An output as the manifest records it: (hash of everything it was made from, size in bytes).
OutputEntry = tuple[str, int]


@dataclass
class Scan:
    """The last scan of ``issues/``: redone only when a folder's listing changed."""

    listing: tuple[tuple[str, bool], ...] | None = None  # every path under issues/: the scan's input
    units: list[tuple[str, bool]] = field(default_factory=list)  # (path, is folder), scan order
    folders: dict[str, Unit] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()
    folder_stamps: dict[str, int] = field(default_factory=dict)  # mtime_ns of every folder listed


@dataclass
class CacheState:
    """The last build's memory, as the build reads and updates it."""

    loader_key: str = ""  # settings that change how files are read (time zone, domain, paths)
    scan: Scan = field(default_factory=Scan)
    units: dict[str, UnitEntry] = field(default_factory=dict)  # path -> issue as loaded
    related: RelatedIndex | None = None
    outputs: dict[str, OutputEntry] = field(default_factory=dict)  # the manifest: path -> entry
    folders_out: dict[str, int] = field(default_factory=dict)  # big output folders' mtimes
    email_base: str = ""  # what every email's key was made from, beside its issue's files
    loaded: dict[str, UnitEntry] = field(default_factory=dict, repr=False)  # units as loaded

    @property
    def folders(self) -> dict[str, Unit]:
        return self.scan.folders
