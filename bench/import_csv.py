"""CSV import of 100,000 subscribers into a fresh SQLite database (and PostgreSQL if configured).

    .venv/bin/python bench/import_csv.py [--rows 100000]

Prints the time and the goal (< 10 s). Every row goes through the full
validation (email-validator, time zone, topics) and the chunked upsert; a
second run of the same file (all rows unchanged) is timed too, since
re-importing an export is the common case. PostgreSQL is measured as well when
PUBLISHER_TEST_DATABASE_URL is set (in a throwaway schema).
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

GOAL = 10.0
ZONES = ("UTC", "Europe/London", "Europe/Paris", "America/New_York", "Asia/Tokyo")


def make_csv(rows: int) -> str:
    out = ["email,name,status,frequency,topics,timezone"]
    for i in range(rows):
        out.append(
            f"Reader.{i:07d}@Example.org,Reader {i},{'pending' if i % 10 == 0 else 'confirmed'},"
            f"{('instant', 'daily', 'weekly')[i % 3]},{'science;cities' if i % 2 else ''},{ZONES[i % 5]}"
        )
    return "\n".join(out) + "\n"


def measure(url: str, text: str, rows: int, label: str) -> None:
    from publisher.store import open_store

    with open_store(url) as store:
        t0 = time.perf_counter()
        report = store.subscribers.import_csv(io.StringIO(text), now=datetime.now(UTC))
        first = time.perf_counter() - t0
        assert report.added == rows and not report.problems, (report.added, report.problems[:3])
        t0 = time.perf_counter()
        again = store.subscribers.import_csv(io.StringIO(text), now=datetime.now(UTC))
        second = time.perf_counter() - t0
        assert again.unchanged == rows
    verdict = "OK" if first < GOAL else "TOO SLOW"
    print(
        f"{label}: import of {rows:,} new subscribers {first:.2f}s ({rows / first:,.0f} rows/s; "
        f"goal < {GOAL:.0f}s) {verdict}; re-import unchanged {second:.2f}s"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    args = ap.parse_args()
    text = make_csv(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        measure(f"sqlite:///{Path(tmp) / 'bench.db'}", text, args.rows, "SQLite")
    pg = os.environ.get("PUBLISHER_TEST_DATABASE_URL")
    if pg:
        import sqlalchemy as sa

        schema = f"bench_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(pg, poolclass=sa.pool.NullPool)
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        try:
            sep = "&" if "?" in pg else "?"
            measure(f"{pg}{sep}options=-csearch_path%3D{schema}", text, args.rows, "PostgreSQL")
        finally:
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            admin.dispose()


if __name__ == "__main__":
    main()
