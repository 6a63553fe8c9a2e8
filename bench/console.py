"""p95 latency of the editor's console pages on one uvicorn worker, with a big list in SQLite.

    .venv/bin/python bench/console.py [--subscribers 100000] [--sends 10000] [--full-sends 10]
                                      [--requests 60] [--store DIR]

Builds a temp project (the sample issues and templates) and a SQLite store
with ``--subscribers`` subscribers (created over the past year; some
unsubscribed, bounced or complained) and ``--sends`` sends; the newest
``--full-sends`` went to every confirmed subscriber (one deliveries row each,
2 % bounced, 0.1 % complaints, 0.5 % unsubscribes), the older ones have only
their ``sends`` row (their deliveries long pruned: 10,000 full sends would be a
billion rows). Rows go in with bulk SQL (``INSERT ... SELECT``), the editor
through ``ops.editors``. Then it starts ``uvicorn`` (one worker, no access log)
in a subprocess on 127.0.0.1, signs in over HTTP, and times ``--requests`` real
HTTP requests (httpx, keep-alive, one at a time, after two warm-ups) of each:

* the dashboard (``/admin/dashboard``),
* the subscribers list: first page, a search, page 500 (keyset cursor ``after``
  = the id ending page 499 in the default oldest-first order),
* an issue's preview page (``/admin/issues/{slug}``) and its email
  (``/admin/issues/{slug}/email.html``),
* the report of the newest send (``/admin/sends/{id}``: 100,000-row domains).

``--store DIR`` keeps the project and its store in ``DIR`` and reuses the
store on the next run with the same sizes (building it takes minutes; opening
it again applies any new migration, so an index can be measured before and
after on the same rows). Its timestamps stay those of the first build.

A page that answers something other than 200 is reported as such (another
engineer may still be building it). Goal (issue 15): p95 < 150 ms each.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

from publisher.config import load_settings
from publisher.ops.editors import add_editor
from publisher.store import open_store

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789abcdef0123456789"
GOAL_MS = 150.0
PASSWORD = "bench password 0123456789"
EDITOR = "bench@example.org"
DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "gmx.de", "example.org", "posteo.net")
PREVIEW = "why-bread-rises"
SERVER = """
import sys, uvicorn
from publisher.config import load_settings
from publisher.web import create_app
uvicorn.run(create_app(load_settings(sys.argv[1])), host="127.0.0.1", port=int(sys.argv[2]),
            log_level="warning", access_log=False, workers=1)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def project(folder: Path, port: int) -> Path:
    """The sample project in ``folder``, served over http on ``port`` (the console's cookies are
    Secure on https), its database there too; returns config.yaml."""
    for copied in ("templates", "issues"):
        shutil.rmtree(folder / copied, ignore_errors=True)
    shutil.copytree(ROOT / "templates", folder / "templates")
    shutil.copytree(ROOT / "issues", folder / "issues")
    config = folder / "config.yaml"
    text = (ROOT / "config.yaml").read_text()
    text = re.sub(r"(?m)^  url: https://\S+$", f"  url: http://127.0.0.1:{port}", text, count=1)
    text += f"\ndatabase:\n  url: sqlite:///{folder / 'console.db'}\n"
    config.write_text(text)
    return config


def fill(url: str, subscribers: int, sends: int, full: int, now: datetime) -> int:
    """Subscribers, sends, deliveries and feedback by bulk SQL; returns the newest send's id."""
    store = open_store(url)
    year = 365 * 24 * 3600
    with store.write() as conn:
        conn.exec_driver_sql(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO subscribers (email, name, status, frequency, topics, timezone, created_at, "
            "updated_at, confirmed_at, unsubscribed_at) SELECT "
            "'reader' || i || '@' || CASE i % 7 WHEN 0 THEN ? WHEN 1 THEN ? WHEN 2 THEN ? WHEN 3 THEN ? "
            "WHEN 4 THEN ? WHEN 5 THEN ? ELSE ? END, 'Reader ' || i, "
            "CASE WHEN i % 50 = 0 THEN 'unsubscribed' WHEN i % 97 = 0 THEN 'bounced' ELSE 'confirmed' END, "
            "'instant', '', 'UTC', datetime(?, '-' || ((? - i) * ? / ?) || ' seconds'), "
            "datetime(?, '-' || ((? - i) * ? / ?) || ' seconds'), "
            "datetime(?, '-' || ((? - i) * ? / ?) || ' seconds'), "
            "CASE WHEN i % 50 = 0 THEN datetime(?, '-' || (i % 90) || ' days') END FROM n",
            (subscribers, *DOMAINS, *([_sql(now), subscribers, year, subscribers] * 3), _sql(now)),
        )
        rows = [
            {
                "kind": "issue",
                "key": f"issue:bench-{i:05d}",
                "issue_slug": f"bench-{i:05d}",
                "status": "done",
                "planned": 0,
                "meta": "",
                "created_at": now - timedelta(days=sends - i),
                "started_at": now - timedelta(days=sends - i),
                "finished_at": now - timedelta(days=sends - i),
            }
            for i in range(sends)
        ]
        conn.execute(
            sa.text(
                "INSERT INTO sends (kind, key, issue_slug, status, planned, meta, created_at, started_at, "
                "finished_at) VALUES (:kind, :key, :issue_slug, :status, :planned, :meta, :created_at, "
                ":started_at, :finished_at)"
            ),
            rows,
        )
        newest = int(conn.exec_driver_sql("SELECT max(id) FROM sends").scalar_one())
        for send_id in range(newest - full + 1, newest + 1):
            _full_send(conn, send_id, now)
    store.close()
    return newest


def _sql(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _full_send(conn: sa.Connection, send_id: int, now: datetime) -> None:
    """Every confirmed subscriber got it; 2 % bounced, 0.1 % complained, 0.5 % unsubscribed."""
    conn.exec_driver_sql(
        "INSERT INTO deliveries (send_id, subscriber_id, email, status, attempts, sent_at) "
        "SELECT ?, id, email, 'sent', 1, ? FROM subscribers WHERE status = 'confirmed'",
        (send_id, _sql(now)),
    )
    conn.exec_driver_sql(
        "UPDATE sends SET planned = (SELECT count(*) FROM deliveries WHERE send_id = ?) WHERE id = ?",
        (send_id, send_id),
    )
    for kind, every in (("hard_bounce", 50), ("complaint", 1000), ("unsubscribe", 200)):
        conn.exec_driver_sql(
            "INSERT INTO inbound_events (key, kind, source, address, delivery_id, send_id, subscriber_id, "
            "status, detail, outcome, received_at) SELECT ? || id, ?, 'smtp', email, id, send_id, "
            "subscriber_id, '', '', '', ? FROM deliveries WHERE send_id = ? AND subscriber_id % ? = 3",
            (f"{send_id}:{kind}:", kind, _sql(now), send_id, every),
        )


def serve(config: Path, port: int) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "PUBLISHER_SECRET_KEY": SECRET}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(config), str(port)], env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/admin/login", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def sign_in(client: httpx.Client) -> None:
    page = client.get("/admin/login").text
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    r = client.post(
        "/admin/login", data={"csrf": csrf, "next": "/admin", "email": EDITOR, "password": PASSWORD}
    )
    if r.status_code != 303:
        raise SystemExit(f"sign-in failed: {r.status_code}")


