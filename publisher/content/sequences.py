"""Read sequence steps, ``sequences/<name>/NN-slug.md``: front matter like an issue, Markdown body.

The folder sits next to ``issues/`` (``sequences_root``; no config key yet).
``sequences/welcome/01-*.md`` is the welcome mail; every other step waits
``after:`` (``0``, ``2 days``, ``1 week``) from when the reader entered its
sequence. A step's file name (without ``.md``) is its identity in the ledger
(``welcome:<slug>``, ``sequence:<name>:<slug>``), so editing its text never
mails anyone twice, and a missing folder means no mail at all. Its subject and title go into a
header of a mail sent on the subscriber's behalf with no one reviewing it
first, so they are checked more strictly than an issue's: a line break, a
control character, an encoded word (``=?``) or an overlong line is an error
naming the file and line, never quietly cleaned.

The body may name per-subscriber values with ``{{ name }}``, ``{{ greeting }}``,
``{{ email }}``, ``{{ preferences_url }}`` and ``{{ unsubscribe_url }}``; any
other ``{{ ... }}`` is an error (a typo would otherwise reach every reader).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from publisher.config import Settings
from publisher.content.fields import SLUG_RE
from publisher.content.frontmatter import Document, decode, parse_document
from publisher.errors import ContentError, Problem, relpath

WELCOME = "welcome"
STEP_FILE = re.compile(r"^(\d+)-[a-z0-9]+(?:-[a-z0-9]+)*\.md$")
KEYS = ("title", "subject", "preheader", "after")
AFTER = re.compile(r"^(\d{1,4})\s*(minute|hour|day|week)s?$")
MAX_AFTER = timedelta(days=3660)  # ten years: a step later than that is a typo
VARIABLES = ("name", "greeting", "email", "preferences_url", "unsubscribe_url")
VARIABLE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
MAX_SUBJECT = 200  # characters: a subject longer than this is a mistake, not a headline
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


@dataclass(frozen=True)
class SequenceStep:
    """One step file, checked: what the mail says, and where it came from (for errors)."""

    sequence: str
    slug: str  # the file name without .md, e.g. "01-hello"
    title: str
    subject: str
    preheader: str
    body: str  # Markdown, variables still as written
    source: Path
    body_line: int
    after: timedelta = timedelta(0)  # from the moment the reader entered the sequence

    @property
    def number(self) -> int:
        """The step's place in its sequence (the file's NN): a reader's progress is the last one planned."""
        return int(self.slug.split("-", 1)[0])

    @property
    def key(self) -> str:
        """The ledger key of this step's send: one per step file, ever."""
        if self.sequence == WELCOME and self.number == 1:
            return f"{WELCOME}:{self.slug}"
        return step_key(self.sequence, self.slug)


def step_key(sequence: str, slug: str) -> str:
    """The send key of a sequence step (the welcome mail, step 01 of ``welcome``, keeps ``welcome:``)."""
    return f"sequence:{sequence}:{slug}"


def sequence_names(settings: Settings) -> list[str]:
    """The sequences there are: folders under ``sequences/`` named like a slug."""
    root = sequences_root(settings)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and SLUG_RE.match(p.name))


def load_sequence(settings: Settings, name: str) -> list[SequenceStep]:
    """Every step of ``sequences/<name>/`` in order; [] without the folder; ContentError (file:line)."""
    if not SLUG_RE.match(name):
        raise ContentError([Problem(name, "a sequence name is lower-case words joined by '-'")])
    folder = sequences_root(settings) / name
    if not folder.is_dir():
        return []
    problems: list[Problem] = []
    steps: list[SequenceStep] = []
    for path in sorted(p for p in folder.iterdir() if p.suffix == ".md" and p.is_file()):
        step = load_step(settings, name, path, problems)
        if step is not None:
            steps.append(step)
    seen: dict[int, SequenceStep] = {}
    for step in steps:
        if step.number in seen:
            where = relpath(step.source, settings.base_dir)
            problems.append(Problem(where, f"step {step.number} twice (also {seen[step.number].slug}.md)"))
        seen[step.number] = step
    if problems:
        raise ContentError(problems, hint=f"fix sequences/{name}/, then run `publisher check` again")
    return sorted(steps, key=lambda s: s.number)


def sequences_root(settings: Settings) -> Path:
    """Where sequences live: ``sequences/`` beside the issues folder."""
    return settings.paths.issues.parent / "sequences"


def welcome_files(settings: Settings) -> list[Path]:
    """The welcome folder's first-step files (``01-*.md``); empty when there is no welcome mail."""
    folder = sequences_root(settings) / WELCOME
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("01-*.md") if p.is_file())


