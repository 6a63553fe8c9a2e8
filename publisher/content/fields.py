"""Front-matter value rules: text, dates, tags and slugs.

Each checker returns the clean value or raises ``ValueError`` with the message
a user should read; the loader adds the file, line and key. Kept apart from
the loader so the importer and the CLI apply the very same rules.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_DATE_ONLY = re.compile(r"^\d{4}-?\d{2}-?\d{2}$")
_SPACES = re.compile(r" {2,}")
# Every C0/C1 control (Unicode category Cc) and the line and paragraph separators (Zl, Zp):
# none may reach a mail header.
_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")

DATE_HINT = "write dates as YYYY-MM-DD or YYYY-MM-DDTHH:MM (optionally with +01:00 or Z)"


def clean_line(text: str) -> str:
    """One line of display text: CR, LF and other control characters become single spaces.

    Titles and subjects end up in email headers, where a stray line break would
    start a new header; non-ASCII letters are kept as they are.
    """
    return _SPACES.sub(" ", _BREAKING.sub(" ", text)).strip()


def slugify(text: str, max_length: int = 80) -> str:
    """Lowercase ASCII letters, digits and hyphens ('Café Culture' -> 'cafe-culture')."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > max_length:
        cut = slug[:max_length]
        slug = cut.rsplit("-", 1)[0] if "-" in cut else cut
    return slug


def is_slug(text: str) -> bool:
    return bool(SLUG_RE.match(text))


def text_value(value: Any, *, one_line: bool = True) -> str:
    """A string field; numbers are accepted as their text (``title: 1984``)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected text, got {_show(value)}")
    text = str(value)
    return clean_line(text) if one_line else text.strip()


def bool_value(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_show(value)}")
    return value


def int_value(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {_show(value)}")
    return value


def when_value(value: Any, tz: ZoneInfo, *, need_time: bool = False) -> datetime:
    """An aware datetime from ISO 8601 text; a date or a naive time is read in ``tz``."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time())
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if need_time and _DATE_ONLY.match(text):
            raise ValueError(f"needs a time as well as a date: {value!r}")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a date: {value!r}") from None
    else:
        raise ValueError(f"not a date: {_show(value)}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed


def tag_values(value: Any) -> list[tuple[int, str]]:
    """Tags as (index, slug) pairs, lowercased and de-duplicated in first-seen order.

    Raises ``ValueError`` for a non-list; an item that is not text or has no
    letters or digits is returned with an empty slug so the caller can name
    its line.
    """
    if not isinstance(value, list):
        raise ValueError(f"expected a list such as [cities, science], got {_show(value)}")
    out: list[tuple[int, str]] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            out.append((index, ""))
            continue
        slug = slugify(str(item))
        if not slug:
            out.append((index, ""))
        elif slug not in seen:
            seen.add(slug)
            out.append((index, slug))
    return out


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "nothing"
    return repr(value)
