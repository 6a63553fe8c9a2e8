"""Digests with a controlled clock: own local time, weekly day, nothing new, back-dated, DST, variants."""

from __future__ import annotations

import email
import email.policy
import re
import threading
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest

from publisher.config import DigestsConfig
from publisher.deliver import RetryPolicy
from publisher.ops.digest import boundary, current_period, run_digest
from publisher.ops.queue import Stopped
from publisher.store import DigestState
from tests.fixtures_schedule import FakeClock

FAST = RetryPolicy(attempts=4, initial=0.02, maximum=0.05, give_up_after=5, jitter=0.0)
START = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)  # New York 08:00, Tokyo 22:00 (Monday)
URL = re.compile(r"https://news\.example\.org/([a-z0-9-]+)/")


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def articles_in(msg: EmailMessage) -> list[str]:
    """Slugs of the digest's own articles (headings), in order, from the text part."""
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    return re.findall(r"^Read it: https://news\.example\.org/([a-z0-9-]+)/$", text, flags=re.M)


@pytest.fixture
def smtp_scene(scene, smtp_server):
    scene.reconfigure(
        email={"transport": "smtp", "smtp": {"host": "127.0.0.1", "port": smtp_server.port, "timeout": 10}}
    )
    return scene, smtp_server


def run_ticks(
    scene, clock: FakeClock, until: datetime, *, every: timedelta, up_since: datetime, freq="daily"
):
    """The scheduler's digest check every ``every`` minutes from now until ``until``; reports by time."""
    reports = []
    while clock.now <= until:
        report = run_digest(scene.settings, scene.store, freq, clock=clock, up_since=up_since, retry=FAST)
        if report.sends or report.sent:
            reports.append((clock.now, report))
        clock.advance(seconds=every.total_seconds())
    return reports


# -- periods (pure) ------------------------------------------------------------------------------


def test_period_daily_and_weekly() -> None:
    cfg = DigestsConfig.model_validate({"daily": {"at": "07:00"}, "weekly": {"day": "monday", "at": "07:00"}})
    tokyo = ZoneInfo("Asia/Tokyo")
    p = current_period(datetime(2026, 11, 30, 21, 59, tzinfo=UTC), tokyo, "daily", cfg)  # 06:59 Tokyo
    assert p.label == "2026-11-30"
    p = current_period(datetime(2026, 11, 30, 22, 0, tzinfo=UTC), tokyo, "daily", cfg)  # 07:00 Tokyo
    assert (p.label, p.starts) == ("2026-12-01", datetime(2026, 11, 30, 22, 0, tzinfo=UTC))
    paris = ZoneInfo("Europe/Paris")
    # Monday 30 Nov 2026 06:59 Paris: still last week's period; 07:00: this week's
    assert (
        current_period(datetime(2026, 11, 30, 5, 59, tzinfo=UTC), paris, "weekly", cfg).label == "2026-11-23"
    )
    assert (
        current_period(datetime(2026, 11, 30, 6, 0, tzinfo=UTC), paris, "weekly", cfg).label == "2026-11-30"
    )
    assert (
        current_period(datetime(2026, 12, 6, 22, 0, tzinfo=UTC), paris, "weekly", cfg).label == "2026-11-30"
    )


def test_period_boundaries_across_dst() -> None:
    ny = ZoneInfo("America/New_York")
    # autumn: 01:30 happens at 05:30Z (EDT) and again at 06:30Z (EST); the period starts at the first
    assert boundary(date(2026, 11, 1), time(1, 30), ny) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    # spring: 02:30 never happens on 8 March 2026; the period starts when the clocks jump (07:00Z)
    assert boundary(date(2026, 3, 8), time(2, 30), ny) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    cfg = DigestsConfig.model_validate({"daily": {"at": "01:30"}})
    labels = {
        current_period(datetime(2026, 11, 1, 5, 0, tzinfo=UTC) + timedelta(minutes=m), ny, "daily", cfg).label
        for m in range(0, 180, 5)
    }
    assert labels == {"2026-10-31", "2026-11-01"}  # never a third, never back and forth to a new one


# -- acceptance: own local time, nothing new, back-dated -------------------------------------------


