"""A daily digest round at 100,000 and at 1,000,000 subscribers: seconds and peak memory, side by side.

Set-up (not timed, in a child process of its own so its rows never count in
the round's memory): a fresh database (a temp SQLite file; a throwaway schema
on PostgreSQL when PUBLISHER_TEST_DATABASE_URL is set) with N confirmed daily
subscribers spread evenly over 24 time zones (one per UTC offset) and 3 topic
mixes (everything; politics + economy; crime + science), all with a digest mark
from yesterday; a 1,000-article archive from the Wikinews corpus
(shared/samples/news-corpus, category = tag), of which the first 980 arrived
before that mark and the newest 20 since. The database is ANALYZEd, as a live
one would be.

Timed, in a fresh child process on one core: ``run_digest(..., send=False)``
at an instant when every zone's period is due (the scheduler has been up all
day): observe arrivals, find who is due page by page, pick each subscriber's
articles, fit related news, render each distinct article list, and record the
round (sends, variants, N recipient rows, deliveries and marks; one
transaction per zone of a page); then build the slotted MIME message of every
(zone, list) variant. Sending is excluded. Peak memory is the round child's
``ru_maxrss`` from the kernel (``os.wait4``): the interpreter, the libraries,
the library of articles and the round, nothing of the set-up.

Goals (issue 17): the round < 30 s and peak RSS < 500 MB at 1,000,000, on
SQLite and on PostgreSQL; the 100,000 figures beside them show how it scales.

Usage: .venv/bin/python bench/digest.py [--subscribers 1000000] [--databases sqlite,postgresql]
       [--personalise] [--corpus PATH]
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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # the goal is for one core
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from publisher.config import Settings, load_settings  # noqa: E402
from publisher.content import slugify, summarize  # noqa: E402
from publisher.models import Article, Issue, Library  # noqa: E402
from publisher.ops.digest import run_digest  # noqa: E402
from publisher.ops.digest.messages import Renderers, prepared_messages  # noqa: E402
from publisher.render.email_mime import make_recipient  # noqa: E402
from publisher.store import DigestState, Store, open_store  # noqa: E402
from publisher.store.digests import digest_marks  # noqa: E402
from publisher.store.schema import subscribers  # noqa: E402

CORPUS = Path(os.environ.get("PUBLISHER_SAMPLES", "/work/shared/samples")) / "news-corpus" / "articles.jsonl"
GOAL_SECONDS = 30.0
GOAL_MB = 500.0
SMALL = 100_000
SECRET = "bench-secret-0123456789abcdef0123456789"
ZONES = (
    "Pacific/Pago_Pago", "Pacific/Honolulu", "America/Anchorage", "America/Los_Angeles",
    "America/Denver", "America/Chicago", "America/New_York", "America/Halifax",
    "America/Sao_Paulo", "Atlantic/South_Georgia", "Atlantic/Azores", "UTC",
    "Europe/Paris", "Europe/Athens", "Europe/Moscow", "Asia/Dubai",
    "Asia/Karachi", "Asia/Dhaka", "Asia/Bangkok", "Asia/Shanghai",
    "Asia/Tokyo", "Australia/Brisbane", "Pacific/Noumea", "Pacific/Auckland",
)  # fmt: skip
TOPIC_MIXES = ("", "politics and conflicts;economy and business", "crime and law;science and technology")
NEW_ARTICLES = 20
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
YESTERDAY = NOW - timedelta(days=1)
JOINED = NOW - timedelta(days=30)
INSERT_BATCH = 50_000
CPU_NOTE = "(this process only: with PostgreSQL the server's share is not in it)"
STEPS = (
    ("plan", "  plan (arrivals, pages, picks)"),
    ("render", "  render (related + templates)"),
    ("record", "  record (ledger rows)"),
    ("prepare", "  prepare (MIME per variant)"),
)


def load_articles(path: Path, n: int) -> list[Article]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:n]
    out = []
    last = "2004-11-15"
    for r in rows:
        last = r["date"] or last
        slug = slugify(f"{r['id']}-{r['title']}")[:80]
        out.append(
            Article(
                slug=slug,
                title=r["title"],
                date=datetime.fromisoformat(last).replace(tzinfo=UTC, hour=9),
                body=r["text"],
                source=path,
                issue_slug=slug,
                summary=summarize(r["text"]),
                tags=(slugify(r["category"]),),
                id=f"tag:news.example.org,{last}:/{slug}",
            )
        )
    return out


def library_of(articles: list[Article]) -> Library:
    return Library(
        tuple(
            Issue(a.slug, a.title, a.title, a.date, (a,), a.source)
            for a in sorted(articles, key=lambda a: a.slug)
        )
    )


def settings_for(tmp: Path, url: str) -> Settings:
    if not (tmp / "templates").exists():
        shutil.copytree(ROOT / "templates", tmp / "templates")
        (tmp / "issues").mkdir()
    config = tmp / "config.yaml"
    config.write_text(
        "site: {title: The Example Gazette, url: 'https://news.example.org', timezone: Europe/London}\n"
        f"database: {{url: {json.dumps(url)}}}\n"
        "email: {from: 'The Example Gazette <news@example.org>', transport: file}\n"
        "digests: {daily: {at: '07:00'}, max_latest: 10, related: 3}\n"
    )
    return load_settings(config, environ={"PUBLISHER_SECRET_KEY": SECRET})


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# -- the children ------------------------------------------------------------------------------------------


def subscriber_rows(n: int) -> Iterator[list[dict[str, object]]]:
    """The subscribers, INSERT_BATCH at a time (never all of them in memory)."""
    for first in range(0, n, INSERT_BATCH):
        yield [
            {
                "email": f"reader{i:07d}@example.org",
                "name": f"Reader {i}",
                "status": "confirmed",
                "frequency": "daily",
                "topics": TOPIC_MIXES[(i // len(ZONES)) % len(TOPIC_MIXES)],
                "timezone": ZONES[i % len(ZONES)],
                "created_at": JOINED,
                "updated_at": JOINED,
            }
            for i in range(first, min(n, first + INSERT_BATCH))
        ]


def child_setup(tmp: Path, url: str, n: int, corpus: Path, articles: int) -> dict[str, float]:
    settings = settings_for(tmp, url)
    old = load_articles(corpus, articles)[:-NEW_ARTICLES]
    store = open_store(settings.database.url)
    mark = max(DigestState(store).observe(((a.slug, a.id, a.date) for a in old), now=YESTERDAY).values())
    for rows in subscriber_rows(n):
        with store.write() as conn:
            conn.execute(sa.insert(subscribers), rows)
    marks = sa.select(
        subscribers.c.id, sa.literal(mark), sa.literal(YESTERDAY, digest_marks.c.updated_at.type)
    )
    with store.write() as conn:
        conn.execute(digest_marks.insert().from_select(["subscriber_id", "last_seq", "updated_at"], marks))
    with store.engine.connect() as conn:  # statistics, as a live database has them
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    store.close()
    return {"peak_mb": peak_mb()}


def personalise_all(settings: Settings, store: Store, prepared: dict[str, dict[int, object]]) -> int:
    """Personalise every planned message (not sent): the drain's per-message work, without the network."""
    state, secret, messages = DigestState(store), settings.secret_key(), 0
    for send in state.unfinished():
        vmap = state.variant_map(send.id)
        for row in store.ledger.pending(send.id, limit=10**9):
            msg = prepared[send.key][vmap[row.subscriber_id]]
            msg.personalise(make_recipient(settings, secret, send.key, row.email, row.name))  # type: ignore[attr-defined]
            messages += 1
    return messages


