"""Keys: short stable hashes of what an output or a cache entry is made from.

Every output and cache entry is keyed by such a hash, so a stale one is never
used: when what it is made from changes, so does its key.
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import Any

import markdown_it
import markdown_it_pyrs
import mdit_py_plugins

from publisher.render import markdown


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


def renderer_digest() -> str:
    """The Markdown renderers' own code and library versions: cached HTML dies with them."""
    return digest(
        markdown_it.__version__,
        getattr(markdown_it_pyrs, "__version__", ""),  # the extension module declares no stub for it
        mdit_py_plugins.__version__,
        inspect.getsource(markdown),
    )
