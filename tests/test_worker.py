"""Scale-out on real PostgreSQL: the fan-out, workers (in-process and real processes), the shared rate."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from publisher.content import load_issue
from publisher.deliver import RetryPolicy
from publisher.ops.drain import DrainReport
from publisher.ops.scaleout import Enqueued
from publisher.ops.send import issue_key
from publisher.render.email import prepare_issue_email
from publisher.store import open_store, upgrade
from publisher.worker import (
    BatchBusyError,
    BatchClaim,
    BatchRunner,
    SharedRateLimiter,
    build_app,
    conninfo,
    plan_and_enqueue,
    queue_status,
    run_batch,
    run_worker,
)
from tests.fixtures_store import add_subscribers
from tests.fixtures_worker import SLUG, Scale, fan_out, wait_until

pytestmark = pytest.mark.postgres

FAST = RetryPolicy(attempts=4, initial=0.05, maximum=0.2, give_up_after=5, jitter=0.01)
KEY = issue_key(SLUG)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def drain_in_process(scale: Scale, **runner_kw) -> None:
    """Run a real procrastinate worker in this process until the queue is empty."""
    runner = BatchRunner(scale.settings, scale.store, retry=FAST, **runner_kw)
    app = build_app(scale.settings, runner, stalled_after=5)
    run_worker(app, wait=False)


# -- connection and schema ---------------------------------------------------------------------------------


def test_conninfo_keeps_options_and_refuses_sqlite() -> None:
    url = "postgresql+psycopg://u:p%40ss@db.example:6543/news?options=-csearch_path%3Dtenant"
    assert conninfo(url) == "postgresql://u:p%40ss@db.example:6543/news?options=-csearch_path%3Dtenant"
    with pytest.raises(Exception, match="needs PostgreSQL"):
        conninfo("sqlite:///x.db")


def test_db_upgrade_applies_the_queue_schema_on_postgresql_only(pg_db_url, tmp_path) -> None:
    assert upgrade(pg_db_url) == "0003" or upgrade(pg_db_url) > "0003"
    engine = sa.create_engine(pg_db_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT to_regclass('procrastinate_jobs')").scalar() is not None
        assert conn.exec_driver_sql("SELECT to_regproc('procrastinate_defer_jobs_v1')").scalar() is not None
        assert conn.exec_driver_sql("SELECT count(*) FROM rate_limits").scalar() == 0
    engine.dispose()
    upgrade(pg_db_url)  # again: nothing to do, no error
    lite = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade(lite)
    engine = sa.create_engine(lite)
    with engine.connect() as conn:
        tables = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "rate_limits" in tables and not any(t.startswith("procrastinate") for t in tables)


# -- the fan-out ---------------------------------------------------------------------------------------------


def test_fan_out_writes_the_plan_and_one_job_per_batch(scale: Scale) -> None:
    add_subscribers(scale.store, 250)
    scale.store.subscribers.add("weekly@example.org", now=datetime.now(UTC), frequency="weekly")
    done = fan_out(scale)
    assert done.created and done.jobs == 3 and done.active == 0 and done.send.planned == 250
    jobs = scale.sql(
        "SELECT lock, queueing_lock, args, queue_name, status FROM procrastinate_jobs ORDER BY id"
    )
    ids = [r[0] for r in scale.sql("SELECT id FROM deliveries ORDER BY id")]
    ranges = [(j.args["lo"], j.args["hi"]) for j in jobs]
    assert ranges == [(ids[0], ids[99]), (ids[100], ids[199]), (ids[200], ids[249])]
    for job in jobs:
        assert job.lock == job.queueing_lock == f"{KEY}#{job.args['lo']}"
        assert job.queue_name == "publisher" and job.status == "todo"
        assert job.args["send_id"] == done.send.id and len(job.args["fingerprint"]) == 32


def test_fan_out_twice_enqueues_nothing_and_writes_no_second_rows(scale: Scale) -> None:
    add_subscribers(scale.store, 230)
    first = fan_out(scale)
    second = fan_out(scale)
    assert (first.created, first.jobs) == (True, 3)
    assert (second.created, second.jobs, second.active) == (False, 0, 3)
    assert second.send.id == first.send.id
    assert scale.scalar("SELECT count(*) FROM deliveries") == 230
    assert scale.scalar("SELECT count(*) FROM sends") == 1
    assert scale.jobs() == 3


def test_concurrent_fan_outs_plan_once(scale: Scale) -> None:
    add_subscribers(scale.store, 300)
    results: list[Enqueued] = []
    errors: list[BaseException] = []

    def go() -> None:
        store = open_store(scale.settings.database.url)
        try:
            scale_copy = Scale(scale.project, scale.settings, store, scale.server, scale.make)
            results.append(fan_out(scale_copy))
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted((r.created, r.jobs) for r in results) == [(False, 0)] * 3 + [(True, 3)]
    assert scale.scalar("SELECT count(*) FROM deliveries") == 300 and scale.jobs() == 3


def test_the_plan_and_its_jobs_commit_together(scale: Scale) -> None:
    add_subscribers(scale.store, 120)

    def broken(send) -> dict:
        raise RuntimeError("render failed half-way")

    with pytest.raises(RuntimeError):
        plan_and_enqueue(
            scale.store, kind="issue", key=KEY, now=datetime.now(UTC), batch_size=50, args=broken
        )
    assert scale.scalar("SELECT count(*) FROM sends") == 0
    assert scale.scalar("SELECT count(*) FROM deliveries") == 0
    assert scale.jobs() == 0


def test_fan_out_after_failed_jobs_re_enqueues_only_pending_rows(scale: Scale) -> None:
    add_subscribers(scale.store, 250)
    first = fan_out(scale)
    with scale.store.write() as conn:
        conn.execute(sa.text("UPDATE procrastinate_jobs SET status = 'failed'"))
        conn.execute(
            sa.text("UPDATE deliveries SET status = 'sent' WHERE id < (SELECT min(id) + 180 FROM deliveries)")
        )
    again = fan_out(scale)
    assert (again.created, again.active, again.jobs) == (False, 0, 1)
    (job,) = scale.sql("SELECT args FROM procrastinate_jobs WHERE status = 'todo'")
    pending = [r[0] for r in scale.sql("SELECT id FROM deliveries WHERE status = 'pending' ORDER BY id")]
    assert len(pending) == 70 and (job.args["lo"], job.args["hi"]) == (pending[0], pending[-1])
    assert first.send.id == again.send.id


# -- workers -----------------------------------------------------------------------------------------------


def test_an_in_process_worker_sends_every_batch_once(scale: Scale) -> None:
    emails = add_subscribers(scale.store, 340)
    done = fan_out(scale)
    assert done.jobs == 4
    status = queue_status(scale.store)
    assert status is not None and status.by_send[done.send.id].todo == 4
    drain_in_process(scale)
    assert Counter(m.rcpt for m in scale.server.received()) == Counter(emails)
    counts = scale.store.ledger.counts(done.send.id)
    assert (counts.sent, counts.pending, counts.failed) == (340, 0, 0)
    send = scale.store.ledger.get_send(KEY)
    assert send.status == "done" and send.started_at is not None and send.finished_at is not None
    assert scale.jobs() == 0  # succeeded jobs are deleted: the ledger keeps the history
    messages = {m.rcpt: m.message()["Message-ID"] for m in scale.server.received()}
    stored = dict(scale.sql("SELECT email, message_id FROM deliveries"))
    assert messages == stored


def test_a_batch_goes_through_the_embedded_drain_and_is_claimed_once(scale: Scale) -> None:
    """``run_batch`` is ``ops.drain.drain`` holding a BatchClaim: a held batch or a leased send waits."""
    add_subscribers(scale.store, 150)
    send = fan_out(scale).send
    ids = [r[0] for r in scale.sql("SELECT id FROM deliveries ORDER BY id")]
    lo, hi = ids[0], ids[99]
    settings = scale.settings
    prepared = prepare_issue_email(settings, load_issue(settings, SLUG), send_key=KEY, date=send.created_at)

    def batch() -> DrainReport:
        return run_batch(settings, scale.store, send, lo, hi, prepared, clock=Clock(), retry=FAST)

    held = BatchClaim(scale.store, send, lo, hi)
    held.take(datetime.now(UTC))
    with pytest.raises(BatchBusyError, match="another worker"):
        batch()
    held.release(datetime.now(UTC))
    scale.store.ledger.acquire(send.id, "otherhost:1:live", now=datetime.now(UTC), ttl=timedelta(minutes=5))
    with pytest.raises(BatchBusyError, match="in-process"):
        batch()
    scale.store.ledger.release(send.id, "otherhost:1:live", now=datetime.now(UTC))
    report = batch()
    assert (report.sent, report.counts.pending, report.failures) == (100, 0, [])
    expected = [
        r[0] for r in scale.sql("SELECT email FROM deliveries WHERE id BETWEEN :lo AND :hi", lo=lo, hi=hi)
    ]
    assert sorted(m.rcpt for m in scale.server.received()) == sorted(expected)
    counts = scale.store.ledger.counts(send.id)
    assert (counts.sent, counts.pending) == (100, 50)
    assert scale.store.ledger.get_send(KEY).status == "running"  # other batches still to go


def test_a_worker_with_another_secret_refuses_and_leaves_rows_pending(scale: Scale, monkeypatch) -> None:
    add_subscribers(scale.store, 30)
    fan_out(scale)
    monkeypatch.setenv("PUBLISHER_SECRET_KEY", "another-secret-0123456789abcdef01234567")
    other = scale.make()
    runner = BatchRunner(other, scale.store, retry=FAST)
    run_worker(build_app(other, runner, stalled_after=5), wait=False)
    assert scale.server.count() == 0
    assert scale.jobs("failed") == 1
    assert scale.scalar("SELECT count(*) FROM deliveries WHERE status = 'pending'") == 30


def test_a_worker_whose_issue_differs_from_the_plan_refuses(scale: Scale) -> None:
    add_subscribers(scale.store, 30)
    fan_out(scale)
    issue = scale.project / "issues" / f"{SLUG}.md"
    issue.write_text(issue.read_text().replace("Sundays", "Saturdays"))
    drain_in_process(scale)
    assert scale.server.count() == 0 and scale.jobs("failed") == 1


def test_temporary_smtp_failure_retries_the_job_until_all_are_sent(scale: Scale) -> None:
    emails = add_subscribers(scale.store, 40)
    fan_out(scale)
    scale.server.set_faults(tempfail_count=200)  # more than FAST's retries of each message
    runner = BatchRunner(scale.settings, scale.store, retry=FAST)
    app = build_app(scale.settings, runner, stalled_after=5)
    run_worker(app, wait=False)
    assert scale.jobs("todo") == 1  # retried later, not failed
    scale.server.set_faults()
    with scale.store.write() as conn:  # don't wait for the backoff
        conn.execute(sa.text("UPDATE procrastinate_jobs SET scheduled_at = now() WHERE status = 'todo'"))
    run_worker(app, wait=False)
    assert sorted(m.rcpt for m in scale.server.received()) == emails
    assert scale.store.ledger.get_send(KEY).status == "done"


# -- the shared rate -----------------------------------------------------------------------------------------


def test_the_rate_budget_is_shared_between_limiters(scale: Scale) -> None:
    """Two limiters (as in two workers) on one budget: together they keep to one rate."""
    rate = 40.0
    stores = [open_store(scale.settings.database.url) for _ in range(2)]
    limiters = [SharedRateLimiter(s, "smtp:test", per_second=rate) for s in stores]
    stamps: list[float] = []
    lock = threading.Lock()

    def use(limiter: SharedRateLimiter) -> None:
        for _ in range(30):
            assert limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=use, args=(lim,)) for lim in limiters for _ in range(2)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    for s in stores:
        s.close()
    stamps.sort()
    assert len(stamps) == 120
    assert elapsed >= (120 - 1) / rate * 0.95  # one rate, not two
    # Slots are 25 ms apart across both; a thread waking late on a busy machine can move a
    # stamp by some ms, hence the 10 % margin (two unshared limiters would show ~80).
    busiest = max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps)
    assert busiest <= rate * 1.1


# -- real worker processes -----------------------------------------------------------------------------------


def test_two_workers_share_one_send_and_each_subscriber_gets_it_once(scale: Scale, start_worker) -> None:
    scale.reconfigure(scale={"batch_size": 50})
    emails = add_subscribers(scale.store, 600)
    workers = [start_worker(), start_worker("--concurrency", "2")]
    done = fan_out(scale)
    assert done.jobs == 12
    wait_until(lambda: scale.store.ledger.counts(done.send.id).pending == 0, timeout=60)
    wait_until(lambda: scale.jobs() == 0, timeout=10)
    received = Counter(m.rcpt for m in scale.server.received())
    assert received == Counter(emails)  # everyone, exactly once
    shares = [w.sent() for w in workers]
    assert all(n > 0 for n in shares) and sum(shares) == 600, shares
    batches = sorted(b[1] for w in workers for b in w.batches())
    assert len(batches) == len(set(batches)) == 12  # no batch ran twice
    assert scale.store.ledger.get_send(KEY).status == "done"


def test_the_sending_rate_holds_across_two_workers(scale: Scale, start_worker) -> None:
    rate = 50
    scale.reconfigure(email={"rate": {"per_second": rate}}, scale={"batch_size": 25})
    add_subscribers(scale.store, 200)
    workers = [start_worker(), start_worker()]
    started = time.time()
    fan_out(scale)
    wait_until(lambda: scale.server.count() == 200, timeout=60)
    stamps = sorted(t for (t,) in scale.server._query("SELECT received_at FROM messages"))
    assert all(w.sent() > 0 for w in workers)
    # One budget for both: 200 messages at 50/s take ~4 s (two private budgets: ~2 s).
    assert stamps[-1] - started >= (200 - 1) / rate * 0.95
    busiest = max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps)
    assert busiest <= rate * 1.1


# -- `publisher send` and `publisher status` on PostgreSQL ---------------------------------------------------


def cli(scale: Scale, *args: str):
    from typer.testing import CliRunner

    from publisher.cli import app

    return CliRunner().invoke(app, [*args, "--config", str(scale.config)])


def test_send_goes_to_the_workers_when_one_runs_and_status_shows_their_jobs(
    scale: Scale, start_worker
) -> None:
    emails = add_subscribers(scale.store, 250)
    scale.server.set_faults(data_delay_ms=200)  # ~12 s for all: still going while we look
    worker = start_worker()
    r = cli(scale, "send", SLUG)
    assert r.exit_code == 0, r.output
    assert f"{KEY} queued 3 batch job(s) for 250 of 250 recipient(s)" in r.stdout
    r = cli(scale, "send", SLUG)  # again while the workers are on it: nothing new
    assert r.exit_code == 0 and "already queued: 3 batch job(s)" in r.stdout, r.output
    assert scale.scalar("SELECT count(*) FROM deliveries") == 250
    r = cli(scale, "send", SLUG, "--local")
    assert r.exit_code == 1 and "being sent by the workers (3 batch job(s) left)" in r.stderr, r.output
    r = cli(scale, "status")
    assert r.exit_code == 0 and "workers: 1 running; batch jobs: 2 todo, 1 doing, 0 failed" in r.stdout
    header = next(line for line in r.stdout.splitlines() if line.startswith("send\t"))
    assert header.endswith("jobs todo\tjobs doing\tjobs failed")
    assert next(line for line in r.stdout.splitlines() if line.startswith(KEY)).endswith("\t2\t1\t0")
    scale.server.set_faults()
    wait_until(lambda: scale.server.count() == 250, timeout=60)
    wait_until(lambda: scale.jobs() == 0, timeout=10)
    assert sorted(m.rcpt for m in scale.server.received()) == emails and worker.sent() == 250
    row = next(line for line in cli(scale, "status").stdout.splitlines() if line.startswith(KEY))
    assert row.split("\t")[1:6] == ["done", "250", "250", "0", "0"] and row.endswith("\t0\t0\t0")
    r = cli(scale, "send", SLUG)
    assert r.exit_code == 0 and "already sent" in r.stdout


def test_without_a_running_worker_send_drains_in_process_as_before(scale: Scale) -> None:
    emails = add_subscribers(scale.store, 60)
    r = cli(scale, "send", SLUG)
    assert r.exit_code == 0, r.output
    assert f"{KEY}: sent 60" in r.stdout
    assert sorted(m.rcpt for m in scale.server.received()) == emails
    assert scale.jobs() == 0
    r = cli(scale, "status")
    assert "workers: 0 running; batch jobs: 0 todo, 0 doing, 0 failed" in r.stdout