def test_each_zone_gets_its_digest_at_its_own_0700(smtp_scene) -> None:
    scene, server = smtp_scene
    store = scene.store
    clock = FakeClock(START)
    scene.article("first-story", date="2026-11-29T10:00:00+00:00")
    tokyo = store.subscribers.add("tokyo@example.org", now=START, frequency="daily", timezone="Asia/Tokyo")
    ny = store.subscribers.add("ny@example.org", now=START, frequency="daily", timezone="America/New_York")
    store.subscribers.add("instant@example.org", now=START)  # never gets a digest
    up = START
    reports = run_ticks(
        scene, clock, datetime(2026, 12, 1, 6, 0, tzinfo=UTC), every=timedelta(minutes=15), up_since=up
    )
    # Tokyo 07:00 on 1 December is 22:00Z on 30 November; New York's is still to come
    assert [(t, r.sends) for t, r in reports] == [
        (datetime(2026, 11, 30, 22, 0, tzinfo=UTC), ["digest:daily:2026-12-01:Asia/Tokyo"])
    ]
    # a new article, back-dated into Tokyo's period already sent (and before New York's)
    scene.article("late-report", date="2026-11-28T09:00:00+00:00")
    scene.article("second-story", date="2026-12-01T05:00:00+00:00")
    reports = run_ticks(
        scene, clock, datetime(2026, 12, 2, 23, 0, tzinfo=UTC), every=timedelta(minutes=15), up_since=up
    )
    assert [(t, r.sends) for t, r in reports] == [
        (datetime(2026, 12, 1, 12, 0, tzinfo=UTC), ["digest:daily:2026-12-01:America/New_York"]),
        (datetime(2026, 12, 1, 22, 0, tzinfo=UTC), ["digest:daily:2026-12-02:Asia/Tokyo"]),
        # 2 December: nothing new for anyone, so no mail at all (Tokyo's 3 December neither)
    ]
    got = [(r.rcpt, parse(r.data)) for r in server.received()]
    assert [rcpt for rcpt, _ in got] == ["tokyo@example.org", "ny@example.org", "tokyo@example.org"]
    assert articles_in(got[0][1]) == ["first-story"]
    assert articles_in(got[1][1]) == ["second-story", "first-story", "late-report"]  # newest first
    assert articles_in(got[2][1]) == ["second-story", "late-report"]  # the back-dated one is not lost
    assert got[0][1]["Date"].datetime == datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
    hist = DigestState(store).history(tokyo.id)  # type: ignore[arg-type]
    assert [(f, p) for f, p, _k, _a in hist] == [
        ("daily", "2026-12-01"),
        ("daily", "2026-12-02"),
        ("daily", "2026-12-03"),
    ]
    assert hist[-1][2] is None  # 3 December recorded as "nothing new": no send
    assert [p for _f, p, k, _a in DigestState(store).history(ny.id) if k] == ["2026-12-01"]  # type: ignore[arg-type]


def test_weekly_only_on_its_day(scene) -> None:
    store = scene.store
    clock = FakeClock(datetime(2026, 11, 24, 12, 0, tzinfo=UTC))  # a Tuesday
    scene.article("story-one", date="2026-11-20T10:00:00+00:00")
    store.subscribers.add("w@example.org", now=clock.now, frequency="weekly", timezone="Europe/Paris")
    daily_days = []
    until = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
    while clock.now <= until:
        if clock.now.hour == 12 and clock.now.minute == 0:
            scene.article(f"news-{clock.now:%m%d}", date=f"{clock.now:%Y-%m-%d}T11:00:00+00:00")
        report = run_digest(
            scene.settings, store, "weekly", clock=clock, up_since=datetime(2026, 11, 24, tzinfo=UTC)
        )
        if report.sends:
            daily_days.append((clock.now, report.sends))
        clock.advance(hours=2)
    # Mondays 30 Nov and 7 Dec, 07:00 Paris = 06:00Z; never on another day
    assert daily_days == [
        (datetime(2026, 11, 30, 6, 0, tzinfo=UTC), ["digest:weekly:2026-11-30:Europe/Paris"]),
        (datetime(2026, 12, 7, 6, 0, tzinfo=UTC), ["digest:weekly:2026-12-07:Europe/Paris"]),
    ]


