"""Serving the built site (``paths.output``): archive pages, feeds, tag pages, media.

Feed readers poll, so conditional requests are the common case: every file
gets a strong ``ETag`` (a hash of its bytes) and ``Last-Modified`` (its mtime),
and ``If-None-Match`` / ``If-Modified-Since`` answer 304. Hashes, and the bytes
of small files, are cached in memory keyed by (path, mtime, size): a poll of
``/feed.xml`` costs one ``stat`` and no read. Text files of 1 KB and more are
also kept gzip-compressed (once per change) and served so to clients that
accept it, under an ETag of their own and ``Vary: Accept-Encoding``: a feed
is 4-6x smaller on the wire. Paths are checked twice against
traversal: no ``..``, hidden or backslash segments, and the real path (symlinks
resolved) must lie inside the output folder.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import os
import threading
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.responses import FileResponse, RedirectResponse, Response

from publisher.errors import NotFoundError
from publisher.feeds import MEDIA_TYPES
from publisher.web.api import require_token
from publisher.web.pages import error_page, site_root
from publisher.web.requests import web_context

router = APIRouter(include_in_schema=False)


class SitePath(PathConvertor):
    """Any path but the console's (/admin...), so the archive can be matched before the console.

    Starlette tries routes in order: with the archive last, every page and feed request was
    first matched against each of the console's ~40 routes (~15 % of the feed's req/s).
    """

    regex = r"(?!admin(?:/|$)).*"


register_url_convertor("site_path", SitePath())

MAX_CACHED_FILE = 2 * 1024 * 1024  # bytes kept in memory per file...
MAX_CACHED_TOTAL = 64 * 1024 * 1024  # ...and in all
CACHE_CONTROL = "no-cache"  # may be stored, must be revalidated (cheap: a 304)
MIN_COMPRESS = 1024  # bytes below which gzip's header costs more than it saves
_COMPRESSIBLE = (
    "text/",
    "application/rss+xml",
    "application/atom+xml",
    "application/feed+json",
    "application/json",
    "application/xml",
    "image/svg+xml",
)
_TYPES = {
    **{name: f"{kind}; charset=utf-8" for name, kind in MEDIA_TYPES.items()},
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".eml": "message/rfc822",
}


@dataclass(frozen=True)
class Entry:
    real: str  # the real path, checked to be inside the output folder
    key: tuple[int, int]  # (mtime_ns, size) the rest was computed from
    etag: str
    last_modified: str
    mtime: int  # whole seconds, for If-Modified-Since
    media_type: str
    body: bytes | None  # None: too large to keep, streamed from disk
    gzipped: bytes | None = None  # the body gzip-compressed, for clients that accept it

    @property
    def gzip_etag(self) -> str:
        """Another representation, another strong ETag (RFC 9110 8.8.3)."""
        return self.etag[:-1] + '-gz"'


def media_type(name: str) -> str:
    if name in _TYPES:
        return _TYPES[name]
    ext = os.path.splitext(name)[1].lower()
    if ext in _TYPES:
        return _TYPES[ext]
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def safe_parts(url_path: str) -> list[str] | None:
    """The path's segments, or None if it tries to leave the folder or reach hidden files."""
    if "\\" in url_path or "\x00" in url_path:
        return None
    parts = [p for p in url_path.split("/") if p]
    if any(p in (".", "..") or p.startswith(".") for p in parts):
        return None
    return parts


def etag_matches(header: str, etag: str) -> bool:
    """If-None-Match uses the weak comparison: W/"x" matches "x"; '*' matches anything."""
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


