"""Requests per second of the web app on one uvicorn worker, over loopback.

    .venv/bin/python bench/web.py [--seconds 8] [--connections 32] [--tokens 20000]
                                  [--recipients 100000] [--python-load]

Builds the sample site into a temp folder, starts ``uvicorn`` (one worker, no
access log) in a subprocess on 127.0.0.1, and drives it from another process:
``wrk`` when installed (Debian package ``wrk``), else a small asyncio HTTP/1.1
keep-alive load generator (in its own process). Measures

* ``GET /feed.xml`` answered 200 (the feed's bytes from the in-memory cache),
* ``GET /feed.xml`` with ``If-None-Match`` answered 304 (a feed reader's poll),
* ``POST /unsubscribe/{token}`` (RFC 8058 one-click; ``--tokens`` distinct
  subscribers cycled: the first pass writes, later passes find the row already
  unsubscribed), first idle, then again (other tokens, all recipients of the
  send) while a real ``publisher send`` of one issue to ``--recipients``
  subscribers drains into the same SQLite file over SMTP to a sink on
  127.0.0.1 (``bench/send.py --sink``, its own process): mailbox providers hit
  the link in bursts right after a send, while the drain writes its ledger.

Goals: >= 1,000 req/s for the feed on one worker, and the 304 at least as fast
as the 200; the one-click unsubscribe >= 1,500 req/s with p99 < 100 ms, idle
and during the send (issue 12). Prints each figure with p50/p99 latency and its goal.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-secret-0123456789abcdef0123456789"
FEED_GOAL = 1000.0
UNSUB_GOAL = 1500.0  # req/s
UNSUB_P99_GOAL = 100.0  # ms
SEND_ISSUE = "why-bread-rises"

SERVER = """
import sys, uvicorn
from publisher.config import load_settings
from publisher.web import create_app
settings = load_settings(sys.argv[1])
uvicorn.run(create_app(settings), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
            access_log=False, workers=1)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(folder: Path, idle: int, recipients: int, during: int) -> tuple[Path, list[str], list[str]]:
    """The sample project copied and built, with ``idle + recipients`` confirmed subscribers.

    Returns (config, idle unsubscribe paths, during-send unsubscribe paths): the
    idle tokens are used up before the send is planned, so the send has exactly
    ``recipients`` rows; the during-send tokens are spread over its recipients.
    """
    from publisher.build import build
    from publisher.config import load_settings
    from publisher.store import open_store
    from publisher.tokens import Purpose, make_token

    shutil.copytree(ROOT / "templates", folder / "templates")
    shutil.copytree(ROOT / "issues", folder / "issues")
    config = folder / "config.yaml"
    text = (ROOT / "config.yaml").read_text()
    config.write_text(text.replace("sqlite:///publisher.db", f"sqlite:///{folder / 'bench.db'}"))
    settings = load_settings(config)
    build(settings)
    store = open_store(settings.database.url)
    total = idle + recipients
    lines = ["email,name"] + [f"reader{i:07d}@example.org,Reader {i}" for i in range(total)]
    store.subscribers.import_csv(io.StringIO("\n".join(lines) + "\n"), now=datetime.now(UTC))
    store.close()
    secret = settings.secret_key()

    def path(i: int) -> str:
        return "/unsubscribe/" + make_token(secret, Purpose.UNSUBSCRIBE, f"reader{i:07d}@example.org")

    step = max(1, recipients // max(1, during))
    return (
        config,
        [path(i) for i in range(idle)],
        [path(idle + i * step) for i in range(min(during, recipients))],
    )


# -- load generators -----------------------------------------------------------------------------

WRK_LUA = """
paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("%(method)s", paths[i], %(headers)s, %(body)s)
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {\\"requests\\": %%d, \\"seconds\\": %%f, \\"p50\\": %%f, "
    .. "\\"p99\\": %%f, \\"errors\\": %%d, \\"non2xx\\": %%d}\\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""


def run_wrk(
    url: str,
    paths: list[str],
    method: str,
    headers: dict[str, str],
    body: str | None,
    seconds: int,
    connections: int,
    work: Path,
) -> dict[str, float]:
    plist = work / f"paths-{method}.txt"
    plist.write_text("\n".join(paths) + "\n")
    lua_headers = "{" + ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items()) + "}"
    script = work / f"wrk-{method}-{len(headers)}.lua"
    script.write_text(
        WRK_LUA
        % {
            "paths": plist,
            "method": method,
            "headers": lua_headers,
            "body": f'"{body}"' if body is not None else "nil",
        }
    )
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    m = re.search(r"^JSON (.*)$", out, re.M)
    assert m, out
    data = json.loads(m.group(1))
    data["rps"] = data["requests"] / data["seconds"]
    return data


PYLOAD = r"""
import asyncio, json, sys, time
host, port, method = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seconds, conns = float(sys.argv[4]), int(sys.argv[5])
spec = json.loads(sys.stdin.read())
paths, headers, body = spec["paths"], spec["headers"], (spec["body"] or "").encode()
lat, counts = [], {"ok": 0, "bad": 0}
async def worker(n):
    r, w = await asyncio.open_connection(host, port)
    i = n
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        path = paths[i % len(paths)]; i += conns
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
        req = head.encode() + body
        t = time.perf_counter()
        w.write(req)
        head = await r.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if length:
            await r.readexactly(length)
        lat.append(time.perf_counter() - t)
        counts["ok" if status < 400 else "bad"] += 1
    w.close()
async def main():
    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(conns)))
    took = time.perf_counter() - start
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else 0.0
    print(json.dumps({"requests": len(lat), "seconds": took, "p50": pick(0.5), "p99": pick(0.99),
                      "errors": 0, "non2xx": counts["bad"]}))
