"""`publisher import`: plain-text, Markdown or HTML articles to Markdown issues.

Pure conversion (text in, Markdown out) plus a plan that says which file each
import would write (and which hero image it would copy); only the CLI writes,
and nothing is overwritten without --force. The readers live beside this
module: `importer_text` (plain text), `importer_markdown` (kept as is, front
matter completed) and `importer_html` with `importer_page` (a page's author,
date and hero image; its docstring says which source wins when a page gives
several).

The date of an issue is, in order: a Markdown file's own `date:` (the author
wrote it), then `--date` (the editor asked for it, and may be correcting a
page), then the page's date, then today. Front matter is always written with
yaml.safe_dump, never by string formatting, so a title with `'`, `:` or a
line break cannot change its meaning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date as date_type
from datetime import datetime
from pathlib import Path

import yaml

from publisher.config import Settings
from publisher.content import DATE_HINT, known_slugs, slugify, when_value
from publisher.errors import ContentError, Problem, relpath
from publisher.importer_html import from_html
from publisher.importer_markdown import (
    MarkdownSource,
    complete,
    from_markdown,
    looks_like_markdown,
)
from publisher.importer_text import ImportedArticle, drop_boilerplate, escape_markdown, from_text

__all__ = [
    "ImportPlan",
    "ImportedArticle",
    "MarkdownSource",
    "convert",
    "drop_boilerplate",
    "escape_markdown",
    "from_html",
    "from_markdown",
    "from_text",
    "issue_markdown",
    "plan_imports",
]

Dated = date_type | datetime


@dataclass(frozen=True)
class ImportPlan:
    """What one import would write (the CLI writes it)."""

    source: Path
    path: Path  # <out>/<slug>.md
    slug: str
    title: str
    text: str
    unchanged: bool  # the file (and its hero image) are already there exactly so
    media: tuple[tuple[Path, Path], ...] = ()  # (from, to): a local hero image copied next to the issue


def convert(name: str, data: bytes, folder: Path | None = None) -> ImportedArticle | MarkdownSource:
    """Pick the reader by extension, else by sniffing (an <html> tag, front matter, '# headings')."""
    text = _decode(data)
    head = text[:2048].lower()
    if name.lower().endswith((".html", ".htm", ".xhtml")):
        return from_html(text, folder)
    if looks_like_markdown(name, text):
        return from_markdown(text)
    if "<html" in head or "<!doctype html" in head:
        return from_html(text, folder)
    return from_text(text)


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def issue_markdown(
    article: ImportedArticle, when: Dated, tags: Sequence[str], image: str | None = None
) -> str:
    """The .md file: front matter (title, date, author, tags, summary, hero image) then the body."""
    meta: dict[str, object] = {"title": article.title, "date": when}
    if article.author:
        meta["author"] = article.author
    if tags:
        meta["tags"] = list(tags)
    if article.summary:
        meta["summary"] = article.summary
    image = article.image if image is None else image
    if image:
        meta["image"] = image
        if article.image_alt:
            meta["image_alt"] = article.image_alt
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1_000_000)
    return f"---\n{front}---\n\n{article.body}"


def markdown_issue(source: MarkdownSource, when: Dated, tags: Sequence[str]) -> str:
    """A Markdown file with its front matter completed: title, date and tags only where missing."""
    wanted: dict[str, object] = {"title": source.title, "date": when}
    if tags:
        wanted["tags"] = list(tags)
    missing = {key: value for key, value in wanted.items() if source.meta.get(key) in (None, "", [])}
    return complete(source, missing)


def plan_imports(
    settings: Settings,
    sources: Sequence[tuple[Path, bytes]],
    out: Path,
    *,
    now: datetime,
    date: str | None = None,
    tags: Sequence[str] = (),
    force: bool = False,
) -> list[ImportPlan]:
    """Convert every source and decide its target; raise every problem at once, write nothing."""
    problems: list[Problem] = []
    option = _date_option(settings, date, problems)
    tag_slugs = list(dict.fromkeys(s for s in (slugify(t) for t in tags) if s))
    for t in tags:
        if not slugify(t):
            problems.append(Problem("--tag", f"{t!r} is not a tag (use words, letters or digits)"))
    taken = known_slugs(settings) if out.resolve() == settings.paths.issues.resolve() else {}
    plans: list[ImportPlan] = []
    planned: dict[str, Path] = {}
    for source, data in sources:
        where = relpath(source)
        try:
            article = convert(source.name, data, source.parent)
            plan = _plan(source, article, out, option, now.date(), tag_slugs)
        except ValueError as exc:
            problems.append(Problem(where, str(exc), getattr(exc, "line", None)))
            continue
        slug, path = plan.slug, plan.path
        if slug in planned:
            same = "file name" if isinstance(article, MarkdownSource) else "title"
            problems.append(
                Problem(where, f"has the same {same} (slug {slug!r}) as {relpath(planned[slug])}")
            )
            continue
        planned[slug] = source
        owner = taken.get(slug)
        if owner is not None and Path(settings.base_dir / owner).resolve() != path.resolve():
            problems.append(
                Problem(where, f"slug {slug!r} is already used by {owner}; rename that file first")
            )
        elif (out / slug).is_dir():
            problems.append(Problem(where, f"{relpath(out / slug)}/ is already an issue with slug {slug!r}"))
        elif not force and (differs := _differs(plan)):
            problems.append(
                Problem(where, f"{relpath(differs)} exists and differs; pass --force to replace it")
            )
        plans.append(plan)
    if problems:
        hint = DATE_HINT if any(p.where == "--date" for p in problems) else None
        raise ContentError(problems, hint=hint)
    return plans


def _date_option(settings: Settings, date: str | None, problems: list[Problem]) -> Dated | None:
    """--date as a date (a day alone) or an aware datetime; None when not given or not a date."""
    if date is None:
        return None
    try:
        parsed = when_value(date, settings.site.tz)
    except ValueError as exc:
        problems.append(Problem("--date", str(exc)))
        return None
    return parsed.date() if re.fullmatch(r"\d{4}-\d{2}-\d{2}", date.strip()) else parsed


def _plan(
    source: Path,
    article: ImportedArticle | MarkdownSource,
    out: Path,
    option: Dated | None,
    today: date_type,
    tags: Sequence[str],
) -> ImportPlan:
    """Target, text and hero-image copy of one source (a Markdown file keeps its own name as slug)."""
    if isinstance(article, MarkdownSource):
        slug = slugify(source.stem) or slugify(article.title) or "article"
        text = markdown_issue(article, option or today, tags)
        return _with_state(ImportPlan(source, out / f"{slug}.md", slug, article.title, text, False))
    slug = slugify(article.title) or slugify(source.stem) or "article"
    media: tuple[tuple[Path, Path], ...] = ()
    image = None
    if article.image_file is not None:
        image = f"media/{slug}{article.image_file.suffix.lower()}"
        media = ((article.image_file, out / image),)
    text = issue_markdown(article, option or article.published or today, tags, image)
    return _with_state(ImportPlan(source, out / f"{slug}.md", slug, article.title, text, False, media))


def _with_state(plan: ImportPlan) -> ImportPlan:
    """The plan, marked unchanged when every file it would write is already there byte for byte."""
    unchanged = _differs(plan) is None and plan.path.is_file()
    unchanged = unchanged and all(to.is_file() for _, to in plan.media)
    return ImportPlan(plan.source, plan.path, plan.slug, plan.title, plan.text, unchanged, plan.media)


def _differs(plan: ImportPlan) -> Path | None:
    """The first target that exists with other bytes than the plan's."""
    if plan.path.exists() and (
        not plan.path.is_file() or plan.path.read_bytes() != plan.text.encode("utf-8")
    ):
        return plan.path
    for src, to in plan.media:
        if to.exists() and (not to.is_file() or to.read_bytes() != src.read_bytes()):
            return to
    return None
