"""One daily digest round for 100,000 subscribers: planning and rendering time, variants, peak memory.

Set-up (not timed): a temp SQLite database with 100,000 confirmed daily
subscribers spread evenly over 24 time zones (one per UTC offset) and 3 topic
mixes (everything; politics + economy; crime + science), all with a digest mark
from yesterday; a 1,000-article archive from the Wikinews corpus
(shared/samples/news-corpus, category = tag), of which the first 980 arrived
before that mark and the newest 20 since.

Timed, on one core: ``run_digest(..., send=False)`` at an instant when every
zone's period is due (the scheduler has been up all day): observe arrivals,
find who is due, pick each subscriber's articles, fit related news, render each
distinct article list, and record the round (sends, variants, 100,000
recipient rows, deliveries and marks in one transaction per zone); then build
the slotted MIME message of every (zone, list) variant. Sending is excluded;
the time to personalise all 100,000 messages (no network) is shown apart.

Usage: .venv/bin/python bench/digest.py [--subscribers N] [--corpus PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # the goal is for one core
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from publisher.config import load_settings  # noqa: E402
from publisher.content import slugify, summarize  # noqa: E402
from publisher.models import Article, Issue, Library  # noqa: E402
from publisher.ops.digest import run_digest  # noqa: E402
from publisher.ops.digest.messages import Renderers, prepared_messages  # noqa: E402
from publisher.render.email_mime import make_recipient  # noqa: E402
from publisher.store import DigestState, open_store  # noqa: E402
from publisher.store.digests import digest_marks  # noqa: E402
from publisher.store.schema import subscribers  # noqa: E402

CORPUS = Path(os.environ.get("PUBLISHER_SAMPLES", "/work/shared/samples")) / "news-corpus" / "articles.jsonl"
GOAL_SECONDS = 30.0
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


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subscribers", type=int, default=100_000)
    ap.add_argument("--articles", type=int, default=1_000)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-digest-"))
    try:
        shutil.copytree(ROOT / "templates", tmp / "templates")
        (tmp / "issues").mkdir()
        (tmp / "config.yaml").write_text(
            "site: {title: The Example Gazette, url: 'https://news.example.org', timezone: Europe/London}\n"
            f"database: {{url: 'sqlite:///{tmp / 'bench.db'}'}}\n"
            "email: {from: 'The Example Gazette <news@example.org>', transport: file}\n"
            "digests: {daily: {at: '07:00'}, max_latest: 10, related: 3}\n"
        )
        settings = load_settings(
            tmp / "config.yaml", environ={"PUBLISHER_SECRET_KEY": "bench-secret-0123456789abcdef0123456789"}
        )
        articles = load_articles(args.corpus, args.articles)
        old, new = articles[:-NEW_ARTICLES], articles
        store = open_store(settings.database.url)
        state = DigestState(store)
        yesterday = NOW - timedelta(days=1)
        mark = max(state.observe(((a.slug, a.id, a.date) for a in old), now=yesterday).values())
        joined = NOW - timedelta(days=30)
        rows = [
            {
                "email": f"reader{i:06d}@example.org",
                "name": f"Reader {i}",
                "status": "confirmed",
                "frequency": "daily",
                "topics": TOPIC_MIXES[(i // len(ZONES)) % len(TOPIC_MIXES)],
                "timezone": ZONES[i % len(ZONES)],
                "created_at": joined,
                "updated_at": joined,
            }
            for i in range(args.subscribers)
        ]
        with store.write() as conn:
            conn.execute(insert(subscribers), rows)
            ids = [r.id for r in conn.execute(subscribers.select().with_only_columns(subscribers.c.id))]
            conn.execute(
                insert(digest_marks),
                [{"subscriber_id": i, "last_seq": mark, "updated_at": yesterday} for i in ids],
            )
        library = library_of(new)
        base_mb = peak_mb()

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
        round_seconds = t2 - t0
        variants = sum(len(p) for p in prepared.values())

        secret = settings.secret_key()
        messages = 0
        t3 = time.perf_counter()
        for send in state.unfinished():
            vmap = state.variant_map(send.id)
            for row in store.ledger.pending(send.id, limit=10**9):
                msg = prepared[send.key][vmap[row.subscriber_id]]
                msg.personalise(make_recipient(settings, secret, send.key, row.email, row.name))
                messages += 1
        t4 = time.perf_counter()
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    s = report.seconds
    print(
        f"subscribers {args.subscribers:,} in {len(ZONES)} zones x {len(TOPIC_MIXES)} topic mixes; "
        f"archive {len(new):,} articles ({NEW_ARTICLES} new since the last digest)"
    )
    print(
        f"due {report.due:,}: {report.mailed:,} with news, {report.quiet:,} with nothing new; "
        f"{len(report.sends)} sends (one per zone)"
    )
    print(
        f"variants {variants} ((zone, article list) pairs), rendered {report.rendered} distinct article lists"
    )
    print(
        f"  plan {s['plan']:.2f}s (arrivals, who is due, picks)  render {s['render']:.2f}s (related +"
        f" templates + inlining)  record {s['record']:.2f}s (ledger rows)  prepare {t2 - t1:.2f}s (MIME)"
    )
    print(
        f"peak memory {peak_mb():.0f} MB RSS (before the round {base_mb:.0f} MB)"
        f"; personalising all {messages:,} messages (not sent, not counted): {t4 - t3:.1f}s"
    )
    verdict = "ok" if round_seconds < GOAL_SECONDS else "OVER"
    goal = f"goal < {GOAL_SECONDS:.0f}s"
    print(f"round (planning + rendering, sending excluded): {round_seconds:.1f}s; {goal}: {verdict}")


if __name__ == "__main__":
    main()