def timed(client: httpx.Client, path: str, n: int) -> tuple[int, list[float]]:
    status = 0
    for _ in range(2):
        status = client.get(path).status_code
    took = []
    for _ in range(n):
        start = time.perf_counter()
        status = client.get(path).status_code
        took.append((time.perf_counter() - start) * 1000)
    return status, took


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else values[0]


def build(folder: Path, url: str, args: argparse.Namespace) -> int:
    """Fill the store in ``folder`` unless it holds one of the same sizes; returns the newest send's id."""
    sizes = {k: getattr(args, k) for k in ("subscribers", "sends", "full_sends")}
    marker = folder / "bench.json"
    if marker.exists() and (folder / "console.db").exists():
        kept = json.loads(marker.read_text())
        if kept["sizes"] == sizes:
            print(f"store: reusing {folder / 'console.db'} ({kept['sizes']})")
            return int(kept["newest"])
    (folder / "console.db").unlink(missing_ok=True)
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    newest = fill(url, args.subscribers, args.sends, args.full_sends, now)
    with open_store(url) as store:
        add_editor(store, EDITOR, PASSWORD, role="editor", name="Bench", actor="cli", now=now)
    marker.write_text(json.dumps({"sizes": sizes, "newest": newest}))
    print(
        f"store: {args.subscribers} subscribers, {args.sends} sends ({args.full_sends} with a deliveries "
        f"row per confirmed subscriber) in {time.perf_counter() - t0:.1f} s"
    )
    return newest


def measure(url: str, newest: int, requests: int) -> None:
    """Sign in, then time each page and print its line."""
    with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as client:
        sign_in(client)
        pages = [
            ("dashboard", "/admin/dashboard"),
            ("subscribers, first page", "/admin/subscribers"),
            ("subscribers, search 'reader4242'", "/admin/subscribers?q=reader4242"),
            ("subscribers, page 500", f"/admin/subscribers?after={499 * 50}"),
            ("issue preview page", f"/admin/issues/{PREVIEW}"),
            ("issue preview email", f"/admin/issues/{PREVIEW}/email.html"),
            (f"report of send {newest}", f"/admin/sends/{newest}"),
        ]
        print(f"one uvicorn worker (subprocess), {requests} requests each, one at a time (httpx)")
        for label, path in pages:
            status, took = timed(client, path, requests)
            if status != 200:
                print(f"  {label:36s} HTTP {status}: not measured (page missing or failing)")
                continue
            verdict = "ok" if p95(took) < GOAL_MS else "OVER"
            print(
                f"  {label:36s} p50 {statistics.median(took):7.1f} ms  p95 {p95(took):7.1f} ms"
                f"  (goal p95 < {GOAL_MS:.0f} ms: {verdict})"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=100_000)
    ap.add_argument("--sends", type=int, default=10_000)
    ap.add_argument("--full-sends", type=int, default=10)
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument(
        "--store", type=Path, help="keep the project and store here; reuse them if the sizes match"
    )
    args = ap.parse_args()
    with contextlib.ExitStack() as stack:
        if args.store is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-console-")))
        else:
            folder = args.store.resolve()
            folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        config = project(folder, port)
        settings = load_settings(config, environ={"PUBLISHER_SECRET_KEY": SECRET})
        newest = build(folder, settings.database.url, args)
        proc, url = serve(config, port)
        try:
            measure(url, newest, args.requests)
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
