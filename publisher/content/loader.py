"""Read ``paths.issues`` into Issues and Articles, collecting every problem.

Nothing stops at the first mistake: each file is checked in full and all the
problems (with file and line) are raised together, so an editor fixes a batch
of issues in one pass. The only files read are those under ``paths.issues``.
"""

from __future__ import annotations

import difflib
import hashlib
import mimetypes
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from publisher.config import Settings
from publisher.content.fields import (
    DATE_HINT,
    bool_value,
    int_value,
    tag_values,
    text_value,
    when_value,
)
from publisher.content.frontmatter import Document, decode, parse_document
from publisher.content.images import body_images, file_problem, page_path
from publisher.content.scan import Unit, relative
from publisher.content.subject_test import KEYS as TEST_KEYS
from publisher.content.subject_test import subject_test_of
from publisher.content.summary import summarize
from publisher.errors import Problem
from publisher.models import Article, Issue

T = TypeVar("T")

ARTICLE_KEYS = ("title", "date", "author", "tags", "summary", "image", "image_alt", "draft", "order")
ISSUE_KEYS = ("subject", "send_at", "preheader", *TEST_KEYS)
INDEX_KEYS = ("title", "date", "draft", *ISSUE_KEYS)
_ALL_KEYS = (*ARTICLE_KEYS, *ISSUE_KEYS)


@lru_cache(maxsize=1)
def _mime() -> mimetypes.MimeTypes:
    """Built-in types only, so a machine's /etc/mime.types cannot change the feeds."""
    types = mimetypes.MimeTypes(filenames=())
    types.add_type("image/webp", ".webp")
    return types


