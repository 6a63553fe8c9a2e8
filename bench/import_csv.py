"""CSV import: speed at 100,000 rows, and peak memory from 100,000 to 1,000,000 rows.

    .venv/bin/python bench/import_csv.py [--rows 100000] [--scale 10]

Each measurement runs the import in a fresh child process (``python
bench/import_csv.py --child ...``) reading the CSV from a file, as ``publisher
subscribers import`` does, and the parent reads that child's peak resident set
size from the kernel (``os.wait4`` -> ``ru_maxrss``): the interpreter, the
libraries and everything the import held, nothing measured in-process.

Prints, beside each goal:
- rows/s of a first import of new, valid rows (goal: 100,000 rows < 10 s), and
  of a re-import of the same file (all rows unchanged, the common case);
- the peak RSS at ``rows`` and ``rows * scale``, for valid rows and for rows
  that are all refused (a bad time zone; every error streamed to an errors
  file), and the ratio (goal <= 1.25x for 10x the rows: memory flat).
PostgreSQL is measured too when PUBLISHER_TEST_DATABASE_URL is set (in a
throwaway schema).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from publisher.store import open_store
from publisher.store.csvio import import_csv

TIME_GOAL = 10.0  # seconds for TIME_ROWS new rows
TIME_ROWS = 100_000
RATIO_GOAL = 1.25
ZONES = ("UTC", "Europe/London", "Europe/Paris", "America/New_York", "Asia/Tokyo")


def write_csv(path: Path, rows: int, *, valid: bool) -> None:
    """The file, streamed to disk so the parent's memory is not the child's concern."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("email,name,status,frequency,topics,timezone\n")
        for i in range(rows):
            zone = ZONES[i % 5] if valid else "Mars/Base"
            out.write(
                f"Reader.{i:07d}@Example.org,Reader {i},{'pending' if i % 10 == 0 else 'confirmed'},"
                f"{('instant', 'daily', 'weekly')[i % 3]},{'science;cities' if i % 2 else ''},{zone}\n"
            )


def child(url: str, csv_path: Path, errors_path: Path) -> None:
    """Import the file twice (new, then unchanged) and print the counts and times as JSON."""
    times, reports = [], []
    with open_store(url) as store:
        for _ in range(2):
            with (
                csv_path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as source,
                errors_path.open("w", encoding="utf-8") as errors,
            ):
                t0 = time.perf_counter()
                report = import_csv(store, source, now=datetime.now(UTC), errors=errors)
                times.append(time.perf_counter() - t0)
                reports.append(report)
    first, again = reports
    print(
        json.dumps(
            {
                "first": times[0],
                "again": times[1],
                "added": first.added,
                "refused": first.refused,
                "kept": len(first.problems),
                "unchanged": again.unchanged,
            }
        )
    )


def run_child(url: str, csv_path: Path, errors_path: Path) -> tuple[dict[str, float], float]:
    """The child's JSON result and its peak RSS in MB, read by wait4 from the kernel."""
    cmd = [sys.executable, __file__, "--child", url, str(csv_path), str(errors_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"child failed ({proc.returncode}): {' '.join(cmd)}")
    return json.loads(out), usage.ru_maxrss / 1024  # Linux: kilobytes


def measure(label: str, make_url: Iterator[str], tmp: Path, sizes: list[int]) -> None:
    for valid in (True, False):
        peaks = []
        for rows in sizes:
            csv_path = tmp / f"{rows}-{valid}.csv"
            if not csv_path.exists():
                write_csv(csv_path, rows, valid=valid)
            result, peak = run_child(next(make_url), csv_path, tmp / "errors.txt")
            peaks.append(peak)
            if valid:
                assert result["added"] == rows and result["unchanged"] == rows and not result["refused"], (
                    result
                )
                print(
                    f"{label}: {rows:,} new rows {result['first']:.2f}s ({rows / result['first']:,.0f} rows/s"
                    f"{_time_verdict(rows, result['first'])}); re-import unchanged {result['again']:.2f}s "
                    f"({rows / result['again']:,.0f} rows/s); peak RSS {peak:.0f} MB"
                )
            else:
                assert result["refused"] == rows and result["kept"] <= 50, result
                print(
                    f"{label}: {rows:,} refused rows {result['first']:.2f}s, {result['kept']} kept in memory"
                    f", all {rows:,} in the errors file; peak RSS {peak:.0f} MB"
                )
        ratio = peaks[-1] / peaks[0]
        verdict = "OK" if ratio <= RATIO_GOAL else "NOT FLAT"
        print(
            f"{label}: peak RSS ({'valid' if valid else 'refused'} rows) {sizes[0]:,} -> {sizes[-1]:,} rows: "
            f"{peaks[0]:.0f} MB -> {peaks[-1]:.0f} MB, ratio {ratio:.2f}x "
            f"(goal <= {RATIO_GOAL}x for {sizes[-1] // sizes[0]}x rows) {verdict}"
        )


def _time_verdict(rows: int, seconds: float) -> str:
    if rows != TIME_ROWS:
        return ""
    return f"; goal < {TIME_GOAL:.0f}s for {TIME_ROWS:,}: {'OK' if seconds < TIME_GOAL else 'TOO SLOW'}"


def sqlite_urls(tmp: Path) -> Iterator[str]:
    n = 0
    while True:
        n += 1
        path = tmp / f"bench-{n}.db"
        yield f"sqlite:///{path}"


@contextmanager
def pg_urls(base: str) -> Iterator[Iterator[str]]:
    """Fresh schemas on the server, dropped afterwards."""
    admin = sa.create_engine(base, poolclass=sa.pool.NullPool)
    made: list[str] = []

    def urls() -> Iterator[str]:
        while True:
            schema = f"bench_{uuid.uuid4().hex[:12]}"
            with admin.begin() as conn:
                conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
            made.append(schema)
            sep = "&" if "?" in base else "?"
            yield f"{base}{sep}options=-csearch_path%3D{schema}"

    try:
        yield urls()
    finally:
        with admin.begin() as conn:
            for schema in made:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=TIME_ROWS)
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--child", nargs=3, metavar=("URL", "CSV", "ERRORS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        url, csv_path, errors_path = args.child
        child(url, Path(csv_path), Path(errors_path))
        return
    sizes = [args.rows, args.rows * args.scale]
    print("peak memory: ru_maxrss of a fresh child process per size (os.wait4), in MB")
    with tempfile.TemporaryDirectory() as tmp:
        measure("SQLite", sqlite_urls(Path(tmp)), Path(tmp), sizes)
        pg = os.environ.get("PUBLISHER_TEST_DATABASE_URL")
        if pg:
            with pg_urls(pg) as urls:
                measure("PostgreSQL", urls, Path(tmp), sizes)


if __name__ == "__main__":
    main()
