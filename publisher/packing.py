"""Long lists of strings as one string, for the build's caches between runs.

Pickling tens of thousands of strings one by one is most of the cost of saving and
loading the build's state; one joined string pickles as a single copy. A list that
holds a separator is refused (None), and the caller pickles it as it is.
"""

from __future__ import annotations

from collections.abc import Iterable

Packed = tuple[int, str]  # (count, the strings joined by NUL)


def pack(items: list[str]) -> Packed | None:
    """``items`` joined by NUL, with their count; None if one holds a NUL."""
    text = "\x00".join(items)
    return (len(items), text) if text.count("\x00") == max(0, len(items) - 1) else None


def unpack(packed: Packed) -> list[str]:
    n, text = packed
    return text.split("\x00") if n else []


def pack_groups(groups: Iterable[Iterable[str]]) -> Packed | None:
    """Groups of non-empty strings, each joined by \\x01, then packed; None if any will not do."""
    joined = []
    for group in groups:
        items = list(group)
        text = "\x01".join(items)
        if items and ("" in items or "\x00" in text or text.count("\x01") != len(items) - 1):
            return None
        joined.append(text)
    return pack(joined)


def unpack_groups(packed: Packed) -> list[list[str]]:
    return [text.split("\x01") if text else [] for text in unpack(packed)]
