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
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SAMPLE = "why-bread-rises"
CONCURRENCY = 4
SECRET = "bench-secret-0123456789abcdef0123456789"


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


def with_workers(config: Path, db_url: str, slug: str, n: int, work: Path) -> dict[str, float]:
    """Start n workers, fan ``slug`` out, time until every row is recorded; rate and peak RSS."""
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)

    def scalar(query: str, **params: object) -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(query), params).scalar() or 0)

    before = scalar("SELECT coalesce(max(id), 0) FROM procrastinate_workers")
    procs = [start_worker(config, work / f"{slug}-worker{i}.log") for i in range(n)]
    try:
        deadline = time.monotonic() + 120  # a loaded machine can take a while to import
        while scalar("SELECT count(*) FROM procrastinate_workers WHERE id > :b", b=before) < n:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                logs = "\n".join((work / f"{slug}-worker{i}.log").read_text()[-3000:] for i in range(n))
                codes = [p.poll() for p in procs]
                raise SystemExit(f"workers did not start (exit codes {codes}):\n{logs}")
            time.sleep(0.1)
        time.sleep(0.5)
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
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        engine.dispose()
    assert sent == planned, (sent, planned)
    return {
        "rate": sent / seconds,
        "seconds": seconds,
        "rss_kb": max(rss),
        "idle_kb": max(idle),
        "batches": shares,
    }


# -- main --------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the send figures (best of them counts)")
    ap.add_argument("--quick", action="store_true", help="one round of each send figure")
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
    finally:
        sink.kill()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--embedded":
        child_embedded(Path(sys.argv[2]), sys.argv[3])
    else:
        main()
