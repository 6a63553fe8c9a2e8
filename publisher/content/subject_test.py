"""An issue's subject test in its front matter: ``subjects: [A, B]`` and ``subject_test:``.

    subjects: [Trams are back, The trams return]
    subject_test: {sample: 20%, wait: 4h}

Each subject goes into the Subject header of a sample of the list with no one
reviewing that exact mail first, so it is held to the welcome mail's rules
rather than quietly cleaned like ``subject:``: a line break, any control or
bidi character, an encoded word (``=?``) or an overlong subject is an error
naming the file and line. Every problem is appended to the loader's list; the
issue then does not load, so nothing is sent.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import yaml

from publisher.config import parse_duration
from publisher.content.frontmatter import Document
from publisher.errors import Problem
from publisher.models import SubjectTest

KEYS = ("subjects", "subject_test")
MAX_SUBJECT = 200  # characters, as for the welcome mail's subject
MAX_SUBJECTS = 10  # a larger split leaves each subject too few readers to tell them apart
SAMPLE_RANGE = (1.0, 50.0)  # percent: over half, the "rest" is no longer the larger part
WAIT_RANGE = (timedelta(minutes=1), timedelta(days=7))
EXAMPLE = "subject_test: {sample: 20%, wait: 4h}"
# C0/C1 controls, zero-width and bidi marks and overrides, line/paragraph separators, BOM.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_PERCENT = re.compile(r"^\s*(\d{1,3}(?:\.\d{1,2})?)\s*%\s*$")
_YAML_FIRST_LINE = 2  # YAML's line 0 is the file's line 2 (line 1 is the opening '---')


def subject_test_of(doc: Document, where: str, problems: list[Problem]) -> SubjectTest | None:
    """The issue's subject test, None when it has none (or has problems, appended to ``problems``)."""
    subjects, spec = doc.meta.get("subjects"), doc.meta.get("subject_test")
    if subjects is None and spec is None:
        return None
    before = len(problems)
    if subjects is None:
        message = "subject_test: needs the subjects to test, e.g. 'subjects: [First idea, Second idea]'"
        problems.append(Problem(where, message, doc.line("subject_test")))
    elif spec is None:
        problems.append(Problem(where, f"subjects: needs a line like '{EXAMPLE}'", doc.line("subjects")))
    if subjects is not None and doc.meta.get("subject") is not None:
        message = "subject: give either subject: or subjects: (a subject test), not both"
        problems.append(Problem(where, message, doc.line("subject")))
    texts = _subjects(doc, where, problems) if subjects is not None else ()
    sample, wait = _spec(doc, where, problems) if spec is not None else (0.0, timedelta(0))
    if len(problems) > before:
        return None
    return SubjectTest(texts, sample, wait)


def _subjects(doc: Document, where: str, problems: list[Problem]) -> tuple[str, ...]:
    value: Any = doc.meta["subjects"]
    line = doc.line("subjects")
    if not isinstance(value, list):
        problems.append(Problem(where, "subjects: expected a list such as [First idea, Second idea]", line))
        return ()
    if not 2 <= len(value) <= MAX_SUBJECTS:
        message = f"subjects: {len(value)} given; a subject test needs 2 to {MAX_SUBJECTS} subjects"
        problems.append(Problem(where, message, line))
        return ()
    out: list[str] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(value):
        at = doc.item_line("subjects", index)
        text = _subject(item, f"subjects: item {index + 1}", where, at, problems)
        if text is None:
            continue
        same = seen.setdefault(text.casefold(), index)
        if same != index:
            message = f"subjects: item {index + 1} is the same as item {same + 1}; each subject once"
            problems.append(Problem(where, message, at))
            continue
        out.append(text)
    return tuple(out)


def _subject(item: Any, label: str, where: str, line: int | None, problems: list[Problem]) -> str | None:
    """One subject: refused, with its line, rather than cleaned (it goes into a header)."""
    if isinstance(item, bool) or not isinstance(item, str | int | float):
        problems.append(Problem(where, f"{label}: expected text", line))
        return None
    text = str(item).strip()
    if _CONTROL.search(text):
        message = f"{label}: contains a line break, control or bidi character; one line of plain text"
    elif "=?" in text:
        message = f"{label}: may not contain '=?' (it reads as an encoded mail header)"
    elif len(text) > MAX_SUBJECT:
        message = f"{label}: {len(text)} characters; keep it under {MAX_SUBJECT}"
    elif not text:
        message = f"{label}: is empty"
    else:
        return text
    problems.append(Problem(where, message, line))
    return None


def _spec(doc: Document, where: str, problems: list[Problem]) -> tuple[float, timedelta]:
    """``{sample: 20%, wait: 4h}``: each key checked on its own line; unknown keys refused."""
    value: Any = doc.meta["subject_test"]
    line = doc.line("subject_test")
    node = doc.value_nodes.get("subject_test")
    if not isinstance(value, dict) or not isinstance(node, yaml.MappingNode):
        problems.append(Problem(where, f"subject_test: expected a mapping, e.g. '{EXAMPLE}'", line))
        return 0.0, timedelta(0)
    lines = {str(k.value): k.start_mark.line + _YAML_FIRST_LINE for k, _ in node.value}
    for key in value:
        if str(key) not in ("sample", "wait"):
            message = f"subject_test: unknown key {str(key)[:40]!r} (use sample: and wait:)"
            problems.append(Problem(where, message, lines.get(str(key), line)))
    got: dict[str, Any] = {}
    for key, check in (("sample", _sample), ("wait", _wait)):
        if value.get(key) is None:
            problems.append(Problem(where, f"subject_test: {key}: missing; e.g. '{EXAMPLE}'", line))
            continue
        try:
            got[key] = check(value[key])
        except ValueError as exc:
            problems.append(Problem(where, f"subject_test: {key}: {exc}", lines.get(key, line)))
    return float(got.get("sample", 0.0)), got.get("wait", timedelta(0))


def _sample(value: Any) -> float:
    """A percent of the list: '20%' (or the number 20), 1 to 50."""
    if isinstance(value, bool):
        raise ValueError("expected a percent such as 20%")
    if isinstance(value, int | float):
        percent = float(value)
    elif isinstance(value, str) and (m := _PERCENT.match(value)):
        percent = float(m.group(1))
    else:
        raise ValueError(f"expected a percent such as 20%, got {str(value)[:40]!r}")
    low, high = SAMPLE_RANGE
    if not low <= percent <= high:
        raise ValueError(f"{percent:g}% is outside {low:g}% to {high:g}% of the list")
    return percent


def _wait(value: Any) -> timedelta:
    """How long the sample has to show a winner: '4h', '90m', '1d' (1 minute to 7 days)."""
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as 4h, 90m or 1d, got {str(value)[:40]!r}")
    try:
        wait = parse_duration(value)
    except ValueError:
        raise ValueError(f"expected a duration such as 4h, 90m or 1d, got {value[:40]!r}") from None
    low, high = WAIT_RANGE
    if not low <= wait <= high:
        raise ValueError("keep it between 1 minute and 7 days")
    return wait
