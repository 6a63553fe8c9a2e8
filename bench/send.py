"""Send throughput, held against a raw smtplib blast to the same sink, plus memory and DKIM cost.

    .venv/bin/python bench/send.py [--subscribers 10000] [--big 100000] [--quick]

Starts a minimal SMTP sink (asyncio, accepts and discards; far cheaper per
message than any client) in its own process, then in one run measures:

- ``send_issue`` of one sample issue to N subscribers (plan + render + drain,
  ledger included, SQLite), in a fresh process, in messages per second;
- a raw smtplib blast of the same prepared bytes over the same number of
  connections to the same sink;
- the same send with DKIM on (2048-bit RSA), against the unsigned send of the same rounds;
- peak memory (max RSS) of the send at N and at --big subscribers (should be flat);
- DKIM signing cost per message: ours (OpenSSL) split into canonicalise + hash and the
  RSA operation, dkimpy's canonicalisation and dkimpy's whole signature for reference,
  and signing in 1 and 2 threads (OpenSSL releases the GIL).

Goals: ours >= 0.7 x raw and >= 1,500 msg/s with 4 connections; signed >= 0.7 x unsigned;
memory flat.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from publisher.deliver import DkimSigner

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_ISSUE = "why-bread-rises"
CONCURRENCY = 4


# -- the sink -------------------------------------------------------------------------------------


class _Sink(asyncio.Protocol):
    """Just enough SMTP: answers every command, finds the end of DATA with one bytes.find."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport  # type: ignore[assignment]
        self.buf = b""
        self.in_data = False
        self.t.write(b"220 sink ESMTP\r\n")  # type: ignore[attr-defined]

    def data_received(self, chunk: bytes) -> None:
        buf = self.buf + chunk
        out = []
        while True:
            if self.in_data:
                i = buf.find(b"\r\n.\r\n")
                if i < 0:
                    buf = buf[-4:]
                    break
                buf = buf[i + 5 :]
                self.in_data = False
                out.append(b"250 2.0.0 OK\r\n")
                continue
            i = buf.find(b"\r\n")
            if i < 0:
                break
            line, buf = buf[:i], buf[i + 2 :]
            cmd = line[:4].upper()
            if cmd == b"EHLO":
                out.append(b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 50000000\r\n")
            elif cmd == b"DATA":
                self.in_data = True
                out.append(b"354 go ahead\r\n")
                buf = b"\r\n" + buf
            elif cmd == b"QUIT":
                self.t.write(b"".join([*out, b"221 bye\r\n"]))  # type: ignore[attr-defined]
                self.t.close()
                return
            else:
                out.append(b"250 OK\r\n")
        self.buf = buf
        if out:
            self.t.write(b"".join(out))  # type: ignore[attr-defined]


def run_sink() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Sink, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def start_sink() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, __file__, "--sink"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


# -- a throwaway project ------------------------------------------------------------------------------


def make_project(folder: Path, port: int, dkim: Path | None = None) -> Path:
    shutil.copytree(ROOT / "templates", folder / "templates")
    (folder / "issues").mkdir()
    shutil.copy(ROOT / "issues" / f"{SAMPLE_ISSUE}.md", folder / "issues")
    dkim_yaml = f"  dkim: {{domain: example.org, selector: news, private_key_file: {dkim}}}\n" if dkim else ""
    (folder / "config.yaml").write_text(
        "site: {title: Bench, url: 'https://news.example.org'}\n"
        "database: {url: 'sqlite:///bench.db'}\n"
        "email:\n"
        "  from: 'Bench <news@example.org>'\n"
        "  transport: smtp\n"
        f"  smtp: {{host: 127.0.0.1, port: {port}, timeout: 30}}\n"
        f"  concurrency: {CONCURRENCY}\n" + dkim_yaml
    )
    return folder / "config.yaml"


def child_send(config: Path, n: int) -> None:
    """In a fresh process: import n subscribers, then time send_issue; print JSON."""
    import io

    from publisher.config import load_settings
    from publisher.ops.send import send_issue
    from publisher.store import open_store

    settings = load_settings(
        config, environ={"PUBLISHER_SECRET_KEY": "bench-secret-0123456789abcdef0123456789"}
    )
    store = open_store(settings.database.url)
    csv = "email,name\n" + "".join(f"reader{i:07d}@example.org,Reader {i}\n" for i in range(n))
    store.subscribers.import_csv(io.StringIO(csv), now=datetime.now(UTC))
    del csv
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sampler = _RssSampler()  # the peak during the send itself (ru_maxrss also counts the import)
    t0, c0 = time.perf_counter(), time.process_time()
    with sampler:
        outcome = send_issue(settings, store, SAMPLE_ISSUE, clock=lambda: datetime.now(UTC))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert outcome.drain is not None and outcome.drain.counts.sent == n, outcome.drain
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rate": n / seconds,
                "cpu_us": cpu / n * 1e6,
                "maxrss_kb": rss,
                "before_kb": rss_before,
                "send_peak_kb": sampler.peak_kb,
                "send_start_kb": sampler.start_kb,
                "drain_seconds": outcome.drain.seconds,
            }
        )
    )