asyncio.run(main())
"""


def run_python(
    host: str,
    port: int,
    paths: list[str],
    method: str,
    headers: dict[str, str],
    body: str | None,
    seconds: int,
    connections: int,
) -> dict[str, float]:
    spec = json.dumps({"paths": paths, "headers": headers, "body": body})
    out = subprocess.run(
        [sys.executable, "-c", PYLOAD, host, str(port), method, str(seconds), str(connections)],
        input=spec,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    data = json.loads(out.strip().splitlines()[-1])
    data["rps"] = data["requests"] / data["seconds"]
    return data


def retire_idle(db: Path, idle: int) -> None:
    """Unsubscribe the idle phase's subscribers it did not reach, so the send has exactly its recipients."""
    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute(
            "UPDATE subscribers SET status = 'unsubscribed' WHERE email < ?",
            (f"reader{idle:07d}@example.org",),
        )


# -- the concurrent send ---------------------------------------------------------------------------


class Send:
    """A real ``publisher send`` in its own process, over SMTP to the sink, into the web app's database."""

    def __init__(self, config: Path, db: Path, work: Path) -> None:
        self.db = db
        self.sink = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "send.py"), "--sink"], stdout=subprocess.PIPE, text=True
        )
        assert self.sink.stdout is not None
        port = int(self.sink.stdout.readline())
        env = {
            **os.environ,
            "PUBLISHER_EMAIL__TRANSPORT": "smtp",
            "PUBLISHER_EMAIL__SMTP__HOST": "127.0.0.1",
            "PUBLISHER_EMAIL__SMTP__PORT": str(port),
        }
        self.log = (work / "send.log").open("w")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("publisher")), "send", SEND_ISSUE, "--config", str(config)],
            cwd=config.parent,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def counts(self) -> tuple[int, int]:
        """(sent, pending) rows of the send so far, read straight from the file."""
        with sqlite3.connect(self.db, timeout=30) as conn:
            rows = dict(
                conn.execute(
                    "SELECT d.status, count(*) FROM deliveries d JOIN sends s ON s.id = d.send_id "
                    "WHERE s.key = ? GROUP BY d.status",
                    (f"issue:{SEND_ISSUE}",),
                ).fetchall()
            )
        return rows.get("sent", 0), rows.get("pending", 0)

    def wait_draining(self, at_least: int = 2000, timeout: float = 120) -> None:
        """Until the plan is written and the drain is under way (so the window sees only the drain)."""
        deadline = time.monotonic() + timeout
        while self.counts()[0] < at_least:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the send did not start draining; see {self.log.name}")
            time.sleep(0.2)

    def stop(self) -> None:
        for proc in (self.proc, self.sink):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        self.log.close()


def load(
    args: argparse.Namespace,
    port: int,
    case: tuple[str, str, list[str], dict[str, str], str | None],
    work: Path,
) -> dict[str, float]:
    """Drive one case for ``args.seconds`` with wrk or the Python load generator."""
    _label, method, paths, headers, body = case
    if shutil.which("wrk") is not None and not args.python_load:
        return run_wrk(
            f"http://127.0.0.1:{port}", paths, method, headers, body, args.seconds, args.connections, work
        )
    plain = {k: v.replace('\\"', '"') for k, v in headers.items()}
    return run_python("127.0.0.1", port, paths, method, plain, body, args.seconds, args.connections)


def show(label: str, r: dict[str, float]) -> None:
    bad = (
        f", {int(r['non2xx'])} non-2xx/3xx, {int(r['errors'])} socket errors"
        if r["non2xx"] or r["errors"]
        else ""
    )
    print(f"  {label:34} {r['rps']:8,.0f} req/s   p50 {r['p50']:6.2f} ms   p99 {r['p99']:6.2f} ms{bad}")


