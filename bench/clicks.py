"""Redirects per second of ``GET /r/<token>`` on one uvicorn worker on SQLite, clicks recorded.

    .venv/bin/python bench/clicks.py [--seconds 8] [--connections 32] [--links 20] [--python-load]

Makes a temp project whose SQLite database holds one send with ``--links``
recorded links, starts the app in ``uvicorn`` (one worker, no access log) in a
subprocess, and drives ``/r/<token>`` for those links from another process
(``wrk`` when installed, else ``bench/web.py``'s asyncio load generator) with a
browser's User-Agent. Every answer must be a 302, and afterwards the database
must hold one click event per request (the group-commit writer answers only
after the click is committed).

A ``--warmup`` second of the same load runs first, unmeasured.
Goal (issue #16): >= 3,000 req/s, p99 < 50 ms. Also printed: the server's CPU
time per redirect (from ``/proc``), which a loaded machine moves far less
than the rate or the tail: compare trees with it when others share the cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from web import SERVER, free_port, run_python, run_wrk  # noqa: E402

from publisher.config import load_settings  # noqa: E402
from publisher.store import open_store  # noqa: E402
from publisher.tokens import click_token  # noqa: E402

SECRET = "bench-secret-0123456789abcdef0123456789"
GOAL_RPS = 3000.0
GOAL_P99 = 50.0  # ms
KEY = "issue:bench-clicks"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def prepare(folder: Path, links: int) -> tuple[Path, Path, list[str]]:
    """(config, database, /r/ paths): a project whose database has one send with ``links`` links."""
    shutil.copytree(ROOT / "templates", folder / "templates")
    (folder / "issues").mkdir()
    db = folder / "bench.db"
    config = folder / "config.yaml"
    text = (ROOT / "config.yaml").read_text()
    config.write_text(text.replace("sqlite:///publisher.db", f"sqlite:///{db}"))
    settings = load_settings(config)
    store = open_store(settings.database.url)
    started = datetime.now(UTC) - timedelta(hours=1)  # long past the prefetch window
    store.ledger.plan_send("issue", KEY, now=started, issue_slug="bench-clicks")
    store.clicks.record_links(KEY, [f"https://example.org/story/{n}" for n in range(links)], now=started)
    store.close()
    secret = settings.secret_key()
    return config, db, [f"/r/{click_token(secret, KEY, n)}" for n in range(1, links + 1)]


def start(config: Path, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(config), str(port)], cwd=ROOT)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/r/not-a-token", timeout=2).status_code == 400:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise SystemExit("the server did not start")
        time.sleep(0.1)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def events(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        return int(conn.execute("SELECT count(*) FROM click_events WHERE kind = 'human'").fetchone()[0])


def drive(
    args: argparse.Namespace, port: int, paths: list[str], seconds: int, work: Path
) -> dict[str, float]:
    """``seconds`` of GET /r/<token> over ``args.connections`` with a browser's User-Agent."""
    if shutil.which("wrk") and not args.python_load:
        url = f"http://127.0.0.1:{port}"
        return run_wrk(url, paths, "GET", {"User-Agent": BROWSER}, None, seconds, args.connections, work)
    agent = {"User-Agent": BROWSER}
    return run_python("127.0.0.1", port, paths, "GET", agent, None, seconds, args.connections)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=1, help="seconds of load before the measured run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--links", type=int, default=20)
    ap.add_argument("--python-load", action="store_true", help="use the Python load generator even with wrk")
    args = ap.parse_args()
    os.environ["PUBLISHER_SECRET_KEY"] = SECRET  # the server process inherits it
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config, db, paths = prepare(work, args.links)
        port = free_port()
        server = start(config, port)
        try:
            tool = "wrk" if shutil.which("wrk") and not args.python_load else "python load generator"
            if args.warmup:  # first lookups, the writer's connection, SQLite's cache: not the steady state
                drive(args, port, paths, args.warmup, work)
            cpu_before, warm = cpu_seconds(server.pid), events(db)
            r = drive(args, port, paths, args.seconds, work)
            cpu_after = cpu_seconds(server.pid)
        finally:
            server.terminate()
            server.wait(30)
        recorded = events(db) - warm
    ok = r["rps"] >= GOAL_RPS and r["p99"] < GOAL_P99 and not r["non2xx"] and recorded >= r["requests"]
    print(f"# one uvicorn worker, SQLite, {args.connections} connections, {args.seconds} s, {tool}")
    print(
        f"GET /r/<token> (302): {r['rps']:,.0f} req/s (goal >= {GOAL_RPS:,.0f}), "
        f"p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms (goal < {GOAL_P99:.0f} ms); "
        f"click events recorded {recorded:,} for {int(r['requests']):,} requests"
        + (f"; {int(r['non2xx'])} answers not 2xx/3xx" if r["non2xx"] else "")
    )
    if cpu_before is not None and cpu_after is not None and r["requests"]:
        per = (cpu_after - cpu_before) / r["requests"] * 1e6
        print(
            f"server CPU per redirect: {per:,.0f} µs (at most {1e6 / per:,.0f} req/s on a core of its own; "
            "unlike req/s and p99, this hardly moves with the machine's load)"
        )
    print("result:", "ok" if ok else "BELOW GOAL")


if __name__ == "__main__":
    main()