@dataclass
class Loader:
    """Turns scanned units into Issues; ``problems`` collects everything wrong on the way."""

    settings: Settings
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # shown by `publisher check`, never fatal
    _media: dict[str, Path] = field(default_factory=dict)
    _rel: dict[Path, str] = field(default_factory=dict)
    _dirs: dict[str, str | None] = field(default_factory=dict)  # folder -> its path as the user sees it
    read: dict[str, bytes] | None = None  # when set, the bytes of every file read (the build hashes them)

    def rel(self, path: Path) -> str:
        """Memoised per file and per folder: resolving a path costs ~0.1 ms (a stat per part).

        A file that is not a symlink resolves to its resolved folder plus its name, so
        one lstat names every further file of a folder already seen.
        """
        found = self._rel.get(path)
        if found is None:
            folder, name = os.path.split(str(path))
            if folder not in self._dirs:
                seen = relative(Path(folder), self.settings)
                self._dirs[folder] = None if os.path.isabs(seen) or seen.startswith("..") else seen
            base = self._dirs[folder]
            if base is None or os.path.islink(path):
                found = relative(path, self.settings)
            else:
                found = name if base == "." else f"{base}/{name}"
            self._rel[path] = found
        return found

    @property
    def _root(self) -> Path:
        return self.settings.paths.issues.resolve()

    def issue(self, unit: Unit) -> tuple[Issue | None, list[Article]]:
        """The unit as an Issue (None if it has problems) and the draft articles left out of it."""
        if unit.is_folder:
            return self._folder_issue(unit)
        return self._single_issue(unit), []

    # -- issues ---------------------------------------------------------------------------

    def _single_issue(self, unit: Unit) -> Issue | None:
        doc, raw = self._read(unit.path)
        if doc is None:
            return None
        where = self.rel(unit.path)
        article = self._article(unit.path, doc, raw, unit.slug, (*ARTICLE_KEYS, *ISSUE_KEYS))
        subject, send_at, preheader = self._issue_fields(doc, where)
        test = subject_test_of(doc, where, self.problems)
        if article is None:
            return None
        return Issue(
            slug=unit.slug,
            title=article.title,
            subject=test.subjects[0] if test else subject or article.title,
            date=article.date,
            articles=(article,),
            source=unit.path,
            preheader=preheader,
            send_at=send_at,
            draft=article.draft,
            is_folder=False,
            subject_test=test,
        )

    def _folder_issue(self, unit: Unit) -> tuple[Issue | None, list[Article]]:
        index = unit.path / "index.md"
        where = self.rel(index)
        doc, _ = self._read(index)
        articles: list[Article | None] = []
        for path in unit.articles:
            art_doc, raw = self._read(path)
            articles.append(
                self._article(path, art_doc, raw, unit.slug, ARTICLE_KEYS, in_folder=True)
                if art_doc
                else None
            )
        if not unit.articles:
            self.problems.append(
                Problem(where, "a folder issue needs at least one article: add a .md file beside index.md", 1)
            )
        if doc is None:
            return None, []
        self._unknown_keys(doc, INDEX_KEYS, where, index=True)
        title = self._required(doc, "title", where, text_value)
        when = self._field(doc, "date", where, lambda v: when_value(v, self.settings.site.tz))
        draft = self._field(doc, "draft", where, bool_value, False)
        subject, send_at, preheader = self._issue_fields(doc, where)
        test = subject_test_of(doc, where, self.problems)
        if title is None or any(a is None for a in articles) or not articles:
            return None, []
        loaded = [a for a in articles if a is not None]
        published = sorted((a for a in loaded if not a.draft), key=lambda a: (a.order, a.source.name))
        drafts = [a for a in loaded if a.draft]
        if not published and not draft:
            self.problems.append(
                Problem(
                    where,
                    "every article in this issue is a draft: publish one, or mark the issue draft: true",
                    doc.line("draft") or 1,
                )
            )
            return None, []
        issue = Issue(
            slug=unit.slug,
            title=title,
            subject=test.subjects[0] if test else subject or title,
            date=when or max(a.date for a in (published or loaded)),
            articles=tuple(published),
            source=index,
            intro=doc.body,
            preheader=preheader,
            send_at=send_at,
            draft=draft,
            is_folder=True,
            subject_test=test,
        )
        return issue, drafts

    def _issue_fields(self, doc: Document, where: str) -> tuple[str, datetime | None, str]:
        tz = self.settings.site.tz
        subject = self._field(doc, "subject", where, text_value, "")
        send_at = self._field(doc, "send_at", where, lambda v: when_value(v, tz, need_time=True))
        preheader = self._field(doc, "preheader", where, text_value, "")
        return subject, send_at, preheader

    # -- articles -------------------------------------------------------------------------

    def _article(
        self,
        path: Path,
        doc: Document,
        raw: bytes,
        issue_slug: str,
        allowed: tuple[str, ...],
        *,
        in_folder: bool = False,
    ) -> Article | None:
        where = self.rel(path)
        before = len(self.problems)
        self._unknown_keys(doc, allowed, where, in_folder=in_folder)
        title = self._required(doc, "title", where, text_value)
        when = self._required(doc, "date", where, lambda v: when_value(v, self.settings.site.tz))
        author = self._field(doc, "author", where, text_value)
        tags = self._tags(doc, where)
        summary = self._field(doc, "summary", where, text_value, "") or summarize(doc.body)
        image, image_file, image_type, image_length = self._image(doc, path, issue_slug, where)
        image_alt = self._field(doc, "image_alt", where, text_value, "")
        self._body_images(doc, path, where)
        if image and not image_alt:
            hint = "image_alt: missing; describe the image for readers who cannot see it"
            self.warnings.append(Problem(where, hint, doc.line("image")))
        draft = self._field(doc, "draft", where, bool_value, False)
        order = self._field(doc, "order", where, int_value, 0)
        if len(self.problems) > before or title is None or when is None:
            return None
        slug = path.stem
        return Article(
            slug=slug,
            title=title,
            date=when,
            body=doc.body,
            source=path,
            issue_slug=issue_slug,
            summary=summary,
            author=author or None,
            tags=tags,
            image=image,
            image_alt=image_alt,
            image_file=image_file,
            image_type=image_type,
            image_length=image_length,
            draft=draft,
            order=order,
            body_line=doc.body_line,
            id=f"tag:{self.settings.site.domain},{when:%Y-%m-%d}:/{slug}",
            content_hash=hashlib.sha256(raw).hexdigest(),
        )

    def _tags(self, doc: Document, where: str) -> tuple[str, ...]:
        value = doc.meta.get("tags")
        if value is None:
            return ()
        try:
            items = tag_values(value)
        except ValueError as exc:
            self.problems.append(Problem(where, f"tags: {exc}", doc.line("tags")))
            return ()
        for index, slug in items:
            if not slug:
                shown = value[index]
                self.problems.append(
                    Problem(
                        where,
                        f"tags: item {index + 1} ({shown!r}) is not a tag (use words, letters or digits)",
                        doc.item_line("tags", index),
                    )
                )
        return tuple(slug for _, slug in items if slug)

    def _image(
        self, doc: Document, path: Path, issue_slug: str, where: str
    ) -> tuple[str | None, Path | None, str, int]:
        none: tuple[str | None, Path | None, str, int] = (None, None, "", 0)
        value = doc.meta.get("image")
        if value is None:
            return none
        line = doc.line("image")
        if not isinstance(value, str) or not value.strip():
            self.problems.append(Problem(where, "image: expected a URL or a path to an image file", line))
            return none
        ref = value.strip()
        parts = urlsplit(ref)
        if parts.scheme:
            if parts.scheme.lower() in ("http", "https") and parts.netloc:
                return ref, None, _mime().guess_type(parts.path)[0] or "", 0
            self.problems.append(
                Problem(
                    where, f"image: expected an http(s) URL or a path next to the article, got {ref!r}", line
                )
            )
            return none
        if ref.startswith(("/", "\\")):
            self.problems.append(
                Problem(
                    where,
                    f"image: use a path relative to the article (e.g. media/photo.png), not {ref!r}",
                    line,
                )
            )
            return none
        file = (path.parent / ref).resolve()
        mime = _mime().guess_type(file.name)[0] or ""
        message = file_problem("image", ref, file, mime, (file.name,), self._root, self.rel)
        if message is None:
            site_path = f"media/{issue_slug}/{file.name}"
            owner = self._media.setdefault(site_path, file)
            if owner == file:
                return site_path, file, mime, file.stat().st_size
            message = f"image: {site_path} would also be {self.rel(owner)}; rename one of the two files"
        self.problems.append(Problem(where, message, line))
        return none

    def _body_images(self, doc: Document, path: Path, where: str) -> None:
        """Each local image of the body must exist beside the article: it is copied to the article's page."""
        for image in body_images(doc.body):
            label = f"image in the body ({image.ref})"
            line = doc.body_line + image.line
            rel = page_path(image.ref)
            if rel is None:
                self.problems.append(
                    Problem(
                        where,
                        f"{label}: keep body images in the article's folder or below (e.g. media/photo.png)",
                        line,
                    )
                )
                continue
            file = (path.parent / rel).resolve()
            mime = _mime().guess_type(file.name)[0] or ""
            message = file_problem(label, image.ref, file, mime, tuple(rel.split("/")), self._root, self.rel)
            if message is not None:
                self.problems.append(Problem(where, message, line))

    # -- front matter helpers ---------------------------------------------------------------

    def _read(self, path: Path) -> tuple[Document | None, bytes]:
        where = self.rel(path)
        try:
            raw = path.read_bytes()
            if self.read is not None:
                self.read[str(path)] = raw
        except OSError as exc:
            self.problems.append(Problem(where, f"cannot read the file: {exc.strerror or exc}"))
            return None, b""
        text = decode(raw, where, self.problems)
        if text is None:
            return None, raw
        return parse_document(text, where, self.problems), raw

    def _unknown_keys(
        self,
        doc: Document,
        allowed: tuple[str, ...],
        where: str,
        *,
        index: bool = False,
        in_folder: bool = False,
    ) -> None:
        for key in doc.meta:
            if key in allowed:
                continue
            if key in ISSUE_KEYS and in_folder:
                message = f"{key}: belongs in the issue's index.md, not in an article"
            elif key in _ALL_KEYS and index:
                message = f"{key}: belongs in each article, not in index.md"
            else:
                close = difflib.get_close_matches(key.lower(), allowed, n=1, cutoff=0.6)
                message = f"{key}: unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
            self.problems.append(Problem(where, message, doc.line(key)))

    def _field(
        self, doc: Document, key: str, where: str, check: Callable[[Any], T], default: Any = None
    ) -> Any:
        value = doc.meta.get(key)
        if value is None:
            return default
        try:
            return check(value)
        except ValueError as exc:
            self.problems.append(Problem(where, f"{key}: {exc}", doc.line(key)))
            return default

    def _required(self, doc: Document, key: str, where: str, check: Callable[[Any], T]) -> T | None:
        if doc.meta.get(key) is None:
            example = {"title": "title: A short headline", "date": "date: 2026-05-01"}.get(key, key)
            self.problems.append(
                Problem(where, f"{key}: missing; add a line like '{example}'", doc.line(key) or 1)
            )
            return None
        value = self._field(doc, key, where, check)
        if isinstance(value, str) and not value:
            self.problems.append(Problem(where, f"{key}: is empty", doc.line(key)))
            return None
        return value


def hint_for(problems: list[Problem]) -> str:
    """The one hint worth showing under a list of content problems."""
    if any(p.message.startswith(("date:", "send_at:")) for p in problems):
        return DATE_HINT
    return "fix the files listed above, then run `publisher check` again"
