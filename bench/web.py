"""Requests per second of the web app on one uvicorn worker, over loopback.

    .venv/bin/python bench/web.py [--seconds 8] [--connections 32] [--subscribers 2000]

Builds the sample site into a temp folder, starts ``uvicorn`` (one worker, no
access log) in a subprocess on 127.0.0.1, and drives it from another process:
``wrk`` when installed (Debian package ``wrk``), else a small asyncio HTTP/1.1
keep-alive load generator (in its own process). Measures

* ``GET /feed.xml`` answered 200 (the feed's bytes from the in-memory cache),
* ``GET /feed.xml`` with ``If-None-Match`` answered 304 (a feed reader's poll),
* ``POST /unsubscribe/{token}`` (RFC 8058 one-click; each token once, then again:
  the first pass writes, later passes find the row already unsubscribed).

Goals: >= 1,000 req/s for the feed on one worker, and the 304 at least as fast
as the 200. Prints each figure with p50/p99 latency and its goal.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-secret"
FEED_GOAL = 1000.0

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


def prepare(folder: Path, subscribers: int) -> tuple[Path, list[str]]:
    """The sample project copied and built, with confirmed subscribers; (config, unsubscribe paths)."""
    from publisher.config import load_settings
    from publisher.ops.build import build
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
    lines = ["email,name"] + [f"reader{i:06d}@example.org,Reader {i}" for i in range(subscribers)]
    import io

    store.subscribers.import_csv(io.StringIO("\n".join(lines) + "\n"), now=datetime.now(UTC))
    store.close()
    secret = settings.secret_key()
    paths = [
        "/unsubscribe/" + make_token(secret, Purpose.UNSUBSCRIBE, f"reader{i:06d}@example.org")
        for i in range(subscribers)
    ]
    return config, paths


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument(
        "--python-load", action="store_true", help="use the Python load generator even if wrk exists"
    )
    args = parser.parse_args()
    os.environ["PUBLISHER_SECRET_KEY"] = SECRET

    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        work = Path(tmp)
        config, unsub_paths = prepare(work / "project", args.subscribers)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(config), str(port)], cwd=ROOT)
        try:
            import httpx

            deadline = time.monotonic() + 30
            while True:
                try:
                    feed = httpx.get(f"http://127.0.0.1:{port}/feed.xml", timeout=2)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("the server did not start") from None
                    time.sleep(0.1)
            assert feed.status_code == 200
            etag = feed.headers["etag"]
            assert (
                httpx.get(f"http://127.0.0.1:{port}/feed.xml", headers={"If-None-Match": etag}).status_code
                == 304
            )

            use_wrk = shutil.which("wrk") is not None and not args.python_load
            tool = "wrk (1 thread)" if use_wrk else "python asyncio load generator"
            cases = [
                ("GET /feed.xml -> 200", "GET", ["/feed.xml"], {}, None),
                (
                    "GET /feed.xml -> 304",
                    "GET",
                    ["/feed.xml"],
                    {"If-None-Match": etag.replace('"', '\\"')},
                    None,
                ),
                (
                    "POST /unsubscribe/{token}",
                    "POST",
                    unsub_paths,
                    {"Content-Type": "application/x-www-form-urlencoded"},
                    "List-Unsubscribe=One-Click",
                ),
            ]
            print(
                f"web bench: 1 uvicorn worker on 127.0.0.1, {args.connections} connections, "
                f"{args.seconds}s each, load from {tool}; feed.xml is {len(feed.content):,} bytes"
            )
            results = {}
            for label, method, paths, headers, body in cases:
                if use_wrk:
                    r = run_wrk(
                        f"http://127.0.0.1:{port}",
                        paths,
                        method,
                        headers,
                        body,
                        args.seconds,
                        args.connections,
                        work,
                    )
                else:
                    plain = {k: v.replace('\\"', '"') for k, v in headers.items()}
                    r = run_python(
                        "127.0.0.1", port, paths, method, plain, body, args.seconds, args.connections
                    )
                results[label] = r
                bad = (
                    f", {int(r['non2xx'])} non-2xx/3xx, {int(r['errors'])} socket errors"
                    if r["non2xx"] or r["errors"]
                    else ""
                )
                print(
                    f"  {label:28} {r['rps']:8,.0f} req/s   "
                    f"p50 {r['p50']:6.2f} ms   p99 {r['p99']:6.2f} ms{bad}"
                )
        finally:
            server.terminate()
            server.wait(10)

    feed200 = results["GET /feed.xml -> 200"]["rps"]
    feed304 = results["GET /feed.xml -> 304"]["rps"]
    unsub = results["POST /unsubscribe/{token}"]["rps"]
    print(
        f"feed 200: {feed200:,.0f} req/s, goal >= {FEED_GOAL:,.0f}: ratio {feed200 / FEED_GOAL:.2f} "
        f"({'met' if feed200 >= FEED_GOAL else 'NOT met'})"
    )
    print(
        f"feed 304: {feed304:,.0f} req/s, goal >= the 200's {feed200:,.0f}: ratio {feed304 / feed200:.2f} "
        f"({'met' if feed304 >= feed200 * 0.97 else 'NOT met'}; within 3% is equal: machines are noisy)"
    )
    print(
        f"one-click unsubscribe: {unsub:,.0f} req/s (no goal set; SQLite, {args.subscribers:,} tokens cycled)"
    )


if __name__ == "__main__":
    main()
