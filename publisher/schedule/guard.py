"""One `publisher run` per database: an OS file lock and a lease row with a heartbeat.

Two schedulers would double-fire every wake-up. The file lock (under
``paths.state``) answers at once on one machine and is released by the OS
when the process dies, even by ``kill -9``. The lease row in the database
covers two machines (or two project folders) on one database: it carries a
heartbeat and an expiry, so a killed process's lease runs out by itself, and
one left by a dead process on this very machine is taken over at once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from publisher.config import Settings
from publisher.errors import PublisherError
from publisher.store import Store
from publisher.store.leases import LeaseHeldError, Leases, default_owner, owner_is_dead

LEASE = "scheduler"
TTL = timedelta(seconds=30)
BEAT = 5.0  # seconds between heartbeats: well inside the TTL
log = logging.getLogger("publisher.schedule")


class AlreadyRunningError(PublisherError):
    """Another `publisher run` holds the lock or the lease."""


class RunGuard:
    """Acquire before starting, release on the way out; ``lost`` is set if the lease is taken from us."""

    def __init__(self, settings: Settings, store: Store, clock: Callable[[], datetime]) -> None:
        self.settings, self.store, self.clock = settings, store, clock
        self.owner = default_owner()
        self.lost = threading.Event()
        self._file: IO[str] | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._leases = Leases(store)

    @property
    def lock_path(self) -> Path:
        return self.settings.paths.state / "run.lock"

    def acquire(self) -> None:
        self._lock_file()
        try:
            self._take_lease()
        except BaseException:
            self._unlock_file()
            raise
        self._beat = threading.Thread(target=self._heartbeat, name="run-lease", daemon=True)
        self._beat.start()

    def _lock_file(self) -> None:
        path = self.lock_path
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+")  # noqa: SIM115 - held open for the life of the process
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            who = fh.read().strip() or "another process"
            fh.close()
            raise AlreadyRunningError(
                f"another `publisher run` is already running for this project ({who})",
                hint=f"stop it first (it holds {path})",
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        fh.flush()
        self._file = fh

    def _unlock_file(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def _take_lease(self) -> None:
        info = f"pid {os.getpid()} on {socket.gethostname()}"
        now = self.clock()
        try:
            self._leases.acquire(LEASE, self.owner, now=now, ttl=TTL, info=info)
        except LeaseHeldError as held:
            if not owner_is_dead(held.lease.owner):
                raise AlreadyRunningError(held.message, held.hint) from None
            log.warning("taking over the scheduler lease of a process that died (%s)", held.lease.info)
            self._leases.acquire(LEASE, self.owner, now=now, ttl=TTL, info=info, steal_from=held.lease.owner)

    def _heartbeat(self) -> None:
        while not self._stop.wait(BEAT):
            try:
                ok = self._leases.renew(LEASE, self.owner, now=self.clock(), ttl=TTL)
            except Exception as exc:  # the database is unreachable: keep trying until the lease runs out
                log.warning("scheduler lease heartbeat failed: %s", exc)
                continue
            if not ok:
                log.error("lost the scheduler lease to another process: stopping")
                self.lost.set()
                return

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        try:
            self._leases.release(LEASE, self.owner)
        except Exception as exc:  # it will expire by itself
            log.warning("could not release the scheduler lease: %s", exc)
        self._unlock_file()