def load_welcome(settings: Settings) -> SequenceStep | None:
    """The welcome mail, or None without one; ContentError (every problem, file:line) when unusable."""
    files = welcome_files(settings)
    if not files:
        return None
    problems: list[Problem] = []
    if len(files) > 1:
        names = ", ".join(relpath(p, settings.base_dir) for p in files)
        problems.append(Problem(names, "more than one welcome mail (01-*.md); keep one"))
        raise ContentError(problems, hint="the welcome mail is the one file sequences/welcome/01-*.md")
    step = load_step(settings, WELCOME, files[0], problems)
    if step is None or problems:
        raise ContentError(problems, hint="fix the welcome mail, then run `publisher check` again")
    return step


def load_step(settings: Settings, sequence: str, path: Path, problems: list[Problem]) -> SequenceStep | None:
    """Read and check one step file; problems are appended (None when it cannot be used)."""
    where = relpath(path, settings.base_dir)
    if not STEP_FILE.match(path.name) or not SLUG_RE.match(path.stem.split("-", 1)[1]):
        problems.append(Problem(where, "name the file NN-words.md (e.g. 01-hello.md): digits, then a slug"))
        return None
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(where, f"cannot read the file: {exc.strerror or exc}"))
        return None
    text = decode(raw, where, problems)
    doc = parse_document(text, where, problems) if text is not None else None
    if doc is None:
        return None
    before = len(problems)
    for key in doc.meta:
        if key not in KEYS:
            problems.append(
                Problem(where, f"{key}: unknown key (a step takes {', '.join(KEYS)})", doc.line(key))
            )
    title = _header_text(doc, "title", where, problems, required=True)
    subject = _header_text(doc, "subject", where, problems) or title
    preheader = _header_text(doc, "preheader", where, problems)
    after = _after(doc, where, problems)
    _check_body(doc, where, problems)
    if len(problems) > before:
        return None
    return SequenceStep(sequence, path.stem, title, subject, preheader, doc.body, path, doc.body_line, after)


def _after(doc: Document, where: str, problems: list[Problem]) -> timedelta:
    """``after:`` as a duration: ``0``, ``3 hours``, ``2 days``, ``1 week`` (absent: 0)."""
    value: Any = doc.meta.get("after")
    if value is None or (value == 0 and not isinstance(value, bool)):
        return timedelta(0)
    m = AFTER.match(value.strip()) if isinstance(value, str) and len(value) < 40 else None
    if m is None:
        shown = repr(value)[:40] + ("..." if len(repr(value)) > 40 else "")
        problems.append(
            Problem(
                where,
                f"after: expected 0 or a duration like '2 days' or '1 week', got {shown}",
                doc.line("after"),
            )
        )
        return timedelta(0)
    after = timedelta(**{m.group(2) + "s": int(m.group(1))})
    if after > MAX_AFTER:
        problems.append(Problem(where, f"after: {value} is more than ten years", doc.line("after")))
    return after


def _header_text(
    doc: Document, key: str, where: str, problems: list[Problem], *, required: bool = False
) -> str:
    """A one-line text field bound for a header: refused, with its line, rather than cleaned."""
    value: Any = doc.meta.get(key)
    line = doc.line(key) or 1
    if value is None:
        if required:
            problems.append(Problem(where, f"{key}: missing; add a line like '{key}: Welcome aboard'", line))
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        problems.append(Problem(where, f"{key}: expected text", line))
        return ""
    text = str(value).strip()
    if _CONTROL.search(text):
        problems.append(
            Problem(where, f"{key}: contains a line break or control character; one line of text", line)
        )
    elif "=?" in text:
        problems.append(
            Problem(where, f"{key}: may not contain '=?' (it reads as an encoded mail header)", line)
        )
    elif len(text) > MAX_SUBJECT:
        problems.append(Problem(where, f"{key}: {len(text)} characters; keep it under {MAX_SUBJECT}", line))
    elif required and not text:
        problems.append(Problem(where, f"{key}: is empty", line))
    else:
        return text
    return ""


def _check_body(doc: Document, where: str, problems: list[Problem]) -> None:
    """Every ``{{ ... }}`` in the body must be a known variable; no NUL or other control characters."""
    for n, line in enumerate(doc.body.split("\n"), start=doc.body_line):
        for m in VARIABLE.finditer(line):
            if m.group(1) not in VARIABLES:
                known = ", ".join("{{ " + v + " }}" for v in VARIABLES)
                problems.append(Problem(where, f"unknown variable {m.group(0)}; use one of {known}", n))
        if "\x00" in line:
            problems.append(Problem(where, "contains a NUL character; save the file as plain text", n))
