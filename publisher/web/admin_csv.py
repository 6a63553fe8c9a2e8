"""The console's CSV upload (checked first, imported on confirmation) and CSV export.

Upload: the file is copied to a private temporary folder under a random
token, bound to the editor's session (the file's name is a hash of both, so
another session cannot confirm it), and checked with ``csv_dryrun.check_csv``,
which runs the CLI's own import with every write rolled back: the editor sees
each refused row with its row number before anything is written. The confirm
button imports the kept file with ``Subscribers.import_csv`` (the CLI's
``subscribers import``) and deletes it; files left over an hour are swept at
the next upload. The folder is on this machine: a multi-host deployment needs
sticky sessions for the two steps.

Export streams ``csvio.export_csv`` (the CLI's ``subscribers export``, formula
cells escaped) a chunk of rows at a time, with the list's filters.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import Response, StreamingResponse

from publisher.errors import NotFoundError
from publisher.ops.editors import record_audit
from publisher.ops.feedback import hasher_for
from publisher.store import Store
from publisher.store.csv_dryrun import check_csv
from publisher.store.csvcells import CsvHeaderError
from publisher.store.csvio import ImportReport, Suppression, export_csv
from publisher.store.editors import EditorSession
from publisher.store.subscriber_search import Search
from publisher.store.values import InvalidValueError
from publisher.web.admin_auth import EditorOnly, ViewerSession, check_token, csrf_token
from publisher.web.admin_auth import console_page as render
from publisher.web.admin_render import EditorForm, search_of
from publisher.web.middleware import BodyTooLargeError
from publisher.web.requests import web_context
from publisher.web.security import check_same_origin

router = APIRouter(include_in_schema=False)
MAX_UPLOAD = 20 * 1024 * 1024  # bytes: about 300,000 rows
KEEP_FOR = 3600.0  # seconds an unconfirmed upload is kept
EXPORT_CHUNK = 2000
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def upload_folder() -> Path:
    """The private folder for uploads waiting for confirmation (mode 0700, one per user)."""
    folder = Path(tempfile.gettempdir()) / f"publisher-csv-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def upload_path(session_id: str, token: str) -> Path:
    """Where the upload ``token`` of this session lives: unguessable and unusable by another session."""
    name = hashlib.sha256(f"{session_id}:{token}".encode()).hexdigest()
    return upload_folder() / f"{name}.csv"


def sweep(folder: Path, now: float, keep_for: float = KEEP_FOR) -> int:
    """Delete uploads older than ``keep_for`` seconds (``now``: the file system's clock)."""
    gone = 0
    for path in [*folder.glob("*.csv"), *folder.glob("*.importing")]:
        try:
            if now - path.stat().st_mtime > keep_for:
                path.unlink()
                gone += 1
        except FileNotFoundError:
            continue  # another worker swept it
    return gone


def _copy(upload: IO[bytes], path: Path) -> None:
    """Copy the upload to ``path`` (0600), refusing it past MAX_UPLOAD."""
    size = 0
    with path.open("xb") as out:
        os.chmod(path, 0o600)
        while chunk := upload.read(64 * 1024):
            size += len(chunk)
            if size > MAX_UPLOAD:
                out.close()
                path.unlink()
                raise BodyTooLargeError(f"the file is over {MAX_UPLOAD // (1024 * 1024)} MB")
            out.write(chunk)


def _run(store: Store, path: Path, *, check: bool, now: datetime, suppression: Suppression) -> ImportReport:
    """Check (nothing written) or import the kept file, read as the CLI reads it."""
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as source:
        if check:
            return check_csv(store, source, now=now, source_name="upload", suppression=suppression)
        return store.subscribers.import_csv(source, now=now, source_name="upload", suppression=suppression)


def _report(request: Request, path: Path, *, check: bool) -> tuple[ImportReport | None, str | None]:
    """The import's (or the check's) report, or the message of a file that cannot be imported at all."""
    ctx = web_context(request)
    suppression = Suppression(hasher_for(ctx.settings.secret_key()))
    try:
        return _run(ctx.store, path, check=check, now=ctx.now(), suppression=suppression), None
    except CsvHeaderError as exc:
        return None, "; ".join(exc.lines())


def _import_page(
    request: Request,
    session: EditorSession,
    title: str,
    *,
    report: ImportReport | None = None,
    fatal: str | None = None,
    token: str | None = None,
    checking: bool = False,
) -> Response:
    return render(
        request,
        "admin_import.html",
        title=title,
        csrf=csrf_token(web_context(request).secret, session),
        can_change=session.editor.role == "editor",
        max_mb=MAX_UPLOAD // (1024 * 1024),
        report=report,
        fatal=fatal,
        token=token,
        checking=checking,
    )


@router.get("/admin/subscribers/import")
def import_form(request: Request, session: ViewerSession) -> Response:
    """The upload form (viewers see it, but only an editor's upload is accepted)."""
    return _import_page(request, session, "Import subscribers")


async def _upload(request: Request, session: EditorSession) -> UploadFile:
    """The form's one file, after the same-origin and CSRF checks ``editor_form`` makes."""
    ctx = web_context(request)
    check_same_origin(request, ctx.settings.site.url)
    form = await request.form(max_files=1, max_fields=5, max_part_size=ctx.limits.max_body)
    check_token(csrf_token(ctx.secret, session), form.get("csrf"))
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidValueError("choose a CSV file to upload", hint="go back and pick the file")
    return upload


@router.post("/admin/subscribers/import")
async def upload(request: Request, session: EditorOnly) -> Response:
    """Keep the upload under a new token and show the row-by-row check; nothing is imported yet."""
    file = await _upload(request, session)
    await run_in_threadpool(sweep, upload_folder(), time.time())
    token = secrets.token_urlsafe(24)
    path = upload_path(session.id, token)
    await run_in_threadpool(_copy, file.file, path)
    report, fatal = await run_in_threadpool(lambda: _report(request, path, check=True))
    token_ = token if report is not None and report.imported else None
    if token_ is None:  # nothing to confirm: keep nothing
        path.unlink(missing_ok=True)
    return _import_page(
        request, session, "Import subscribers: check", report=report, fatal=fatal, token=token_, checking=True
    )


@router.post("/admin/subscribers/import/confirm")
async def confirm(request: Request, session: EditorOnly, form: EditorForm) -> Response:
    """Import the file checked before (this session's only), then delete it; audited."""
    ctx = web_context(request)
    token = form.get("token")
    if not isinstance(token, str) or not 20 <= len(token) <= 64 or not set(token) <= _TOKEN_CHARS:
        raise InvalidValueError("this upload is not known", hint="upload the file again")
    path = upload_path(session.id, token).with_suffix(".importing")
    try:  # taken atomically: a second click (or a second worker) finds nothing
        upload_path(session.id, token).rename(path)
    except FileNotFoundError:
        raise NotFoundError(
            "this upload has expired or was imported already", hint="upload the file again"
        ) from None
    try:
        report, fatal = await run_in_threadpool(lambda: _report(request, path, check=False))
    finally:
        path.unlink(missing_ok=True)
    if report is not None:
        detail = f"{report.added} added, {report.updated} updated, {report.refused} refused"
        await run_in_threadpool(
            lambda: record_audit(
                ctx.store,
                actor=session.editor.email,
                action="subscribers.import",
                detail=detail,
                now=ctx.now(),
            )
        )
    return _import_page(request, session, "Import subscribers: done", report=report, fatal=fatal)


def export_chunks(store: Store, search: Search, chunk: int = EXPORT_CHUNK) -> Iterator[bytes]:
    """The CSV a chunk of rows at a time: ``export_csv`` per chunk, its header kept only once.

    ``export_csv`` writes each row on its own, so the chunks joined are the bytes
    one call would write (the round-trip test checks it against the CLI's file).
    """
    rows = (
        s for s in store.subscribers.iter(search.filter, chunk=chunk) if search.zone in (None, s.timezone)
    )
    first = True
    while True:
        batch = list(itertools.islice(rows, chunk))
        if not batch and not first:
            return
        out = io.StringIO()
        export_csv(batch, out)
        text = out.getvalue()
        yield (text if first else text.split("\n", 1)[1]).encode("utf-8")
        first = False
        if len(batch) < chunk:
            return


@router.get("/admin/subscribers/export.csv")
def export(request: Request, session: ViewerSession) -> Response:
    """The subscribers the list's filters select, as the import's CSV (streamed)."""
    ctx = web_context(request)
    search = search_of(request.query_params)
    record_audit(ctx.store, actor=session.editor.email, action="subscribers.export", now=ctx.now())
    return StreamingResponse(
        export_chunks(ctx.store, search),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="subscribers.csv"'},
    )
