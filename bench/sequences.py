"""One sequence round for 1,000,000 members: planning time and peak memory, SQLite and PostgreSQL.

Set-up (not timed, in this process): a temp database with N confirmed subscribers spread
evenly over 24 time zones (one per UTC offset) and 5 sequences of 4 steps each
(``after``: 0, 1 day, 3 days, 1 week); each member sits just past one step (a quarter at
each), entered long enough ago that their next step is due now, and nobody has had a
sequence mail today. ``sequences.send_at`` is 00:00-24:00 so every zone's window is open:
the worst round there is, every member due at once.

Timed, in a fresh process (so the set-up's memory is not counted): ``run_sequences(...,
send=False)``: end memberships of those who left, find the open zones, then per step and
batch one INSERT ... SELECT of deliveries and one UPDATE of progress. Sending excluded.

Usage: .venv/bin/python bench/sequences.py [--subscribers N] [--postgres URL]
  --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres  (makes and drops a database)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402

from publisher.config import load_settings  # noqa: E402
from publisher.ops.sequences import run_sequences  # noqa: E402
from publisher.store import open_store  # noqa: E402
from publisher.store.schema import sequence_members, sequence_steps, subscribers  # noqa: E402

GOAL_SECONDS = {"sqlite": 30.0, "postgresql": 15.0}
GOAL_MB = 500.0
ZONES = (
    "Pacific/Pago_Pago", "Pacific/Honolulu", "America/Anchorage", "America/Los_Angeles",
    "America/Denver", "America/Chicago", "America/New_York", "America/Halifax",
    "America/Sao_Paulo", "Atlantic/South_Georgia", "Atlantic/Azores", "UTC",
    "Europe/Paris", "Europe/Athens", "Europe/Moscow", "Asia/Dubai",
    "Asia/Karachi", "Asia/Dhaka", "Asia/Bangkok", "Asia/Shanghai",
    "Asia/Tokyo", "Australia/Brisbane", "Pacific/Noumea", "Pacific/Auckland",
)  # fmt: skip
SEQUENCES = ("welcome-tour", "getting-started", "power-tips", "reengage", "course")
AFTER = (
    ("0", timedelta(0)),
    ("1 day", timedelta(days=1)),
    ("3 days", timedelta(days=3)),
    ("1 week", timedelta(weeks=1)),
)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CHUNK = 50_000
SECRET = {"PUBLISHER_SECRET_KEY": "bench-secret-0123456789abcdef0123456789"}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def project(tmp: Path, url: str) -> Path:
    shutil.copytree(ROOT / "templates", tmp / "templates")
    (tmp / "issues").mkdir()
    for name in SEQUENCES:
        folder = tmp / "sequences" / name
        folder.mkdir(parents=True)
        for n, (after, _) in enumerate(AFTER, start=1):
            (folder / f"0{n}-step-{n}.md").write_text(
                f"---\ntitle: {name} {n}\nafter: {after}\n---\n\nHello {{{{ name }}}}.\n", encoding="utf-8"
            )
    (tmp / "config.yaml").write_text(
        "site: {title: The Example Gazette, url: 'https://news.example.org'}\n"
        f"database: {{url: '{url}'}}\n"
        "email: {from: 'The Example Gazette <news@example.org>', transport: file}\n"
        "sequences: {send_at: '00:00-24:00'}\n"
    )
    return tmp / "config.yaml"


def populate(url: str, n: int) -> None:
    """N subscribers and their memberships, in chunks (the set-up's memory stays modest too)."""
    store = open_store(url)
    joined = NOW - timedelta(days=60)
    with store.write() as conn:
        conn.execute(
            insert(sequence_steps),
            [
                {"sequence": s, "slug": f"0{k}-step-{k}", "first_seen_at": joined}
                for s in SEQUENCES
                for k in range(1, len(AFTER) + 1)
            ],
        )
    for lo in range(0, n, CHUNK):
        rows = [
            {
                "email": f"reader{i:07d}@example.org",
                "name": f"Reader {i}",
                "status": "confirmed",
                "frequency": "instant",
                "timezone": ZONES[i % len(ZONES)],
                "created_at": joined,
                "updated_at": joined,
            }
            for i in range(lo, min(n, lo + CHUNK))
        ]
        with store.write() as conn:
            conn.execute(insert(subscribers), rows)
            ids = conn.execute(
                select(subscribers.c.id)
                .where(subscribers.c.email >= rows[0]["email"])
                .order_by(subscribers.c.id)
            ).scalars()
            members = []
            for sid in ids:
                k = (sid // len(ZONES)) % len(AFTER)  # progress: steps 1..k had, step k+1 due
                members.append(
                    {
                        "subscriber_id": sid,
                        "sequence": SEQUENCES[sid % len(SEQUENCES)],
                        "entered_at": NOW - AFTER[k][1] - timedelta(hours=1),
                        "progress": k,
                        "last_at": NOW - timedelta(days=1, hours=1) if k else None,
                    }
                )
            conn.execute(insert(sequence_members), members)
    with store.write() as conn:
        conn.execute(text("ANALYZE"))  # as a database that has been running would have its statistics
    store.close()


def timed_round(config: Path) -> None:
    """The measured part, in its own process: one round, planning only; prints JSON."""
    settings = load_settings(config, environ=SECRET)
    store = open_store(settings.database.url)
    base = peak_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    report = run_sequences(settings, store, clock=lambda: NOW, up_since=NOW - timedelta(days=2), send=False)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    with store.read() as conn:
        members = conn.execute(select(func.count()).select_from(sequence_members)).scalar_one()
    store.close()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": cpu,
                "planned": sum(report.planned.values()),
                "sends": len(report.planned),
                "members": members,
                "peak_mb": peak_mb(),
                "base_mb": base,
            }
        )
    )


