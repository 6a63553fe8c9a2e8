"""The scheduler's parts, in process: the APScheduler adapter, the single-run guard, the runner loop."""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from publisher.ops.queue import queue_issue
from publisher.ops.send import issue_key
from publisher.schedule import AlreadyRunningError, RunGuard, Runner, RunOptions
from publisher.schedule.apscheduler_adapter import Wakeups
from publisher.schedule.guard import LEASE
from publisher.store import Leases, Queue, open_store
from publisher.store.leases import LeaseHeldError
from tests.polling import wait_for as shared_wait_for


def now() -> datetime:
    return datetime.now(UTC)


def wait_for(check, timeout: float = 15.0, step: float = 0.05):
    return shared_wait_for(check, timeout, step)


# -- the APScheduler adapter ---------------------------------------------------------------------


def test_wakeups_fire_at_the_time_and_persist(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    got: queue.SimpleQueue[tuple[str, str, datetime]] = queue.SimpleQueue()
    w = Wakeups(url, lambda kind, arg: got.put((kind, arg, now())))
    w.start()
    at = now() + timedelta(seconds=0.6)
    later = now() + timedelta(hours=1)
    assert w.sync_issues({"soon": at, "later": later, "gone": later}) == (3, 0)
    assert w.sync_issues({"soon": at, "later": later}) == (0, 1)  # unchanged ones are left alone
    w.resume()
    kind, arg, when = got.get(timeout=5)
    assert (kind, arg) == ("issue", "soon")
    assert at <= when < at + timedelta(seconds=1.5)
    assert set(w.issue_jobs()) == {"later"}  # a fired one-shot job is gone
    w.shutdown()
    # the job store is a real file: a new scheduler finds the job (and we resync it from our table anyway)
    again = Wakeups(url, lambda *_: None)
    again.start()
    assert again.issue_jobs() == {"later": later.replace(microsecond=later.microsecond)}
    assert again.sync_issues({}) == (0, 1)
    again.shutdown()


def test_wakeups_interval_and_a_job_missed_while_down_still_fires(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    w = Wakeups(url, lambda *_: None)
    w.start()
    w.sync_issues({"missed": now() + timedelta(seconds=0.3)})
    w.shutdown()  # "down" before it was due
    time.sleep(0.5)
    got: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
    w = Wakeups(url, lambda kind, arg: got.put((kind, arg)))
    w.start()
    w.every(0.3)
    w.resume()
    seen = {got.get(timeout=5), got.get(timeout=5)}
    # misfire_grace_time=None: APScheduler runs the missed one-shot job instead of deleting it
    assert ("issue", "missed") in seen and ("digests", "") in seen
    w.shutdown()


# -- the single-run guard ------------------------------------------------------------------------


def test_guard_refuses_a_second_run_and_frees_on_release(scene) -> None:
    first = RunGuard(scene.settings, scene.store, now)
    first.acquire()
    try:
        with pytest.raises(AlreadyRunningError, match="already running for this project"):
            RunGuard(scene.settings, scene.store, now).acquire()
        # another project folder (another lock file) on the same database: the lease refuses
        other = scene.settings.model_copy(
            update={"paths": scene.settings.paths.model_copy(update={"state": scene.project / "elsewhere"})}
        )
        with pytest.raises(AlreadyRunningError, match="already running on this database") as exc:
            RunGuard(other, scene.store, now).acquire()
        assert "last heartbeat" in exc.value.message
    finally:
        first.release()
    assert Leases(scene.store).get(LEASE) is None
    again = RunGuard(scene.settings, scene.store, now)
    again.acquire()
    again.release()


def test_guard_takes_over_an_expired_or_dead_lease(scene) -> None:
    leases = Leases(scene.store)
    t = now()
    # a process on another machine that stopped heartbeating a minute ago
    leases.acquire(LEASE, "otherhost:123:abcd", now=t - timedelta(minutes=2), ttl=timedelta(seconds=30))
    g = RunGuard(scene.settings, scene.store, now)
    g.acquire()
    g.release()
    # a live-looking lease of a process on this machine that no longer exists
    leases.acquire(LEASE, f"{socket.gethostname()}:999999999:dead", now=t, ttl=timedelta(minutes=5))
    g = RunGuard(scene.settings, scene.store, now)
    g.acquire()
    assert Leases(scene.store).get(LEASE).owner == g.owner  # type: ignore[union-attr]
    g.release()
    # but a live one elsewhere is respected
    leases.acquire(LEASE, "otherhost:123:abcd", now=t, ttl=timedelta(minutes=5))
    with pytest.raises(AlreadyRunningError):
        RunGuard(scene.settings, scene.store, now).acquire()


def test_a_named_lease_keeps_its_start_for_its_owner_and_restarts_for_a_taker(scene) -> None:
    leases = Leases(scene.store)
    t = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    ttl = timedelta(seconds=30)
    first = leases.acquire("x", "a:1:x", now=t, ttl=ttl, info="one")
    again = leases.acquire("x", "a:1:x", now=t + timedelta(seconds=10), ttl=ttl, info="two")
    assert (again.started_at, again.info, again.expires_at) == (
        first.started_at,
        "two",
        t + timedelta(seconds=40),
    )
    with pytest.raises(LeaseHeldError):
        leases.acquire("x", "b:2:y", now=t + timedelta(seconds=20), ttl=ttl)
    taken = leases.acquire("x", "b:2:y", now=t + timedelta(seconds=41), ttl=ttl)
    assert (taken.owner, taken.started_at) == ("b:2:y", t + timedelta(seconds=41))
    assert not leases.renew("x", "a:1:x", now=t + timedelta(seconds=42), ttl=ttl)
    assert leases.release("x", "b:2:y") and leases.get("x") is None


# -- the runner loop, in a thread ----------------------------------------------------------------


@pytest.fixture
def smtp_scene(scene, smtp_server):
    scene.reconfigure(
        email={
            "transport": "smtp",
            "concurrency": 2,
            "smtp": {"host": "127.0.0.1", "port": smtp_server.port, "timeout": 10},
        }
    )
    return scene, smtp_server


class Running:
    def __init__(self, scene) -> None:
        # its own store, as a separate process would have
        self.store = open_store(scene.settings.database.url)
        self.runner = Runner(
            scene.settings, self.store, options=RunOptions(poll=0.3, digest_every=3600, web=False)
        )
        self.error: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.runner.run()
        except BaseException as exc:
            self.error.append(exc)

    def stop(self) -> None:
        self.runner.request_stop()
        self.thread.join(30)
        assert not self.thread.is_alive()
        self.store.close()
        assert not self.error, self.error


def test_runner_sends_on_time_and_picks_up_content_changes(smtp_scene) -> None:
    scene, server = smtp_scene
    s, store = scene.settings, scene.store
    scene.article("first")
    for n in range(5):
        store.subscribers.add(f"r{n}@example.org", now=now())
    at = now() + timedelta(seconds=1.5)
    queue_issue(s, store, "first", at, now=now())
    run = Running(scene)
    try:
        wait_for(lambda: server.count() == 5)
        first = min(m for (m,) in server._query("SELECT received_at FROM messages"))
        assert at.timestamp() - 0.05 <= first < at.timestamp() + 1.5
        # an issue written while running, with send_at in its front matter: no restart needed
        soon = (now() + timedelta(seconds=1.5)).replace(microsecond=0)
        scene.article("second", extra=f"send_at: {soon.isoformat()}")
        wait_for(lambda: server.count() == 10)
        # re-queued from outside (another process, the admin API): picked up too
        scene.article("third")
        queue_issue(s, store, "third", now() + timedelta(hours=5), now=now())
        time.sleep(0.8)
        queue_issue(s, store, "third", now() + timedelta(seconds=1), now=now())
        wait_for(lambda: server.count() == 15)
    finally:
        run.stop()
    assert Counter(m.rcpt for m in server.received()) == {f"r{n}@example.org": 3 for n in range(5)}
    assert [q.status for q in Queue(store).list(None)] == ["sent", "sent", "sent"]
    assert Leases(store).get(LEASE) is None


def test_runner_stop_mid_send_checkpoints_then_resumes_without_doubles(smtp_scene) -> None:
    scene, server = smtp_scene
    s, store = scene.settings, scene.store
    scene.article("big")
    for n in range(60):
        store.subscribers.add(f"r{n:02d}@example.org", now=now())
    server.set_faults(data_delay_ms=30)
    queue_issue(s, store, "big", now() + timedelta(seconds=0.5), now=now())
    run = Running(scene)
    wait_for(lambda: server.count() >= 6)
    run.stop()
    got = server.count()
    assert got < 60
    send = store.ledger.get_send(issue_key("big"))
    assert send is not None and send.lease_owner is None and send.status == "paused"
    assert store.ledger.counts(send.id).sent == got  # everything accepted was recorded before stopping
    assert Queue(store).get("big").status == "sending"  # type: ignore[union-attr]
    server.set_faults()
    run = Running(scene)
    try:
        wait_for(lambda: server.count() >= 60)
        time.sleep(0.3)
    finally:
        run.stop()
    counts = Counter(m.rcpt for m in server.received())
    assert len(counts) == 60 and set(counts.values()) == {1}
    assert Queue(store).get("big").status == "sent"  # type: ignore[union-attr]
