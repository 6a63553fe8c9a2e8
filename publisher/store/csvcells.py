"""What one row of a subscriber CSV may hold, and how a cell is written so a spreadsheet only shows it.

Validation is the web form's own (``check_name``, ``check_timezone``,
``normalise_email`` from ``store.values``): an import is one more entry point,
so it refuses exactly the names and zones the sign-up form refuses, and a row
with one bad cell is refused whole, naming the row and the column.

Export escapes formula cells (OWASP "CSV injection"): a cell starting with
``=``, ``+``, ``-``, ``@``, tab or CR is run by Excel, LibreOffice and Google
Sheets as a formula (``=HYPERLINK(...)`` typed into the public form becomes a
live link in the editor's spreadsheet), so it is written with a leading ``'``,
which those programs treat as "text". Import removes that ``'``, so importing
our own export gives back the original value. To keep the round trip exact for
a value that itself starts with ``'`` and a trigger (or a second ``'``), such a
value gets one more ``'``; a hand-written ``'Tis`` stays as it is.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from publisher.errors import Problem, ProblemsError
from publisher.store.values import (
    InvalidValueError,
    check_name,
    check_timezone,
    clean_topics,
    normalise_email,
    parse_frequency,
    parse_status,
    topics_text,
)

COLUMNS = ("email", "name", "status", "frequency", "topics", "timezone")
FORMULA_START = frozenset("=+-@\t\r")
_QUOTED_START = FORMULA_START | {"'"}
_SURROGATE = re.compile("[\ud800-\udfff]")  # undecodable bytes, read with errors="surrogateescape"
# Any cell: C0 (CR, LF, NUL, tab...), DEL, C1, line/paragraph separators. Names have their own,
# stricter check (check_name also refuses bidi controls).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_BAD_TEXT = "contains a line break, tab, NUL or other control character"


class CsvHeaderError(ProblemsError):
    """The file cannot be imported at all (no header, unknown or missing columns)."""


@dataclass
class Row:
    """One valid row: the normalised address and only the columns this row gave a value for."""

    line: int
    email: str
    given: dict[str, Any]
    merged: bool = False  # the address appeared on an earlier row (in an earlier chunk)


def escape_cell(value: str) -> str:
    """The cell as exported: a leading ``'`` when a spreadsheet would run it as a formula."""
    if value[:1] in FORMULA_START or (value[:1] == "'" and value[1:2] in _QUOTED_START):
        return "'" + value
    return value


def unescape_cell(value: str) -> str:
    """The inverse of ``escape_cell``: ``unescape_cell(escape_cell(v)) == v`` for every ``v``."""
    if value[:1] == "'" and value[1:2] in _QUOTED_START:
        return value[1:]
    return value


def read_header(reader: Iterator[list[str]], where: str) -> list[str]:
    """The column names, or CsvHeaderError listing everything wrong with the first row."""
    try:
        header = next(reader)
    except StopIteration:
        raise CsvHeaderError([Problem(where, "the file is empty", 1)], "nothing to import") from None
    except csv.Error as exc:
        raise CsvHeaderError([Problem(where, f"malformed header: {exc}", 1)], "nothing imported") from None
    names = [h.strip().lower().lstrip("\ufeff") for h in header]
    problems = []
    unknown = [h for h in names if h not in COLUMNS]
    if unknown:
        known = ", ".join(COLUMNS)
        problems.append(
            Problem(where, f"unknown column(s) {', '.join(map(repr, unknown))} (known: {known})", 1)
        )
    if "email" not in names:
        problems.append(Problem(where, "the header has no 'email' column", 1))
    dupes = sorted({h for h in names if names.count(h) > 1})
    if dupes:
        problems.append(Problem(where, f"column(s) given twice: {', '.join(dupes)}", 1))
    if problems:
        raise CsvHeaderError(
            problems,
            "nothing imported",
            hint="the first row must name the columns: email (required), " + ", ".join(COLUMNS[1:]),
        )
    return names


def _status(raw: str) -> str:
    return parse_status(raw).value


def _frequency(raw: str) -> str:
    return parse_frequency(raw).value


def _topics(raw: str) -> str:
    return topics_text(clean_topics(raw))


_CHECKS: dict[str, Callable[[str], str]] = {
    "name": check_name,
    "status": _status,
    "frequency": _frequency,
    "topics": _topics,
    "timezone": check_timezone,
}


def to_row(line: int, cells: dict[str, str]) -> Row:
    """The row as the store will write it, or InvalidValueError whose message names the column."""
    values = {column: unescape_cell(cell) for column, cell in cells.items()}
    for column, value in values.items():
        if _SURROGATE.search(value):
            raise InvalidValueError(f"{column}: not UTF-8 text (save the file as UTF-8)")
        if column != "name" and _CONTROL.search(value):
            raise InvalidValueError(f"{column}: {_BAD_TEXT}")
    given: dict[str, Any] = {}
    column = "email"
    try:
        email = normalise_email(values["email"])
        for column, check in _CHECKS.items():
            if values.get(column, "").strip():
                given[column] = check(values[column])
    except InvalidValueError as exc:
        hint = f"; {exc.hint}" if exc.hint else ""
        raise InvalidValueError(f"{column}: {exc.message}{hint}") from None
    return Row(line, email, given)
