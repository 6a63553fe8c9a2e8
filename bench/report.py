"""A send's report over 10,000,000 click events: ``ops.report.send_report``, what the CLI and the API call.

    .venv/bin/python bench/report.py [--events 10000000] [--links 40] [--days 30] [--recipients 100000]
                                     [--repeat 20] [--store PATH] [--database-url URL]

Builds one issue send to ``--recipients`` subscribers (all delivered) whose
``--links`` links got ``--events`` clicks over ``--days`` days (most on the
first day, as after a real send; 90 % readers, 7 % scanners, 3 % prefetches),
then times the report of that send: the first call, and the median and p95 of
``--repeat`` more. Goal (issue #16): < 200 ms.

Events are generated fast: raw ``click_events`` rows are bulk-inserted
(``executemany`` on SQLite, ``COPY`` on PostgreSQL) an hour at a time, and each
hour's counts go through the store's own rollup (``Clicks.add_hours``, the
upsert the redirect's writer runs). The bench then checks that the rollups
hold every event, and that the report's SQL never reads ``click_events``.

SQLite by default, in a temp folder (``--store PATH`` keeps the file and
reuses it when it already holds the events); ``--database-url`` names a
PostgreSQL server on which a fresh database is created and dropped.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from publisher.ops.report import send_report  # noqa: E402
from publisher.store import Store, open_store  # noqa: E402

GOAL_MS = 200.0
KEY = "issue:bench-report"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
KINDS = ["human"] * 90 + ["scanner"] * 7 + ["prefetch"] * 3  # by event number mod 100
SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's storage format for DATETIME on SQLite


def per_hour(events: int, hours: int) -> list[int]:
    """Events in each hour: decaying over the first day, a trickle after; sums to ``events``."""
    weights = [math.exp(-h / 8) + 0.002 for h in range(hours)]
    total = sum(weights)
    counts = [int(events * w / total) for w in weights]
    counts[0] += events - sum(counts)
    return counts


def hour_events(
    hour: int, n: int, links: list[int], sqlite: bool
) -> tuple[list[tuple[Any, ...]], Counter[Any]]:
    """``n`` raw event rows in hour ``hour`` and their counts by (link, hour, class).

    Links by a skewed rotation (the first ones get most), times spread over the
    hour to the second (each second's value made once: this loop is the load's cost).
    """
    start = START + timedelta(hours=hour)
    seconds = [start + timedelta(seconds=x) for x in range(3600)]
    stamps: list[Any] = (
        [t.replace(tzinfo=None).strftime(SQLITE_FORMAT) for t in seconds] if sqlite else seconds
    )
    k, step = len(links), 3600 / max(n, 1)
    pick = [links[min(k - 1, int(x * x / 1_000_000 * k))] for x in range(1000)]
    rows = [(pick[i * 7919 % 1000], stamps[int(i * step)], KINDS[i % 100]) for i in range(n)]
    by_link_kind = Counter((link, kind) for link, _, kind in rows)
    return rows, Counter({(link, start, kind): c for (link, kind), c in by_link_kind.items()})


def load_events(store: Store, links: list[int], events: int, days: int) -> float:
    """Bulk-insert the raw events an hour at a time and roll each hour up through the store; seconds."""
    started = time.perf_counter()
    sqlite = store.dialect == "sqlite"
    with store.engine.connect() as conn:
        dbapi: Any = conn.connection.driver_connection
        for hour, n in enumerate(per_hour(events, days * 24)):
            if not n:
                continue
            rows, counts = hour_events(hour, n, links, sqlite)
            if sqlite:
                dbapi.execute("BEGIN")
                dbapi.executemany("INSERT INTO click_events (link_id, at, kind) VALUES (?, ?, ?)", rows)
                dbapi.execute("COMMIT")
            else:
                with (
                    dbapi.cursor() as cur,
                    cur.copy("COPY click_events (link_id, at, kind) FROM STDIN") as copy,
                ):
                    for row in rows:
                        copy.write_row(row)
                dbapi.commit()
            store.clicks.add_hours(counts)
            if hour % 24 == 23:
                print(
                    f"  day {hour // 24 + 1}/{days}: {time.perf_counter() - started:,.0f} s", file=sys.stderr
                )
    return time.perf_counter() - started


def prepare(store: Store, args: argparse.Namespace) -> None:
    """The send, its deliveries (all delivered), its links and their events (skipped if already there)."""
    if store.ledger.get_send(KEY) is not None:
        print("(reusing the send and events already in the store)")
        return
    t = time.perf_counter()
    lines = ["email,name"] + [f"reader{i:07d}@example.org,Reader {i}" for i in range(args.recipients)]
    store.subscribers.import_csv(io.StringIO("\n".join(lines) + "\n"), now=START - timedelta(days=1))
    send = store.ledger.plan_send("issue", KEY, now=START, issue_slug="bench-report").send
    with store.engine.begin() as conn:  # every message accepted: what a finished send looks like
        conn.execute(sa.text("UPDATE deliveries SET status = 'sent' WHERE send_id = :id"), {"id": send.id})
    urls = [f"https://example.org/story/{n}" for n in range(args.links)]
    store.clicks.record_links(KEY, urls, now=START)
    links = [store.clicks.target(KEY, n).link_id for n in range(1, args.links + 1)]  # type: ignore[union-attr]
    print(f"send to {args.recipients:,} subscribers planned and delivered in {time.perf_counter() - t:.1f} s")
    took = load_events(store, links, args.events, args.days)
    print(
        f"{args.events:,} click events inserted and rolled up in {took:.1f} s ({args.events / took:,.0f}/s)"
    )


def check_rollups(store: Store) -> tuple[int, int, int]:
    """(raw events, clicks in the rollups, rollup rows of the send): the first two must be equal."""
    with store.engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT count(*) FROM click_events")).scalar_one()
        rolled = conn.execute(sa.text("SELECT coalesce(sum(clicks), 0) FROM click_hours")).scalar_one()
        rows = conn.execute(
            sa.text(
                "SELECT count(*) FROM click_hours h JOIN click_links l ON l.id = h.link_id"
                " WHERE l.send_key = :k"
            ),
            {"k": KEY},
        ).scalar_one()
    return int(raw), int(rolled), int(rows)


def statements_of_one_report(store: Store, send_id: int) -> list[tuple[float, str]]:
    """(ms, SQL) of each statement one report runs: that it reads the rollups, never the raw events."""
    seen: list[tuple[float, str]] = []
    started: list[float] = []

    def before(*_args: Any) -> None:
        started.append(time.perf_counter())

    def after(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(((time.perf_counter() - started.pop()) * 1000, statement))

    event.listen(store.engine, "before_cursor_execute", before)
    event.listen(store.engine, "after_cursor_execute", after)
    try:
        send_report(store, send_id)
    finally:
        event.remove(store.engine, "before_cursor_execute", before)
        event.remove(store.engine, "after_cursor_execute", after)
    return seen


def measure(store: Store, args: argparse.Namespace) -> None:
    info = store.ledger.get_send(KEY)
    assert info is not None
    t = time.perf_counter()
    report = send_report(store, info.id)
    first = (time.perf_counter() - t) * 1000
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        send_report(store, info.id)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    median, p95 = statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]
    raw, rolled, rows = check_rollups(store)
    sql = statements_of_one_report(store, info.id)
    reads_raw = [s for _, s in sql if "click_events" in s]
    assert report is not None
    total = report.human_clicks + sum(report.machine_clicks.values())
    print(
        f"report of a send with {total:,} clicks ({report.human_clicks:,} human) on {report.links} links, "
        f"{rows:,} hourly rollup rows, {report.delivered:,} delivered; {store.dialect}"
    )
    print(
        f"report over {raw:,} click events: median {median:.1f} ms, p95 {p95:.1f} ms, "
        f"first call {first:.1f} ms (goal < {GOAL_MS:.0f} ms: ratio {p95 / GOAL_MS:.2f}) "
        f"{'OK' if p95 < GOAL_MS else 'ABOVE GOAL'}"
    )
    print(
        f"reads the rollups: {len(sql)} statements, {len(reads_raw)} touching click_events "
        f"({'OK' if not reads_raw else 'READS RAW EVENTS'}); rollups hold {rolled:,} of {raw:,} events "
        f"({'OK' if rolled == raw else 'MISMATCH'})"
    )
    for ms, statement in sorted(sql, reverse=True)[:3]:
        print(f"  {ms:7.1f} ms  {' '.join(statement.split())[:100]}")


def with_postgres(base: str, args: argparse.Namespace) -> None:
    name = f"pub_bench_report_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        store = open_store(make_url(base).set(database=name).render_as_string(hide_password=False))
        try:
            prepare(store, args)
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")  # what autovacuum does after a bulk load
            measure(store, args)
        finally:
            store.close()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--links", type=int, default=40)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--recipients", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--store", type=Path, help="SQLite file to keep (reused when it holds the send)")
    ap.add_argument("--database-url", help="a PostgreSQL server URL (a fresh database is made on it)")
    args = ap.parse_args()
    print(f"# bench/report.py: {args.events:,} events, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    if args.database_url:
        with_postgres(args.database_url, args)
        return
    tmp = None
    if args.store is None:
        tmp = Path(tempfile.mkdtemp(prefix="bench-report-"))
        path = tmp / "report.db"
    else:
        path = args.store
    try:
        store = open_store(f"sqlite:///{path}")
        try:
            prepare(store, args)
            measure(store, args)
        finally:
            store.close()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