def child_round(tmp: Path, url: str, corpus: Path, articles: int, personalise: bool) -> dict:
    settings = settings_for(tmp, url)
    library = library_of(load_articles(corpus, articles))
    store = open_store(settings.database.url)
    state = DigestState(store)
    base_mb = peak_mb()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    report = run_digest(
        settings,
        store,
        "daily",
        clock=lambda: NOW,
        up_since=NOW - timedelta(days=2),
        library=library,
        send=False,
    )
    t1 = time.perf_counter()
    renderers = Renderers(settings, library)
    prepared = {s.key: prepared_messages(settings, state, renderers, s) for s in state.unfinished()}
    t2 = time.perf_counter()
    out = {
        "round": t2 - t0,
        "cpu": time.process_time() - cpu0,
        "prepare": t2 - t1,
        **report.seconds,
        "due": report.due,
        "mailed": report.mailed,
        "sends": len(report.sends),
        "variants": sum(len(p) for p in prepared.values()),
        "rendered": report.rendered,
        "base_mb": base_mb,
        "round_mb": peak_mb(),
    }
    with store.read() as conn:
        out["rows"] = conn.execute(sa.text("SELECT count(*) FROM deliveries")).scalar_one()
    if personalise:
        t3 = time.perf_counter()
        out["personalised"] = personalise_all(settings, store, prepared)  # type: ignore[arg-type]
        out["personalise"] = time.perf_counter() - t3
    store.close()
    return out


# -- the parent --------------------------------------------------------------------------------------------


def run_child(args: list[str]) -> tuple[dict, float]:
    """The child's JSON result and its peak RSS in MB, from the kernel (wait4)."""
    cmd = [sys.executable, __file__, *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"child failed: {' '.join(cmd)}")
    return json.loads(out.splitlines()[-1]), usage.ru_maxrss / 1024


