"""Content: the Markdown files under ``paths.issues`` as Issues and Articles.

A pure stage: it reads only the files under ``paths.issues`` and returns
frozen models, raising one ``ContentError`` that lists every problem (file and
line) so ``publisher check`` can show them all at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from publisher.config import Settings
from publisher.content.fields import DATE_HINT, clean_line, is_slug, slugify, when_value
from publisher.content.frontmatter import decode, parse_document
from publisher.content.images import body_media
from publisher.content.loader import ARTICLE_KEYS, INDEX_KEYS, ISSUE_KEYS, Loader, hint_for
from publisher.content.scan import RESERVED_SLUGS, relative, scan, signature
from publisher.content.summary import first_paragraph, summarize, truncate
from publisher.errors import ContentError, NotFoundError, Problem, and_more
from publisher.models import Article, Issue, Library

__all__ = [
    "ARTICLE_KEYS",
    "DATE_HINT",
    "INDEX_KEYS",
    "ISSUE_KEYS",
    "RESERVED_SLUGS",
    "LoadResult",
    "body_media",
    "clean_line",
    "first_paragraph",
    "is_slug",
    "known_slugs",
    "load_content",
    "load_issue",
    "load_library",
    "past_send_at",
    "signature",
    "slugify",
    "summarize",
    "truncate",
    "when_value",
]


@dataclass(frozen=True)
class LoadResult:
    """The library plus what it leaves out, for reports such as `publisher check`."""

    library: Library
    draft_articles: tuple[Article, ...]  # draft articles left out of their (folder) issue
    warnings: tuple[Problem, ...] = ()  # worth fixing, but nothing fails (e.g. a hero image without alt)

    @property
    def draft_count(self) -> int:
        """Draft issues plus draft articles inside published issues."""
        return sum(1 for i in self.library.issues if i.draft) + len(self.draft_articles)


def load_content(settings: Settings) -> LoadResult:
    """Load every issue; raise ContentError listing every problem in every file."""
    found = scan(settings)
    loader = Loader(settings)
    issues: list[Issue] = []
    drafts: list[Article] = []
    for unit in found.units:
        issue, left_out = loader.issue(unit)
        if issue is not None:
            issues.append(issue)
        drafts.extend(left_out)
    problems = [p.problem for p in found.problems] + loader.problems
    _raise_if(problems)
    issues.sort(key=lambda i: (-i.date.timestamp(), i.slug))  # newest first, stable
    warnings = sorted(loader.warnings, key=lambda p: (p.where, p.line or 0))
    return LoadResult(Library(tuple(issues)), tuple(drafts), tuple(warnings))


def load_library(settings: Settings) -> Library:
    """All issues under ``paths.issues``, drafts included (``Library`` filters them)."""
    return load_content(settings).library


def load_issue(settings: Settings, slug: str) -> Issue:
    """One issue by slug, checking only its own files (and the site-wide slug rules).

    A half-written draft elsewhere must not block a queued send, so problems in
    other issues are not raised here; `publisher check` shows them.
    """
    found = scan(settings)
    unit = next((u for u in found.units if u.slug == slug), None)
    if unit is None:
        known = and_more([u.slug for u in found.units]) or "none yet"
        raise NotFoundError(
            f"no issue {slug!r} in {relative(settings.paths.issues, settings)}/",
            hint=f"an issue is named after its file or folder (found: {known})",
        )
    loader = Loader(settings)
    issue, _ = loader.issue(unit)
    _raise_if(found.problems_for(unit) + loader.problems)
    assert issue is not None  # no problems means the issue was built
    return issue


def known_slugs(settings: Settings) -> dict[str, str]:
    """Every slug already taken, mapped to the file that takes it (as the user sees it)."""
    return {slug: relative(path, settings) for slug, path in scan(settings).slugs.items()}


def past_send_at(settings: Settings, library: Library, now: datetime) -> dict[str, Problem]:
    """Published issues whose ``send_at`` has already passed, by slug, each located at that line.

    `publisher run` would report such an issue as missed (or send it late); whether
    it went out already is the store's to say, so the caller filters these by that.
    """
    found: dict[str, Problem] = {}
    for issue in library.published_issues:
        if issue.send_at is None or issue.send_at > now:
            continue
        where = relative(issue.source, settings)
        ignored: list[Problem] = []  # the file loaded cleanly a moment ago
        text = decode(issue.source.read_bytes(), where, ignored)
        doc = parse_document(text, where, ignored) if text is not None else None
        local = issue.send_at.astimezone(settings.site.tz)
        found[issue.slug] = Problem(
            where,
            f"send_at: {local:%Y-%m-%d %H:%M} {local.tzname()} is in the past and "
            f"{issue.slug} has not been sent",
            doc.line("send_at") if doc is not None else None,
        )
    return found


def _raise_if(problems: list[Problem]) -> None:
    if problems:
        ordered = sorted(problems, key=lambda p: (p.where, p.line or 0))
        raise ContentError(ordered, hint=hint_for(ordered))