def test_autumn_dst_0130_sends_exactly_once(scene) -> None:
    s = scene.reconfigure(digests={"daily": {"at": "01:30"}})
    store = scene.store
    start = datetime(2026, 10, 30, 12, 0, tzinfo=UTC)
    store.subscribers.add("ny@example.org", now=start, frequency="daily", timezone="America/New_York")
    sends: Counter[str] = Counter()
    for day in (31, 1, 2):
        month = 10 if day == 31 else 11
        scene.article(f"news-{day}", date=f"2026-{month:02d}-{day:02d}T00:00:00+00:00")  # news every day
        # 04:00Z-08:55Z every 5 minutes: both 01:30s of 1 November (05:30Z EDT, 06:30Z EST) and more
        clock = FakeClock(datetime(2026, month, day, 4, 0, tzinfo=UTC))
        for _ in range(60):
            report = run_digest(s, store, "daily", clock=clock, up_since=start)
            for key in report.sends:
                sends[key] += 1
            clock.advance(minutes=5)
    assert sends == {
        "digest:daily:2026-10-31:America/New_York": 1,
        "digest:daily:2026-11-01:America/New_York": 1,
        "digest:daily:2026-11-02:America/New_York": 1,
    }
    first = store.ledger.get_send("digest:daily:2026-11-01:America/New_York")
    assert first is not None and first.created_at == datetime(
        2026, 11, 1, 5, 30, tzinfo=UTC
    )  # the first 01:30
    assert store.ledger.counts(first.id).sent == 1


# -- the same period never twice ---------------------------------------------------------------


def test_a_second_trigger_for_the_same_period_sends_nothing(scene) -> None:
    store = scene.store
    scene.article("story")
    store.subscribers.add("a@example.org", now=START, frequency="daily", timezone="UTC")
    at = FakeClock(datetime(2026, 12, 1, 7, 0, tzinfo=UTC))
    first = run_digest(scene.settings, store, "daily", clock=at)
    assert (first.mailed, first.sent) == (1, 1)
    scene.article("another")  # news arrives, but this period is done
    for minutes in (0, 1, 59):
        again = run_digest(
            scene.settings, store, "daily", clock=FakeClock(at.now + timedelta(minutes=minutes))
        )
        assert (again.due, again.sent, again.sends) == (0, 0, [])
    nxt = run_digest(scene.settings, store, "daily", clock=FakeClock(at.now + timedelta(days=1)))
    assert nxt.sent == 1


def test_new_subscriber_waits_for_their_next_period_and_late_zones_wait(scene) -> None:
    store = scene.store
    scene.article("story")
    joined = datetime(2026, 12, 1, 7, 30, tzinfo=UTC)  # after today's 07:00 UTC
    store.subscribers.add("new@example.org", now=joined, frequency="daily", timezone="UTC")
    r = run_digest(scene.settings, store, "daily", clock=FakeClock(joined + timedelta(minutes=5)))
    assert (r.due, r.not_yet, r.sent) == (0, 1, 0)
    # the scheduler comes up at 09:00 after downtime: 07:00 is 2 h ago (> max_lateness 1 h)
    back = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    r = run_digest(scene.settings, store, "daily", clock=FakeClock(back), up_since=back)
    assert (r.due, r.sent, r.too_late) == (0, 0, ["UTC 2026-12-02"])
    r = run_digest(scene.settings, store, "daily", clock=FakeClock(back + timedelta(days=1)), up_since=back)
    assert r.sent == 1  # the next day, on time; its articles were not lost


# -- what each subscriber gets -------------------------------------------------------------------


def test_topics_filter_and_variants_are_shared(scene) -> None:
    store = scene.store
    scene.article("tram-news", tags=("trams",))
    scene.article("bread-news", tags=("baking",))
    scene.article("tram-baking", tags=("trams", "baking"))
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    created = now - timedelta(days=1)
    for n in range(3):
        store.subscribers.add(
            f"t{n}@example.org", now=created, frequency="daily", topics="trams", timezone="UTC"
        )
    store.subscribers.add(
        "t-london@example.org", now=created, frequency="daily", topics="Trams", timezone="Europe/London"
    )
    store.subscribers.add("all@example.org", now=created, frequency="daily", timezone="UTC")
    store.subscribers.add(
        "gardens@example.org", now=created, frequency="daily", topics="gardens", timezone="UTC"
    )
    r = run_digest(scene.settings, store, "daily", clock=FakeClock(now), up_since=now - timedelta(hours=6))
    assert (r.due, r.mailed, r.quiet) == (6, 5, 1)  # gardens: nothing matches, no mail
    assert r.variants == 3  # UTC trams, UTC all, London trams
    assert r.rendered == 2  # London's list is UTC's trams list: rendered once
    out = {}
    for path in scene.settings.paths.outbox.rglob("*.eml"):
        msg = parse(path.read_bytes())
        out[msg["To"].addresses[0].addr_spec] = articles_in(msg)
    assert set(out) == {
        "t0@example.org",
        "t1@example.org",
        "t2@example.org",
        "t-london@example.org",
        "all@example.org",
    }
    assert sorted(out["t0@example.org"]) == ["tram-baking", "tram-news"]
    assert out["t-london@example.org"] == out["t0@example.org"]
    assert sorted(out["all@example.org"]) == ["bread-news", "tram-baking", "tram-news"]