@contextmanager
def database_urls(kind: str, tmp: Path) -> Iterator[Iterator[str]]:
    """Fresh databases of ``kind``: SQLite files in ``tmp``, or PostgreSQL schemas dropped afterwards."""
    if kind == "sqlite":
        yield (f"sqlite:///{tmp / f'bench-{n}.db'}" for n in range(1, 100))
        return
    base = os.environ["PUBLISHER_TEST_DATABASE_URL"]
    admin = sa.create_engine(base, poolclass=sa.pool.NullPool)
    made: list[str] = []

    def urls() -> Iterator[str]:
        while True:
            schema = f"bench_digest_{uuid.uuid4().hex[:10]}"
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


def measure(kind: str, sizes: list[int], args: argparse.Namespace, tmp: Path) -> list[tuple[dict, float]]:
    found = []
    with database_urls(kind, tmp) as urls:
        for n in sizes:
            url, where = next(urls), tmp / f"{kind}-{n}"
            where.mkdir()
            common = [str(where), url, str(args.corpus), str(args.articles)]
            t = time.perf_counter()
            run_child(["--child-setup", *common, str(n)])
            print(f"  {kind} {n:,}: set up in {time.perf_counter() - t:.0f}s (not timed)", flush=True)
            personalise = ["--personalise"] if args.personalise else []
            result, peak = run_child(["--child-round", *common, *personalise])
            assert result["due"] == n and result["mailed"] == n and result["rows"] == n, result
            found.append((result, peak))
            if url.startswith("sqlite"):
                shutil.rmtree(where, ignore_errors=True)
    return found


def table(kind: str, sizes: list[int], found: list[tuple[dict, float]]) -> None:
    head = "".join(f"{n:>14,}" for n in sizes)
    print(f"\n{kind}: {len(ZONES)} zones x {len(TOPIC_MIXES)} topic mixes, {NEW_ARTICLES} new articles")
    print(f"  {'subscribers':<38}{head}   goal (at the largest)")

    def line(label: str, values: list[str], goal: str = "") -> None:
        print(f"  {label:<38}" + "".join(f"{v:>14}" for v in values) + (f"   {goal}" if goal else ""))

    big_round, big_peak = found[-1][0]["round"], found[-1][1]
    verdict_s = "ok" if big_round < GOAL_SECONDS else "OVER"
    verdict_mb = "ok" if big_peak < GOAL_MB else "OVER"
    line("round: plan + render + record + MIME", [f"{r['round']:.1f} s" for r, _ in found],
         f"< {GOAL_SECONDS:.0f} s: {verdict_s}")  # fmt: skip
    line("  CPU of the round's process", [f"{r['cpu']:.1f} s" for r, _ in found], CPU_NOTE)
    for step, label in STEPS:
        line(label, [f"{r.get(step, 0.0):.1f} s" for r, _ in found])
    line(
        "peak RSS of the round's process",
        [f"{p:.0f} MB" for _, p in found],
        f"< {GOAL_MB:.0f} MB: {verdict_mb}",
    )
    line("  of which before the round", [f"{r['base_mb']:.0f} MB" for r, _ in found])
    line(
        "sends / variants / lists rendered",
        [f"{r['sends']}/{r['variants']}/{r['rendered']}" for r, _ in found],
    )
    if "personalise" in found[0][0]:
        line("personalise every message (not counted)", [f"{r['personalise']:.1f} s" for r, _ in found])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subscribers", type=int, default=1_000_000, help="the largest size (100,000 runs too)")
    ap.add_argument("--articles", type=int, default=1_000)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument(
        "--databases", default="sqlite,postgresql", help="postgresql needs PUBLISHER_TEST_DATABASE_URL"
    )
    ap.add_argument("--personalise", action="store_true", help="also personalise every message (not counted)")
    ap.add_argument("--child-setup", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--child-round", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_setup:
        where, url, corpus, articles, n = args.child_setup
        print(json.dumps(child_setup(Path(where), url, int(n), Path(corpus), int(articles))))
        return
    if args.child_round:
        where, url, corpus, articles = args.child_round
        print(json.dumps(child_round(Path(where), url, Path(corpus), int(articles), args.personalise)))
        return
    sizes = sorted({min(SMALL, args.subscribers), args.subscribers})
    kinds = [
        k for k in args.databases.split(",") if k == "sqlite" or os.environ.get("PUBLISHER_TEST_DATABASE_URL")
    ]
    skipped = set(args.databases.split(",")) - set(kinds)
    if skipped:
        print(f"skipped (PUBLISHER_TEST_DATABASE_URL is not set): {', '.join(sorted(skipped))}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-digest-"))
    try:
        results = {kind: measure(kind, sizes, args, tmp) for kind in kinds}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for kind, found in results.items():
        table(kind, sizes, found)


if __name__ == "__main__":
    main()
