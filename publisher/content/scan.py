"""Find the issues under ``paths.issues`` from file and folder names alone.

Slugs come from names and are published for life, so their rules (URL-safe,
unique across the site, not clashing with the site's own paths) are checked
here, before any file is parsed; the scan is cheap enough to run whole even
when only one issue is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from publisher.config import Settings
from publisher.content.fields import is_slug, slugify
from publisher.errors import ContentError, Problem, relpath

# Top-level names the build and the web app use for their own pages.
RESERVED_SLUGS = frozenset(
    {
        "admin",
        "api",
        "assets",
        "confirm",
        "emails",
        "feed",
        "feeds",
        "hooks",
        "media",
        "page",
        "preferences",
        "static",
        "subscribe",
        "tags",
        "unsubscribe",
    }
)


@dataclass(frozen=True)
class Unit:
    """One issue as found on disk: a single .md file, or a folder with index.md and articles."""

    slug: str
    path: Path  # the .md file, or the folder
    is_folder: bool
    articles: tuple[Path, ...] = ()  # folder issues: article files in file-name order

    @property
    def paths(self) -> frozenset[Path]:
        """Every path that belongs to this issue (to pick out its problems)."""
        if not self.is_folder:
            return frozenset({self.path})
        return frozenset({self.path, self.path / "index.md", *self.articles})


@dataclass(frozen=True)
class ScanProblem:
    problem: Problem
    involves: frozenset[Path]  # the files (or folders) it is about


@dataclass(frozen=True)
class Scan:
    units: tuple[Unit, ...]
    problems: tuple[ScanProblem, ...]
    slugs: dict[str, Path]  # every claimed slug -> the first file that claimed it

    def problems_for(self, unit: Unit) -> list[Problem]:
        mine = unit.paths
        return [p.problem for p in self.problems if p.involves & mine]


def signature(root: Path) -> tuple[tuple[str, int, int], ...]:
    """What changes when any file under ``root`` is added, edited or removed (stat only, no reads).

    The scheduler and the web app compare it to decide whether to load the content again.
    """
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError:
                continue  # removed while we looked
            out.append((path, st.st_mtime_ns, st.st_size))
    return tuple(sorted(out))


def relative(path: Path, settings: Settings) -> str:
    """A path as the user sees it: relative to the config file's folder."""
    return relpath(path, settings.base_dir)


def hidden(name: str) -> bool:
    """Names starting with '_' or '.' are the editor's scratch space, never published."""
    return name.startswith(("_", "."))


def scan(settings: Settings) -> Scan:
    """List the issues under ``settings.paths.issues`` and check their names."""
    root = settings.paths.issues
    if not root.is_dir():
        raise ContentError(
            [Problem(relative(root, settings), "no such folder")],
            hint="create it, or point paths.issues in config.yaml at your issues",
        )
    units: list[Unit] = []
    problems: list[ScanProblem] = []
    slugs: dict[str, Path] = {}

    def problem(path: Path, message: str, *others: Path) -> None:
        problems.append(ScanProblem(Problem(relative(path, settings), message), frozenset({path, *others})))

    def claim(slug: str, path: Path, kind: str) -> None:
        if not is_slug(slug):
            fixed = slugify(slug) or "article"
            suffix = ".md" if kind == "file" else ""
            problem(
                path,
                f"{kind} name {slug!r} is not a URL-safe slug (lowercase letters, digits and hyphens); "
                f"rename it to '{fixed}{suffix}'",
            )
            return
        if slug in RESERVED_SLUGS:
            problem(path, f"slug {slug!r} is reserved for the site's own pages; rename the {kind}")
            return
        first = slugs.setdefault(slug, path)
        if first != path:
            problem(
                path,
                f"slug {slug!r} is also used by {relative(first, settings)}; "
                "slugs must be unique across the site, so rename one of them",
                first,
            )

    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if hidden(entry.name):
            continue
        if entry.is_file() and entry.suffix.lower() == ".md":
            units.append(Unit(entry.stem, entry, is_folder=False))
            claim(entry.stem, entry, "file")
        elif entry.is_dir():
            unit = _folder(entry, problem)
            if unit is not None:
                units.append(unit)
                claim(unit.slug, entry, "folder")
                for article in unit.articles:
                    claim(article.stem, article, "file")
    return Scan(tuple(units), tuple(problems), slugs)


def _folder(folder: Path, problem: Callable[..., None]) -> Unit | None:
    """A folder issue, or None for a media folder (no .md files at all)."""
    markdown = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() == ".md"
        and not any(hidden(part) for part in p.relative_to(folder).parts)
    )
    index = folder / "index.md"
    if not index.is_file():
        if markdown:
            problem(
                folder,
                "folder has .md files but no index.md: add an index.md with the issue's title, "
                "or start the folder name with '_' to keep it out",
            )
        return None
    nested = sorted({p.relative_to(folder).parts[0] for p in markdown if p.parent != folder})
    for name in nested:
        problem(
            folder / name,
            f"folders inside an issue are not read: move its .md files up into {folder.name}/",
            folder,
        )
    articles = tuple(p for p in markdown if p.parent == folder and p.name != "index.md")
    return Unit(folder.name, folder, is_folder=True, articles=articles)