class _RssSampler:
    """Resident memory sampled every 20 ms from /proc while the block runs."""

    def __init__(self) -> None:
        self.peak_kb = self.start_kb = 0
        self._stop = threading.Event()

    @staticmethod
    def _rss_kb() -> int:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_kb = max(self.peak_kb, self._rss_kb())

    def __enter__(self) -> _RssSampler:
        self.start_kb = self.peak_kb = self._rss_kb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, self._rss_kb())


def run_child(config: Path, n: int) -> dict[str, float]:
    env = {**os.environ, "PUBLISHER_SECRET_KEY": "bench-secret-0123456789abcdef0123456789"}
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(config), str(n)], env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the raw baseline and DKIM ------------------------------------------------------------------------------


def prepared_bytes(config: Path) -> bytes:
    from publisher.config import load_settings
    from publisher.content import load_issue
    from publisher.render.email import prepare_issue_email
    from publisher.render.email_mime import make_recipient

    settings = load_settings(
        config, environ={"PUBLISHER_SECRET_KEY": "bench-secret-0123456789abcdef0123456789"}
    )
    issue = load_issue(settings, SAMPLE_ISSUE)
    prepared = prepare_issue_email(settings, issue, send_key="bench", date=datetime.now(UTC))
    return prepared.personalise(make_recipient(settings, b"bench", "bench", "reader@example.org", "Reader"))