class Archive:
    """The output folder with its in-memory cache of hashes and small files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._real_root = os.path.realpath(root)
        self._entries: dict[str, Entry] = {}
        self._total = 0
        self._lock = threading.Lock()

    def built(self) -> bool:
        return os.path.isfile(os.path.join(self.root, "index.html"))

    def cached(self, url_path: str) -> Entry | None:
        """The entry for ``url_path`` if the file is unchanged since it was cached (one stat)."""
        entry = self._entries.get(url_path)
        if entry is None:
            return None
        try:
            st = os.stat(entry.real)
        except OSError:
            return None
        return entry if (st.st_mtime_ns, st.st_size) == entry.key else None

    def locate(self, parts: list[str], want_dir: bool) -> tuple[str, os.stat_result] | str | None:
        """(real path, stat) of the file; 'dir' if it is a folder asked without a slash; None if absent."""
        candidate = os.path.join(self.root, *parts)
        if want_dir:
            candidate = os.path.join(candidate, "index.html")
        real = os.path.realpath(candidate)
        if real != self._real_root and not real.startswith(self._real_root + os.sep):
            return None
        try:
            st = os.stat(real)
        except OSError:
            return None
        if os.path.isdir(real):
            return "dir"
        return (real, st) if os.path.isfile(real) else None

    def load(self, url_path: str, real: str, st: os.stat_result) -> Entry:
        """Hash (and maybe keep) the file; done in a worker thread, once per change."""
        digest = hashlib.sha256()
        keep = st.st_size <= MAX_CACHED_FILE
        chunks: list[bytes] = []
        with open(real, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
                if keep:
                    chunks.append(block)
        body = b"".join(chunks) if keep else None
        if body is not None and len(body) != st.st_size:  # changed while we read: do not cache it
            st = os.stat(real)
        kind = media_type(os.path.basename(real))
        entry = Entry(
            real=real,
            key=(st.st_mtime_ns, st.st_size),
            etag=f'"{digest.hexdigest()[:40]}"',
            last_modified=formatdate(st.st_mtime, usegmt=True),
            mtime=int(st.st_mtime),
            media_type=kind,
            body=body,
            gzipped=_compressed(body, kind),
        )
        with self._lock:
            old = self._entries.pop(url_path, None)
            if old is not None and old.body is not None:
                self._total -= len(old.body) + len(old.gzipped or b"")
            if body is not None and self._total + len(body) > MAX_CACHED_TOTAL:
                entry = Entry(**{**entry.__dict__, "body": None, "gzipped": None})
            if entry.body is not None:
                self._total += len(entry.body) + len(entry.gzipped or b"")
            self._entries[url_path] = entry
        return entry


def _compressed(body: bytes | None, kind: str) -> bytes | None:
    """gzip of a text body worth compressing (made once per change; mtime 0: the same bytes each time)."""
    if body is None or len(body) < MIN_COMPRESS or not kind.startswith(_COMPRESSIBLE):
        return None
    packed = gzip.compress(body, compresslevel=6, mtime=0)
    return packed if len(packed) < len(body) else None


def accepts_gzip(header: str) -> bool:
    """Does ``Accept-Encoding`` allow gzip (by name or ``*``, with a q above 0)?"""
    for item in header.lower().split(","):
        name, _, params = item.strip().partition(";")
        if name.strip() in ("gzip", "x-gzip", "*"):
            q = params.strip().removeprefix("q=") if params.strip().startswith("q=") else "1"
            try:
                if float(q) > 0:
                    return True
            except ValueError:
                continue
    return False


def not_modified(request: Request, etag: str, mtime: int) -> bool:
    inm = request.headers.get("if-none-match")
    if inm is not None:
        return etag_matches(inm, etag)
    ims = request.headers.get("if-modified-since")
    if ims:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError, IndexError):
            return False
        return since.tzinfo is not None and mtime <= since.timestamp()
    return False


def respond(request: Request, entry: Entry) -> Response:
    """The file, gzip-compressed when the client takes it, each encoding with its own ETag."""
    packed = entry.gzipped is not None and accepts_gzip(request.headers.get("accept-encoding", ""))
    etag = entry.gzip_etag if packed else entry.etag
    headers = {"ETag": etag, "Last-Modified": entry.last_modified, "Cache-Control": CACHE_CONTROL}
    if entry.gzipped is not None:
        headers["Vary"] = "Accept-Encoding"
    if not_modified(request, etag, entry.mtime):
        return Response(status_code=304, headers=headers)
    if packed:
        headers["Content-Encoding"] = "gzip"
        return Response(entry.gzipped, media_type=entry.media_type, headers=headers)
    if entry.body is not None:
        return Response(entry.body, media_type=entry.media_type, headers=headers)
    return FileResponse(entry.real, media_type=entry.media_type, headers=headers)


@router.api_route("/{url_path:site_path}", methods=["GET", "HEAD"])
async def serve_file(request: Request, url_path: str) -> Response:
    archive: Archive = request.app.state.archive
    key = url_path + "index.html" if not url_path or url_path.endswith("/") else url_path
    entry = archive.cached(key)
    if entry is not None:
        return respond(request, entry)
    return await _slow_path(request, archive, url_path, key)


async def _slow_path(request: Request, archive: Archive, url_path: str, key: str) -> Response:
    settings = web_context(request).settings
    if url_path == "api" or url_path.startswith("api/"):  # unknown API paths answer JSON, not a page
        require_token(request)
        raise NotFoundError("no such API endpoint", hint="see /openapi.json")
    parts = safe_parts(url_path)
    if parts is None:
        return error_page(settings, 404, "Not found", "There is no such page.")
    if not archive.built():
        return error_page(
            settings,
            503,
            "The site is not built yet",
            "The archive and feeds appear here once the site has been built.",
            hint="run `publisher build`, then reload this page",
            headers={"Retry-After": "60"},
        )
    found = await run_in_threadpool(archive.locate, parts, not url_path or url_path.endswith("/"))
    if found == "dir":
        # built from the checked segments, so '//host' can never become an open redirect
        target = site_root(settings) + "/".join(parts) + "/"
        target += f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(target, status_code=301)
    if found is None:
        return error_page(settings, 404, "Not found", "There is no such page in the archive.")
    assert not isinstance(found, str)
    real, st = found
    entry = await run_in_threadpool(archive.load, key, real, st)
    return respond(request, entry)