def postgres_database(admin_url: str) -> tuple[str, str]:
    name = f"bench_seq_{uuid.uuid4().hex[:8]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name, name


def drop_database(admin_url: str, name: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--postgres", metavar="URL", help="an admin URL: run on a new PostgreSQL database")
    ap.add_argument("--round", type=Path, help=argparse.SUPPRESS)  # internal: the timed child
    args = ap.parse_args()
    if args.round:
        timed_round(args.round)
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-seq-"))
    dbname = None
    try:
        if args.postgres:
            url, dbname = postgres_database(args.postgres)
        else:
            url = f"sqlite:///{tmp / 'bench.db'}"
        config = project(tmp, url)
        t0 = time.perf_counter()
        populate(url, args.subscribers)
        setup = time.perf_counter() - t0
        out = subprocess.run(
            [sys.executable, __file__, "--round", str(config)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **SECRET},
        ).stdout
        got = json.loads(out.strip().splitlines()[-1])
    finally:
        if dbname is not None:
            drop_database(args.postgres, dbname)
        shutil.rmtree(tmp, ignore_errors=True)
    dialect = "postgresql" if args.postgres else "sqlite"
    goal = GOAL_SECONDS[dialect]
    print(
        f"{dialect}: {args.subscribers:,} subscribers, {got['members']:,} members in "
        f"{len(SEQUENCES)} sequences x {len(AFTER)} steps, {len(ZONES)} zones"
        f" (set-up {setup:.0f}s, not timed)"
    )
    print(f"  planned {got['planned']:,} deliveries in {got['sends']} step sends")
    print(
        f"  planning time {got['seconds']:.1f}s   (goal < {goal:.0f}s)  "
        f"{'ok' if got['seconds'] < goal else 'MISSED'}   (this process's CPU time: {got['cpu']:.1f}s)"
    )
    print(
        f"  peak memory   {got['peak_mb']:.0f} MB (goal < {GOAL_MB:.0f} MB)  "
        f"{'ok' if got['peak_mb'] < GOAL_MB else 'MISSED'}   "
        f"(process after start-up: {got['base_mb']:.0f} MB)"
    )


if __name__ == "__main__":
    main()
