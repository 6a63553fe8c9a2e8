"""Group commit for append-only events from the web app: one writer, one transaction per burst.

One implementation for every burst the web app writes: clicks
(``redirect.ClickWriter``), opens (``opens.OpenWriter``) and one-click
unsubscribes (``manage.OneClickWriter``). Mailbox providers post and fetch in
bursts right after a send, while the drain takes SQLite's write lock every few
milliseconds: a read and a write per request from the threadpool made 40
threads queue for 15 pooled connections and sleep in SQLite's busy handler
(315-660 req/s, p99 0.8-1.7 s in bench/web.py), and batching through the
threadpool still paid ~7 ms a hop on a busy loop. So: a request hands its event to
``record`` and waits; the first waiter starts a writer task that takes
everything queued so far and writes it with one call of ``write(events,
conn=...)``, then takes what arrived meanwhile, until nothing waits. So a burst
after a send costs one transaction, not one per request, and every request is
answered after its own event is committed (or with the error its write raised).

On SQLite the writer runs on the event loop with a connection held for the
burst and never waits for the lock (``store.write_now`` raises
``WriteBusyError`` at once; it retries every millisecond up to the store's busy
timeout, then falls back to a thread), so no thread pool hop per burst; on
PostgreSQL each write runs in the thread pool. That connection does not
checkpoint the WAL as it commits (a checkpoint syncs the file: 5-12 ms, tens
under load, on the loop): the writer runs one in a thread at most every
``CHECKPOINT_SECONDS`` instead (``Database.checkpoint``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from starlette.concurrency import run_in_threadpool

from publisher.store import Store
from publisher.store.engine import BUSY_TIMEOUT_MS, WriteBusyError

if TYPE_CHECKING:
    from sqlalchemy import Connection

log = logging.getLogger("publisher.web")
BUSY_RETRY_SECONDS = 0.001
CHECKPOINT_SECONDS = 1.0
E = TypeVar("E")
E_contra = TypeVar("E_contra", contravariant=True)


class Write(Protocol[E_contra]):
    """How a batch is written: ``store.opens.record`` and ``store.clicks.record`` have this shape."""

    def __call__(self, events: Sequence[E_contra], /, *, conn: Connection | None = None) -> object: ...


class GroupWriter(Generic[E]):
    """Events of one kind, committed in groups (see the module doc)."""

    def __init__(self, store: Store, write: Write[E]) -> None:
        """``write``: the store's batch writer for these events, e.g. ``store.opens.record``."""
        self._store = store
        self._write_fn = write
        self._waiting: list[tuple[E, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._conn: Connection | None = None
        self._checkpoint: asyncio.Future[None] | None = None
        self._checkpointed = time.monotonic()

    async def record(self, event: E) -> None:
        """Return once ``event`` is committed (or raise what the write raised)."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((event, done))
        if self._task is None:
            self._task = asyncio.create_task(self._write_all())
        await done

    async def _write_all(self) -> None:
        batch: list[tuple[E, asyncio.Future[None]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await self._write([e for e, _ in batch])
                except Exception as exc:
                    _settle(batch, exc)
                else:
                    _settle(batch, None)
                batch = []
                await asyncio.sleep(0)  # let requests arriving meanwhile join the next write
        finally:
            self._task = None
            if self._conn is not None:
                conn, self._conn = self._conn, None
                try:
                    self._store.defer_checkpoints(conn, False)  # back in the pool as it came
                finally:
                    conn.close()
            for _, done in batch + self._waiting:  # only when cancelled (shutdown)
                done.cancel()
            self._waiting = []

    async def _write(self, events: list[E]) -> None:
        write = self._write_fn
        if self._store.dialect != "sqlite":
            await run_in_threadpool(write, events)
            return
        if self._conn is None:  # the pool may make us wait: not on the loop
            self._conn = await run_in_threadpool(self._store.connect)
            self._store.defer_checkpoints(self._conn, True)
        give_up = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while time.monotonic() < give_up:
            try:
                write(events, conn=self._conn)
                self._checkpoint_soon()
                return
            except WriteBusyError:
                await asyncio.sleep(BUSY_RETRY_SECONDS)
        await run_in_threadpool(write, events)  # wait as every writer does, or fail

    def _checkpoint_soon(self) -> None:
        """Checkpoint the WAL in a thread at most every ``CHECKPOINT_SECONDS`` (never on the loop)."""
        now = time.monotonic()
        if self._checkpoint is not None or now - self._checkpointed < CHECKPOINT_SECONDS:
            return
        self._checkpointed = now
        self._checkpoint = asyncio.ensure_future(run_in_threadpool(self._store.checkpoint))
        self._checkpoint.add_done_callback(self._checkpoint_done)

    def _checkpoint_done(self, task: asyncio.Future[None]) -> None:
        self._checkpoint = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("WAL checkpoint failed: %s", task.exception())


def _settle(batch: list[tuple[E, asyncio.Future[None]]], exc: Exception | None) -> None:
    for _, done in batch:
        if not done.done():
            if exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)