def test_digest_is_small_newest_first_capped_with_related_news(scene) -> None:
    s = scene.reconfigure(digests={"max_latest": 10, "related": 2})
    store = scene.store
    body = "Trams return to the city centre. " * 40 + "Unique tail text {n} that is never in a digest."
    topics = ["trams buses city transport", "bread bakery flour yeast", "gardens flowers soil water"]
    for n in range(24):
        words = topics[n % 3]
        scene.article(
            f"story-{n:02d}",
            title=f"Story {n}: {words}",
            date=f"2026-11-{n + 1:02d}T10:00:00+00:00",
            body=f"{words} " * 20 + body.format(n=n),
        )
    now = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    store.subscribers.add("a@example.org", now=now - timedelta(days=2), frequency="daily", timezone="UTC")
    r = run_digest(s, store, "daily", clock=FakeClock(now))
    assert r.sent == 1
    [path] = list(s.paths.outbox.rglob("*.eml"))
    msg = parse(path.read_bytes())
    assert articles_in(msg) == [f"story-{n:02d}" for n in range(23, 13, -1)]  # the 10 newest, newest first
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert len(html.encode()) < 40_000
    assert "Unique tail text" not in html  # summaries and links, never the full text
    assert "Related news" in html
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    blocks = re.findall(r"Related news:\n((?:[- ] .*\n)+)", text)
    related = [URL.findall(b) for b in blocks]
    assert len(related) == 10 and all(len(r) == 2 for r in related)
    related = [slug for r in related for slug in r]
    assert related and not set(related) & set(articles_in(msg))  # related = other (older) news
    assert msg["Subject"].startswith("The Example Gazette daily: Story 23") and "and 9 more" in msg["Subject"]
    assert msg["List-Unsubscribe"] and msg["Message-ID"]


def test_dry_run_writes_nothing(scene) -> None:
    store = scene.store
    scene.article("story")
    store.subscribers.add("a@example.org", now=START, frequency="daily", timezone="UTC")
    at = FakeClock(datetime(2026, 12, 1, 7, 5, tzinfo=UTC))
    r = run_digest(scene.settings, store, "daily", clock=at, dry_run=True)
    assert (r.due, r.mailed, r.variants, r.sent) == (1, 1, 1, 0)
    assert DigestState(store).arrivals() == {}
    assert store.ledger.sends() == []
    assert run_digest(scene.settings, store, "daily", clock=at).sent == 1


def test_stopped_drain_is_finished_by_the_next_round_without_doubles(smtp_scene) -> None:
    scene, server = smtp_scene
    store = scene.store
    scene.article("story")
    for n in range(30):
        store.subscribers.add(f"r{n:02d}@example.org", now=START, frequency="daily", timezone="UTC")
    server.set_faults(data_delay_ms=20)
    stop = threading.Event()

    def progress(_key):
        def tick(done: int, _total: int) -> None:
            if done >= 3:
                stop.set()

        return tick

    at = FakeClock(datetime(2026, 12, 1, 7, 0, tzinfo=UTC))
    with pytest.raises(Stopped):
        run_digest(scene.settings, store, "daily", clock=at, stop=stop, progress=progress, retry=FAST)
    first = server.count()
    assert 0 < first < 30
    at.advance(minutes=5)
    r = run_digest(scene.settings, store, "daily", clock=at, retry=FAST)
    assert (r.due, r.mailed) == (0, 0)  # nobody is planned twice...
    assert r.sent == 30 - first  # ...and the rest of the interrupted send goes out
    assert sorted(Counter(m.rcpt for m in server.received()).values()) == [1] * 30


def test_a_suppressed_address_gets_no_digest(scene) -> None:
    """Issue 14: whatever its row says, an address on the suppression list is never planned."""
    from publisher.ops.feedback import suppress

    store = scene.store
    scene.article("story")
    for name in ("kept", "gone"):
        store.subscribers.add(f"{name}@example.org", now=START, frequency="daily", timezone="UTC")
    suppress(store, scene.settings, "Gone@Example.org", reason="complained", now=START)
    report = run_digest(
        scene.settings, store, "daily", clock=FakeClock(datetime(2026, 12, 1, 7, 0, tzinfo=UTC))
    )
    assert (report.mailed, report.sent) == (1, 1)
    mail = [p.read_bytes() for p in scene.settings.paths.outbox.rglob("*.eml")]
    assert len(mail) == 1 and b"kept@example.org" in mail[0] and b"gone@example.org" not in mail[0]
