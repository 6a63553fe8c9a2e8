"""A helper process that imports the email renderer while the build does everything else.

Rendering one email is quick (~25 ms), but importing the renderer (premailer,
cssutils, lxml.html) and making a first email (templates compiled, CSS parsed)
costs ~0.25 s: most of a rebuild after one edit. So a
build that may make emails forks this helper first; it imports on the other
core while the parent loads the cache and plans, then renders the few emails
a small rebuild needs. A big build sends its emails to the pool instead, and
the helper is killed unused.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

from publisher.config import Settings
from publisher.models import Article, Issue
from publisher.ops.build_content import _SHARED

FEW = 64  # at most this many email tasks go to the helper (more: the pool)


def _warm(settings: Settings) -> None:
    """Import the renderer and make one throwaway email: templates compiled, CSS parsed."""
    from publisher.render.email import issue_email_files

    when = datetime(2000, 1, 1, tzinfo=UTC)
    source = settings.paths.issues / "warm-up.md"
    article = Article("warm-up", "Warm up", when, "Warm up.\n", source, "warm-up", summary="Warm up.")
    issue = Issue("warm-up", "Warm up", "Warm up", when, (article,), source)
    issue_email_files(settings, issue, secret=b"warm-up")


def _main(conn: Connection, settings: Settings) -> None:
    with contextlib.suppress(Exception):  # a real email will say what is wrong, not the warm-up
        _warm(settings)
    from publisher.ops.build_pages import run_task

    work = conn.recv()
    if work is None:
        return
    tasks, shared = work
    _SHARED.update(shared)
    try:
        conn.send(("ok", [run_task(t) for t in tasks]))
    except Exception:  # the parent renders them itself, to raise the error the user should see
        conn.send(("failed", None))


class EmailHelper:
    """One forked process, warm with the email renderer."""

    def __init__(self, settings: Settings) -> None:
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_main, args=(child, settings), daemon=True)
        self.proc.start()
        child.close()
        self.sender: threading.Thread | None = None
        self.failed = False

    def submit(self, tasks: list[Any], shared: dict[str, Any]) -> None:
        """Hand the tasks over without waiting: the helper may still be warming up, and a
        message bigger than the pipe's buffer would block until it reads."""

        def send() -> None:
            try:
                self.conn.send((tasks, shared))
            except OSError:
                self.failed = True

        self.sender = threading.Thread(target=send, name="email-helper-send", daemon=True)
        self.sender.start()

    def collect(self) -> list[Any] | None:
        """The submitted tasks' results, or None if the helper failed (then run them here)."""
        if self.sender is None:
            return None
        self.sender.join()
        if self.failed:
            return None
        try:
            status, results = self.conn.recv()
        except (OSError, EOFError):
            return None
        return results if status == "ok" else None

    def close(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()  # unused, or done: nothing of it is worth waiting for
        self.proc.join()
        self.conn.close()
