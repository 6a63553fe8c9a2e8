"""Files the build copies rather than renders (images, the stylesheet), and stale outputs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from publisher.build.cache import UnitEntry
from publisher.build.keys import digest
from publisher.build.plan import Planner
from publisher.build.tasks import write_if_changed
from publisher.config import Settings
from publisher.render import pages


def copy_media(p: Planner, issues: list[UnitEntry]) -> list[str]:
    """Copy each local image of a published article (hero and body) to its site path, once per path."""
    seen: set[str] = set()
    written: list[str] = []
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
    return written


def copy_static(p: Planner, settings: Settings) -> list[str]:
    """templates/static/* -> <out>/static/* (the stylesheet)."""
    root = settings.paths.templates / pages.STATIC_DIR
    written: list[str] = []
    if not root.is_dir():
        return written
    for src in sorted(q for q in root.rglob("*") if q.is_file()):
        rel = f"{pages.STATIC_DIR}/{src.relative_to(root).as_posix()}"
        data = src.read_bytes()
        _put(p, rel, digest(data), data, written)
    return written


def _put(p: Planner, path: str, key: str, data: bytes, written: list[str]) -> None:
    if write_if_changed(p.out / path, data):
        written.append(path)
    p.outputs[path] = (key, len(data))


def remove_stale(out: Path, stale: set[str]) -> list[str]:
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