def start_server(config: Path, port: int) -> tuple[subprocess.Popen[bytes], str, int]:
    """The app in uvicorn, once it answers; (process, the feed's ETag, the feed's size)."""
    import httpx

    server = subprocess.Popen([sys.executable, "-c", SERVER, str(config), str(port)], cwd=ROOT)
    deadline = time.monotonic() + 30
    while True:
        try:
            feed = httpx.get(f"http://127.0.0.1:{port}/feed.xml", timeout=2)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit("the server did not start") from None
            time.sleep(0.1)
    assert feed.status_code == 200
    etag = feed.headers["etag"]
    assert httpx.get(f"http://127.0.0.1:{port}/feed.xml", headers={"If-None-Match": etag}).status_code == 304
    return server, etag, len(feed.content)


def unsub_verdict(label: str, r: dict[str, float]) -> str:
    ok = r["rps"] >= UNSUB_GOAL and r["p99"] < UNSUB_P99_GOAL and not r["non2xx"] and not r["errors"]
    return (
        f"one-click unsubscribe, {label}: {r['rps']:,.0f} req/s (goal >= {UNSUB_GOAL:,.0f}: ratio "
        f"{r['rps'] / UNSUB_GOAL:.2f}), p99 {r['p99']:.1f} ms (goal < {UNSUB_P99_GOAL:.0f} ms) "
        f"({'met' if ok else 'NOT met'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=20_000, help="distinct unsubscribe links per phase")
    parser.add_argument("--recipients", type=int, default=100_000, help="size of the concurrent send")
    parser.add_argument(
        "--python-load", action="store_true", help="use the Python load generator even if wrk exists"
    )
    args = parser.parse_args()
    os.environ["PUBLISHER_SECRET_KEY"] = SECRET
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    one_click = "List-Unsubscribe=One-Click"

    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        work = Path(tmp)
        config, idle_paths, send_paths = prepare(work / "project", args.tokens, args.recipients, args.tokens)
        port = free_port()
        server, etag, feed_size = start_server(config, port)
        send: Send | None = None
        try:
            tool = (
                "wrk (1 thread)"
                if shutil.which("wrk") and not args.python_load
                else "python asyncio load generator"
            )
            print(
                f"web bench: 1 uvicorn worker on 127.0.0.1, {args.connections} connections, "
                f"{args.seconds}s each, load from {tool}; feed.xml is {feed_size:,} bytes; "
                f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start"
            )
            results = {}
            cases = [
                ("GET /feed.xml -> 200", "GET", ["/feed.xml"], {}, None),
                (
                    "GET /feed.xml -> 304",
                    "GET",
                    ["/feed.xml"],
                    {"If-None-Match": etag.replace('"', '\\"')},
                    None,
                ),
                ("POST /unsubscribe/{token} idle", "POST", idle_paths, form, one_click),
            ]
            for case in cases:
                results[case[0]] = r = load(args, port, case, work)
                show(case[0], r)
            retire_idle(work / "project" / "bench.db", args.tokens)
            send = Send(config, work / "project" / "bench.db", work)
            send.wait_draining()
            before, t0 = send.counts()[0], time.monotonic()
            label = "POST /unsubscribe/{token} during send"
            results[label] = r = load(args, port, (label, "POST", send_paths, form, one_click), work)
            sent, pending = send.counts()
            drain_rate = (sent - before) / (time.monotonic() - t0)
            show(label, r)
            print(
                f"  the send meanwhile: {drain_rate:,.0f} msg/s drained into the same SQLite file, "
                f"{sent:,} of {args.recipients:,} sent, {pending:,} still pending at the window's end"
                + ("" if pending else "  (WARNING: the send finished inside the window)")
            )
        finally:
            if send is not None:
                send.stop()
            server.terminate()
            server.wait(10)

    feed200 = results["GET /feed.xml -> 200"]["rps"]
    feed304 = results["GET /feed.xml -> 304"]["rps"]
    print(
        f"feed 200: {feed200:,.0f} req/s, goal >= {FEED_GOAL:,.0f}: ratio {feed200 / FEED_GOAL:.2f} "
        f"({'met' if feed200 >= FEED_GOAL else 'NOT met'})"
    )
    print(
        f"feed 304: {feed304:,.0f} req/s, goal >= the 200's {feed200:,.0f}: ratio {feed304 / feed200:.2f} "
        f"({'met' if feed304 >= feed200 * 0.97 else 'NOT met'}; within 3% is equal: machines are noisy)"
    )
    print(unsub_verdict("idle", results["POST /unsubscribe/{token} idle"]))
    print(unsub_verdict(f"during a {args.recipients:,}-recipient send", results[label]))


if __name__ == "__main__":
    main()
