"""Scale-out figures on PostgreSQL: planning a big send, and workers against the embedded sender.

    PUBLISHER_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/scale.py [--subscribers 1000000] [--messages 50000] [--rounds 3] [--quick]

Creates a database of its own on that server (dropped at the end) and an SMTP
sink in its own process (bench/send.py's), then measures in one run:

- planning a send to N subscribers (default 1,000,000): the ledger rows and
  one job per batch of 500, in one transaction, as ``publisher send`` does on
  PostgreSQL; seconds and rows/s (the subscribers are bulk-loaded with COPY
  first, not timed);
- sending M messages (default 50,000) with the embedded sender (``ops.drain``'s
  drain in this process's child, the same database), with one ``publisher
  worker`` and with two (messages/s from the fan-out's commit to the last row
  recorded, so job pick-up and per-batch costs count), each worker with the
  same 4 SMTP connections as the embedded sender; and each worker's peak RSS.

- a digest round to D subscribers (``--digest``, default 100,000; daily, in
  two zones, one new article per round) drained in-process by the scheduler's
  drain (``run_digest`` with no worker running) against the same round handed
  to one and to two ``publisher worker`` processes (``run_digest`` with the
  queue: the workers rebuild the variants and send it in batches); msg/s from
  the end of the recording (or, for the workers, from the jobs' commit) to the
  last row recorded. ``--only digest`` skips the issue figures.

The three send figures alternate over --rounds rounds and the best of each
counts: this machine is shared, and one round of the same figure can differ
by a factor of two. Goals: planning 1M in under 60 s; one worker within 20 %
of the embedded sender (ratio >= 0.80). Two workers share this machine's
cores with the sink, PostgreSQL and each other, so their figure says how the
work splits, not how two machines would scale.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SAMPLE = "why-bread-rises"
CONCURRENCY = 4
SECRET = "bench-secret-0123456789abcdef0123456789"
DIGEST_BASE = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # 07:00 has passed in UTC and London (winter)
DIGEST_ZONES = ("UTC", "Europe/London")


def _now() -> datetime:
    return datetime.now(UTC)


# -- set-up ------------------------------------------------------------------------------------------------


def make_project(folder: Path, db_url: str, port: int, slugs: list[str]) -> Path:
    shutil.copytree(ROOT / "templates", folder / "templates")
    (folder / "issues").mkdir()
    source = (ROOT / "issues" / f"{SAMPLE}.md").read_text()
    for slug in slugs:
        (folder / "issues" / f"{slug}.md").write_text(source)
    (folder / "config.yaml").write_text(
        "site: {title: Bench, url: 'https://news.example.org'}\n"
        f"database: {{url: '{db_url}'}}\n"
        "email:\n"
        "  from: 'Bench <news@example.org>'\n"
        "  transport: smtp\n"
        f"  smtp: {{host: 127.0.0.1, port: {port}, timeout: 30}}\n"
        f"  concurrency: {CONCURRENCY}\n"
        "scale: {batch_size: 500}\n"
    )
    return folder / "config.yaml"


def load_subscribers(db_url: str, n: int) -> float:
    """Replace every subscriber with n confirmed ones, by COPY; returns seconds (not a goal)."""
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE subscribers, sends, deliveries CASCADE")
        conn.exec_driver_sql("DELETE FROM procrastinate_jobs")
        raw = conn.connection.driver_connection
        stamp = _now().isoformat()
        cols = "email, name, status, frequency, topics, timezone, created_at, updated_at"
        with raw.cursor().copy(f"COPY subscribers ({cols}) FROM STDIN") as copy:
            step = 50_000
            for first in range(0, n, step):
                buf = io.StringIO()
                for i in range(first, min(n, first + step)):
                    row = f"reader{i:07d}@example.org\tReader {i}\tconfirmed\tinstant\t\tUTC"
                    buf.write(f"{row}\t{stamp}\t{stamp}\n")
                copy.write(buf.getvalue())
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE subscribers")
    engine.dispose()
    return time.perf_counter() - started


def fan_out(config: Path, slug: str) -> tuple[float, int, int]:
    """Plan + enqueue ``slug`` as the scheduler does; (seconds, rows, jobs)."""
    from publisher.config import load_settings
    from publisher.content import load_issue
    from publisher.render.email import prepare_issue_email
    from publisher.store import open_store
    from publisher.worker import fingerprint, plan_and_enqueue, secret_check

    settings = load_settings(config, environ={"PUBLISHER_SECRET_KEY": SECRET})
    with open_store(settings.database.url) as store:
        issue = load_issue(settings, slug)

        def args(send) -> dict:
            prepared = prepare_issue_email(settings, issue, send_key=send.key, date=send.created_at)
            return {"fingerprint": fingerprint(prepared), "check": secret_check(settings.secret_key())}

        started = time.perf_counter()
        done = plan_and_enqueue(
            store,
            kind="issue",
            key=f"issue:{slug}",
            now=_now(),
            issue_slug=slug,
            batch_size=settings.scale.batch_size,
            args=args,
        )
        seconds = time.perf_counter() - started
    return seconds, done.send.planned, done.jobs


# -- the embedded sender, in a child process ---------------------------------------------------------------


def child_embedded(config: Path, slug: str) -> None:
    """Plan (untimed) then drain in this process with ops.drain.drain; print JSON."""
    import resource

    from publisher.config import load_settings
    from publisher.content import load_issue
    from publisher.ops.drain import drain
    from publisher.render.email import prepare_issue_email
    from publisher.store import open_store

    settings = load_settings(config, environ={"PUBLISHER_SECRET_KEY": SECRET})
    with open_store(settings.database.url) as store:
        plan = store.ledger.plan_send("issue", f"issue:{slug}", now=_now(), issue_slug=slug)
        prepared = prepare_issue_email(
            settings, load_issue(settings, slug), send_key=plan.send.key, date=plan.send.created_at
        )
        report = drain(settings, store, plan.send.id, lambda _row: prepared, clock=_now)
    assert report.counts.sent == plan.send.planned, report
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rate": report.rate, "seconds": report.seconds, "sent": report.sent, "rss_kb": rss}))


def embedded(config: Path, slug: str) -> dict[str, float]:
    env = {**os.environ, "PUBLISHER_SECRET_KEY": SECRET}
    out = subprocess.run(
        [sys.executable, __file__, "--embedded", str(config), slug], env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- workers -----------------------------------------------------------------------------------------------


def start_worker(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PUBLISHER_SECRET_KEY": SECRET}
    return subprocess.Popen(
        [sys.executable, "-c", "from publisher.cli import main; main()", "worker", "-c", str(config)],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def start_workers(config: Path, db_url: str, n: int, work: Path, tag: str) -> list[subprocess.Popen[bytes]]:
    """n ``publisher worker`` processes, returned once each has registered with the queue."""
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)

    def scalar(query: str, **params: object) -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(query), params).scalar() or 0)

    before = scalar("SELECT coalesce(max(id), 0) FROM procrastinate_workers")
    procs = [start_worker(config, work / f"{tag}-worker{i}.log") for i in range(n)]
    try:
        deadline = time.monotonic() + 120  # a loaded machine can take a while to import
        while scalar("SELECT count(*) FROM procrastinate_workers WHERE id > :b", b=before) < n:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                logs = "\n".join((work / f"{tag}-worker{i}.log").read_text()[-3000:] for i in range(n))
                codes = [p.poll() for p in procs]
                stop_workers(procs)
                raise SystemExit(f"workers did not start (exit codes {codes}):\n{logs}")
            time.sleep(0.1)
    finally:
        engine.dispose()
    time.sleep(0.5)
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def with_workers(config: Path, db_url: str, slug: str, n: int, work: Path) -> dict[str, float]:
    """Start n workers, fan ``slug`` out, time until every row is recorded; rate and peak RSS."""
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)

    def scalar(query: str, **params: object) -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(query), params).scalar() or 0)

    procs = start_workers(config, db_url, n, work, slug)
    try:
        idle = [peak_rss_kb(p.pid) for p in procs]  # imports done, no job yet
        _, planned, _ = fan_out(config, slug)
        started = time.perf_counter()
        send_id = scalar("SELECT id FROM sends WHERE key = :k", k=f"issue:{slug}")
        while scalar("SELECT count(*) FROM deliveries WHERE send_id = :s AND status = 'pending'", s=send_id):
            if time.perf_counter() - started > 900:
                raise SystemExit("the workers did not finish in 15 minutes")
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        sent = scalar("SELECT count(*) FROM deliveries WHERE send_id = :s AND status = 'sent'", s=send_id)
        rss = [peak_rss_kb(p.pid) for p in procs]
        shares = [(work / f"{slug}-worker{i}.log").read_text().count(": sent ") for i in range(n)]
    finally:
        stop_workers(procs)
        engine.dispose()
    assert sent == planned, (sent, planned)
    return {
        "rate": sent / seconds,
        "seconds": seconds,
        "rss_kb": max(rss),
        "idle_kb": max(idle),
        "batches": shares,
    }


# -- a digest round: the scheduler's drain against workers ---------------------------------------------------


def load_digest_readers(db_url: str, n: int) -> None:
    """n confirmed daily subscribers over two zones, two days older than the first round (COPY)."""
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    stamp = (DIGEST_BASE - timedelta(days=2)).isoformat()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "TRUNCATE subscribers, sends, deliveries, digest_recipients, digest_marks, "
            "digest_variants, article_arrivals CASCADE"
        )
        conn.exec_driver_sql("DELETE FROM procrastinate_jobs")
        cols = "email, name, status, frequency, topics, timezone, created_at, updated_at, confirmed_at"
        with conn.connection.driver_connection.cursor().copy(f"COPY subscribers ({cols}) FROM STDIN") as copy:
            buf = io.StringIO()
            for i in range(n):
                zone = DIGEST_ZONES[i % len(DIGEST_ZONES)]
                buf.write(f"daily{i:07d}@example.org\tReader {i}\tconfirmed\tdaily\t\t{zone}")
                buf.write(f"\t{stamp}\t{stamp}\t{stamp}\n")
            copy.write(buf.getvalue())
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE subscribers")
    engine.dispose()


def digest_round(config: Path, k: int, workers: bool) -> dict[str, float]:
    """Round k (day k after DIGEST_BASE, one new article): record it, then drain or hand it over."""
    from publisher.config import load_settings
    from publisher.ops.digest import run_digest
    from publisher.store import open_store
    from publisher.worker import JobQueue

    when = DIGEST_BASE + timedelta(days=k)
    source = (ROOT / "issues" / f"{SAMPLE}.md").read_text().replace("title:", f"title: Day {k} -", 1)
    (config.parent / "issues" / f"day-{k}.md").write_text(source)
    settings = load_settings(config, environ={"PUBLISHER_SECRET_KEY": SECRET})
    with open_store(settings.database.url) as store:
        report = run_digest(
            settings,
            store,
            "daily",
            clock=lambda: when,
            up_since=when - timedelta(hours=6),
            workers=JobQueue() if workers else None,
        )
    if workers:
        assert report.sent == 0 and sum(h.jobs for h in report.handed), report
    else:
        assert report.sent == report.mailed and not report.handed, report
    return {"mailed": report.mailed, "drain": report.seconds.get("drain", 0.0), "sent": report.sent}


def child_digest(config: Path, k: int) -> None:
    """The embedded figure, in its own process: the round drained in-process; print JSON."""
    import resource

    got = digest_round(config, k, workers=False)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rate": got["sent"] / got["drain"], "seconds": got["drain"], "rss_kb": rss}))


def digest_embedded(config: Path, k: int) -> dict[str, float]:
    env = {**os.environ, "PUBLISHER_SECRET_KEY": SECRET}
    out = subprocess.run(
        [sys.executable, __file__, "--digest-embedded", str(config), str(k)],
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def digest_workers(config: Path, db_url: str, k: int, n: int, work: Path) -> dict[str, float]:
    """Start n workers, run round k with the queue, time from the jobs' commit to the last row recorded."""
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)

    def pending() -> int:
        with engine.connect() as conn:
            return int(
                conn.exec_driver_sql(
                    "SELECT count(*) FROM deliveries d JOIN sends s ON s.id = d.send_id "
                    "WHERE s.kind = 'digest' AND d.status = 'pending'"
                ).scalar()
                or 0
            )

    procs = start_workers(config, db_url, n, work, f"digest-{k}")
    try:
        got = digest_round(config, k, workers=True)
        started = time.perf_counter()
        while pending():
            if time.perf_counter() - started > 1800:
                raise SystemExit("the workers did not finish the digest round in 30 minutes")
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        rss = [peak_rss_kb(p.pid) for p in procs]
    finally:
        stop_workers(procs)
        engine.dispose()
    return {"rate": got["mailed"] / seconds, "seconds": seconds, "rss_kb": max(rss)}