def raw_blast(port: int, data: bytes, n: int) -> tuple[float, float]:
    """(messages per second, CPU microseconds per message) of plain smtplib.sendmail in threads."""

    def worker(count: int) -> None:
        s = smtplib.SMTP("127.0.0.1", port)
        s.ehlo()
        for _ in range(count):
            s.sendmail("news@example.org", ["reader@example.org"], data)
        s.quit()

    threads = [threading.Thread(target=worker, args=(n // CONCURRENCY,)) for _ in range(CONCURRENCY)]
    t0, c0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return n / (time.perf_counter() - t0), (time.process_time() - c0) / n * 1e6


def _per_call_us(fn: Callable[[], object], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def dkim_cost(key: Path, data: bytes, n: int = 500) -> dict[str, float]:
    """Microseconds per message of each step of signing, ours and dkimpy's."""
    import dkim
    from dkim.canonicalization import Relaxed

    from publisher.config import DkimConfig
    from publisher.deliver import DkimSigner
    from publisher.deliver.dkim_canon import relaxed_body, split_message

    signer = DkimSigner.from_config(DkimConfig(domain="example.org", selector="news", private_key_file=key))
    body = split_message(data)[1]
    rsa_key = signer.keys[0]
    pem = key.read_bytes()
    return {
        "ours": _per_call_us(lambda: signer.sign(data), n),
        "canon": _per_call_us(lambda: hashlib.sha256(relaxed_body(split_message(data)[1])).digest(), n),
        "rsa": _per_call_us(lambda: rsa_key.signature(data[:700]), n),
        "dkimpy_canon": _per_call_us(
            lambda: hashlib.sha256(Relaxed.canonicalize_body(dkim.rfc822_parse(data)[1])).digest(), n
        ),
        "dkimpy_body": _per_call_us(lambda: Relaxed.canonicalize_body(body), n),
        "dkimpy": _per_call_us(
            lambda: dkim.sign(data, b"news", b"example.org", pem, canonicalize=(b"relaxed", b"relaxed")), 30
        ),
        "threads1": _signing_rate(signer, data, 1, n),
        "threads2": _signing_rate(signer, data, 2, n),
    }


def _signing_rate(signer: DkimSigner, data: bytes, threads: int, n: int) -> float:
    """Messages signed per second by ``threads`` threads together."""
    workers = [threading.Thread(target=lambda: [signer.sign(data) for _ in range(n)]) for _ in range(threads)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return threads * n / (time.perf_counter() - t0)


def print_signed(signed: list[dict[str, float]], unsigned_rate: float, n: int) -> None:
    rate = statistics.median(r["rate"] for r in signed)
    cpu = statistics.median(r["cpu_us"] for r in signed)
    drain = statistics.median(n / r["drain_seconds"] for r in signed)
    ratio = rate / unsigned_rate
    rates = ", ".join(f"{r['rate']:,.0f}" for r in signed)
    print(
        f"DKIM-signed send:   {rates} msg/s; median {rate:,.0f} msg/s, "
        f"{cpu:,.0f} us CPU/msg (2048-bit RSA; the drain alone: {drain:,.0f} msg/s)"
    )
    verdict = "OK" if ratio >= 0.7 else "BELOW GOAL"
    print(f"ratio signed/unsigned: {ratio:.2f}  (goal >= 0.70, same rounds)  {verdict}")


def print_dkim_cost(us: dict[str, float]) -> None:
    print(
        f"DKIM (rsa-sha256, 2048-bit) per message: {us['ours']:,.0f} us (caps one CPU at "
        f"~{1e6 / us['ours']:,.0f} msg/s): canonicalise + hash body {us['canon']:,.0f} us, "
        f"RSA in OpenSSL {us['rsa']:,.0f} us"
    )
    print(
        f"  dkimpy for reference: its parse + relaxed body + hash {us['dkimpy_canon']:,.0f} us "
        f"(relaxed body alone {us['dkimpy_body']:,.0f} us); its whole signature {us['dkimpy']:,.0f} us"
    )
    print(
        f"  signing throughput: {us['threads1']:,.0f} msg/s in 1 thread, {us['threads2']:,.0f} msg/s "
        f"in 2 threads (OpenSSL releases the GIL)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=10_000)
    ap.add_argument("--big", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="skip the big memory run")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sink, port = start_sink()
    work = Path(tempfile.mkdtemp(prefix="bench-send-"))
    try:
        n = args.subscribers
        data = prepared_bytes(make_project(work / "probe", port))
        key = work / "dkim.pem"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        raw: list[tuple[float, float]] = []
        ours: list[dict[str, float]] = []
        signed: list[dict[str, float]] = []
        for i in range(args.rounds):  # alternate, so all three see the same machine load
            raw.append(raw_blast(port, data, n))
            ours.append(run_child(make_project(work / f"run{i}", port), n))
            signed.append(run_child(make_project(work / f"dkim{i}", port, dkim=key), n))
        raw_rate = statistics.median(r for r, _ in raw)
        raw_cpu = statistics.median(c for _, c in raw)
        our_rate = statistics.median(r["rate"] for r in ours)
        our_cpu = statistics.median(r["cpu_us"] for r in ours)
        ratio = our_rate / raw_rate
        print(
            f"message size {len(data):,} bytes, {CONCURRENCY} connections, sink in its own process, "
            f"{args.rounds} alternating rounds, load average {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} CPUs"
        )
        print(
            f"raw smtplib blast:  {', '.join(f'{r:,.0f}' for r, _ in raw)} msg/s; "
            f"median {raw_rate:,.0f} msg/s, "
            f"{raw_cpu:,.0f} us CPU/msg"
        )
        rates = ", ".join(f"{r['rate']:,.0f}" for r in ours)
        print(
            f"publisher send:     {rates} msg/s; median {our_rate:,.0f} msg/s, "
            f"{our_cpu:,.0f} us CPU/msg ({n:,} subscribers: plan + render + drain, SQLite ledger)"
        )
        print(
            f"ratio send/raw:     {ratio:.2f}  (goal >= 0.70)  {'OK' if ratio >= 0.7 else 'BELOW GOAL'};  "
            f"CPU per message raw/ours {raw_cpu / our_cpu:.2f}"
        )
        drain_rate = statistics.median(n / r["drain_seconds"] for r in ours)
        setup = statistics.median(r["seconds"] - r["drain_seconds"] for r in ours)
        print(f"  of which plan + render (once): {setup:.2f}s; the drain alone: {drain_rate:,.0f} msg/s")
        verdict = "OK" if our_rate >= 1500 else "BELOW GOAL"
        print(f"send rate:          {our_rate:,.0f} msg/s  (goal >= 1,500)  {verdict}")
        print_signed(signed, our_rate, n)
        small = max(r["send_peak_kb"] for r in ours) / 1024
        start = max(r["send_start_kb"] for r in ours) / 1024
        print(f"memory during the send at {n:,}: peak {small:,.0f} MB (from {start:,.0f} MB at its start)")
        if not args.quick:
            big = run_child(make_project(work / "big", port), args.big)
            peak, begin = big["send_peak_kb"] / 1024, big["send_start_kb"] / 1024
            growth = peak / small
            verdict = "OK" if growth <= 1.25 else "NOT FLAT"
            print(
                f"memory during the send at {args.big:,}: peak {peak:,.0f} MB (from {begin:,.0f} MB); "
                f"x{growth:.2f} for x{args.big // n} subscribers (goal: flat, <= x1.25)  {verdict}; "
                f"{big['rate']:,.0f} msg/s"
            )
        print_dkim_cost(dkim_cost(key, data))
    finally:
        sink.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--sink":
        run_sink()
    elif len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_send(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