def digest_figures(config: Path, db_url: str, size: int, rounds: int, work: Path) -> None:
    """The digest round drained three ways, side by side (best of ``rounds`` each)."""
    load_digest_readers(db_url, size)
    results: dict[str, list[dict[str, float]]] = {"embedded": [], "w1": [], "w2": []}
    k = 0
    for _ in range(rounds):
        results["embedded"].append(digest_embedded(config, k))
        results["w1"].append(digest_workers(config, db_url, k + 1, 1, work))
        results["w2"].append(digest_workers(config, db_url, k + 2, 2, work))
        k += 3
    best = {key: max(v, key=lambda x: x["rate"]) for key, v in results.items()}
    print(f"digest round to {size:,} subscribers (2 zones), {CONCURRENCY} SMTP connections per sender:")
    labels = (("embedded", "scheduler's drain"), ("w1", "1 worker"), ("w2", "2 workers"))
    for key, label in labels:
        rates = ", ".join(f"{x['rate']:,.0f}" for x in results[key])
        print(
            f"  {label:<24} {rates} msg/s (best {best[key]['rate']:,.0f}; "
            f"{size / best[key]['rate']:,.1f} s; peak RSS {best[key]['rss_kb'] / 1024:,.0f} MB)"
        )
    ratio = best["w1"]["rate"] / best["embedded"]["rate"]
    verdict = "OK" if ratio >= 0.8 else "BELOW GOAL"
    print(f"1 worker / scheduler's drain:  {ratio:.2f}  (goal >= 0.80)  {verdict}")
    print(f"2 workers / 1 worker:          {best['w2']['rate'] / best['w1']['rate']:.2f}")


# -- main --------------------------------------------------------------------------------------------------


def issue_figures(config: Path, db_url: str, args: argparse.Namespace, rounds: int, work: Path) -> None:
    """Planning a big issue send, then M messages sent three ways (best of ``rounds`` each)."""
    loaded = load_subscribers(db_url, args.subscribers)
    plan_s, planned, jobs = fan_out(config, "plan")
    print(
        f"plan {planned:,} recipients + {jobs:,} batch jobs in one transaction: {plan_s:.1f} s "
        f"({planned / plan_s:,.0f} rows/s)  (goal < 60 s)  {'OK' if plan_s < 60 else 'ABOVE GOAL'}"
    )
    print(f"  (subscribers bulk-loaded with COPY first in {loaded:.1f} s, not timed)")

    load_subscribers(db_url, args.messages)
    results: dict[str, list[dict[str, float]]] = {"embedded": [], "w1": [], "w2": []}
    for r in range(rounds):
        results["embedded"].append(embedded(config, f"embedded-{r}"))
        results["w1"].append(with_workers(config, db_url, f"w1-{r}", 1, work))
        results["w2"].append(with_workers(config, db_url, f"w2-{r}", 2, work))
    best = {k: max(v, key=lambda x: x["rate"]) for k, v in results.items()}
    m = args.messages
    print(f"send {m:,} messages, {CONCURRENCY} SMTP connections per sender, sink in its own process:")
    for key, label in (("embedded", "embedded sender (drain)"), ("w1", "1 worker"), ("w2", "2 workers")):
        rates = ", ".join(f"{x['rate']:,.0f}" for x in results[key])
        print(f"  {label:<24} {rates} msg/s (best {best[key]['rate']:,.0f})")
    ratio = best["w1"]["rate"] / best["embedded"]["rate"]
    verdict = "OK" if ratio >= 0.8 else "BELOW GOAL"
    print(f"1 worker / embedded:        {ratio:.2f}  (goal >= 0.80)  {verdict}")
    print(
        f"2 workers / 1 worker:       {best['w2']['rate'] / best['w1']['rate']:.2f}  "
        f"(batches split {best['w2']['batches']}; "
        f"{os.cpu_count()} cores shared with the sink and PostgreSQL)"
    )
    rss = max(x["rss_kb"] for k in ("w1", "w2") for x in results[k]) / 1024
    idle = max(x["idle_kb"] for k in ("w1", "w2") for x in results[k]) / 1024
    print(
        f"peak RSS per worker:        {rss:,.0f} MB  ({idle:,.0f} MB of it before the first job: "
        f"the CLI's imports; embedded sender process: {best['embedded']['rss_kb'] / 1024:,.0f} MB)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the send figures (best of them counts)")
    ap.add_argument("--quick", action="store_true", help="one round of each send figure")
    ap.add_argument("--digest", type=int, default=100_000, help="subscribers of the digest round (0: skip)")
    ap.add_argument("--only", choices=("issue", "digest"), help="only the issue or only the digest figures")
    args = ap.parse_args()
    base = os.environ.get("PUBLISHER_TEST_DATABASE_URL") or os.environ.get("PUBLISHER_BENCH_DATABASE_URL")
    if not base:
        raise SystemExit(
            "set PUBLISHER_TEST_DATABASE_URL to a PostgreSQL server the bench may create a database on"
        )
    from send import start_sink  # bench/send.py's SMTP sink

    os.environ["PUBLISHER_SECRET_KEY"] = SECRET  # planner and workers must sign alike
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # still drop the database

    name = f"pub_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    db_url = make_url(base).set(database=name).render_as_string(hide_password=False)
    sink, port = start_sink()
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    rounds = 1 if args.quick else max(1, args.rounds)
    slugs = ["plan"] + [f"{kind}-{r}" for r in range(rounds) for kind in ("embedded", "w1", "w2")]
    try:
        config = make_project(work / "project", db_url, port, slugs)
        from publisher.store import upgrade

        upgrade(db_url)
        if args.only != "digest":
            issue_figures(config, db_url, args, rounds, work)
        if args.only != "issue" and args.digest:
            digest_figures(config, db_url, args.digest, rounds, work)
    finally:
        sink.kill()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--embedded":
        child_embedded(Path(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "--digest-embedded":
        child_digest(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
