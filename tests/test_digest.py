"""Digests with a controlled clock: own local time, weekly day, nothing new, back-dated, DST, variants."""

from __future__ import annotations

import email
import email.policy
import functools
import re
import threading
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.config import DigestsConfig
from publisher.deliver import RetryPolicy
from publisher.errors import RenderError
from publisher.ops.digest import FREQUENCIES, boundary, current_period, run_digest
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


def lede_of(msg: EmailMessage) -> str:
    """The text part's opening line (after the greeting), unwrapped."""
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    return " ".join(text.split("\n\n")[1].split())


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
    # Tokyo's first digest: nothing arrived since they subscribed, so the latest, said so (issue 13.6)
    assert articles_in(got[0][1]) == ["first-story"]
    assert "The latest story from The Example Gazette, to start your daily digest." in lede_of(got[0][1])
    # New York's first: only what arrived after they subscribed, newest first; first-story was seen
    # before they joined (issue 13.6 changed this from ["second-story", "first-story", "late-report"])
    assert articles_in(got[1][1]) == ["second-story", "late-report"]
    assert "2 new stories from The Example Gazette since you subscribed." in lede_of(got[1][1])
    assert articles_in(got[2][1]) == ["second-story", "late-report"]  # the back-dated one is not lost
    assert "since your last daily digest" in lede_of(got[2][1])
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


def test_a_missing_digest_template_stops_the_round_before_it_is_recorded(scene) -> None:
    """Rendering (render.digest) comes before recording: a template error must not strand a plan."""
    store = scene.store
    scene.article("story")
    store.subscribers.add("a@example.org", now=START, frequency="daily", timezone="UTC")
    (scene.project / "templates" / "digest.txt").unlink()
    at = FakeClock(datetime(2026, 12, 1, 7, 5, tzinfo=UTC))
    with pytest.raises(RenderError) as caught:
        run_digest(scene.settings, store, "daily", clock=at)
    assert caught.value.message.endswith("digest.txt: no such template")
    assert caught.value.hint and "copy digest.html and digest.txt" in caught.value.hint
    assert store.ledger.sends() == []


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


# -- issue 13.6: a first digest is since they subscribed ---------------------------------------------


def test_first_digest_holds_only_what_arrived_since_they_subscribed(scene) -> None:
    store, s = scene.store, scene.settings
    old_day = datetime(2026, 8, 3, 7, 0, tzinfo=UTC)
    scene.article("old-story", date="2026-08-01T10:00:00+00:00")
    old = store.subscribers.add("old@example.org", now=old_day - timedelta(days=5), frequency="daily")
    assert run_digest(s, store, "daily", clock=FakeClock(old_day)).sent == 1  # months ago
    joined = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    new = store.subscribers.add("new@example.org", now=joined, frequency="daily", timezone="UTC")
    scene.article("fresh", date="2026-12-01T06:30:00+00:00")
    run_digest(s, store, "daily", clock=FakeClock(joined + timedelta(minutes=40)))  # fresh is seen
    store.subscribers.add("later@example.org", now=joined + timedelta(hours=6), frequency="daily")
    r = run_digest(s, store, "daily", clock=FakeClock(datetime(2026, 12, 2, 7, 0, tzinfo=UTC)))
    assert (r.mailed, r.variants, r.rendered) == (3, 3, 3)
    mail = {}
    for path in s.paths.outbox.rglob("*.eml"):
        msg = parse(path.read_bytes())
        mail.setdefault(msg["To"].addresses[0].addr_spec, []).append((articles_in(msg), lede_of(msg)))
    assert mail["new@example.org"] == [
        (["fresh"], "1 new story from The Example Gazette since you subscribed.")
    ]  # not the months-old story, and no "last digest" they never had
    assert mail["later@example.org"] == [  # nothing new since they joined: the latest, once
        (["fresh", "old-story"], "The latest 2 stories from The Example Gazette, to start your daily digest.")
    ]
    assert sorted(mail["old@example.org"])[0] == (
        ["fresh"],
        "1 new story from The Example Gazette since your last daily digest.",
    )
    scene.article("next", date="2026-12-02T10:00:00+00:00")
    r = run_digest(s, store, "daily", clock=FakeClock(datetime(2026, 12, 3, 7, 0, tzinfo=UTC)))
    assert (r.mailed, r.variants, r.rendered) == (3, 1, 1)  # from now on, everyone is "since your last"
    for sub in (old, new):
        assert DigestState(store).history(sub.id)[-1][3] == ("next",)  # type: ignore[arg-type]


# -- issue 13.7: a period that has started never un-starts ------------------------------------------

DST_ZONES = (
    "Europe/Paris",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "America/Santiago",
    "Pacific/Chatham",
)
DAILY = DigestsConfig.model_validate({})


@functools.cache
def transitions(tz: ZoneInfo, year: int = 2026) -> list[datetime]:
    """The instants (UTC) in ``year`` at which ``tz`` changes its offset (found to the minute)."""
    out = []
    t = datetime(year, 1, 1, tzinfo=UTC)
    while t.year == year:
        nxt = t + timedelta(hours=1)
        if t.astimezone(tz).utcoffset() != nxt.astimezone(tz).utcoffset():
            lo = t
            while nxt - lo > timedelta(minutes=1):
                mid = lo + (nxt - lo) / 2
                if mid.astimezone(tz).utcoffset() == t.astimezone(tz).utcoffset():
                    lo = mid
                else:
                    nxt = mid
            out.append(nxt)
        t += timedelta(hours=1)
    return out


def at_times(tz: ZoneInfo, change: datetime) -> list[str]:
    """Digest times around a change: inside its repeated or skipped hour, at its edges, and usual ones."""
    before, after = change - timedelta(minutes=1), change
    edges = sorted(
        [before.astimezone(tz) + timedelta(minutes=1), after.astimezone(tz)], key=lambda d: d.time()
    )
    lo, hi = (datetime.combine(date.min, e.time()) for e in edges)
    inside = lo + (hi - lo) / 2
    return sorted({f"{t:%H:%M}" for t in (lo, inside, hi)} | {"00:00", "07:00", "23:30"})


def periods_every(tz: ZoneInfo, cfg: DigestsConfig, start: datetime, end: datetime, step: timedelta):
    out = []
    t = start
    while t <= end:
        out.append((t, current_period(t, tz, "daily", cfg)))
        t += step
    return out


def dst_cases() -> list[tuple[str, datetime]]:
    cases = [(name, change) for name in DST_ZONES for change in transitions(ZoneInfo(name))]
    cases.append(("Asia/Kolkata", datetime(2026, 10, 25, 1, 0, tzinfo=UTC)))  # no DST: an ordinary day
    return cases


@pytest.mark.parametrize(("zone_name", "change"), dst_cases(), ids=lambda v: str(v)[:16])
def test_periods_are_monotonic_across_both_dst_changes(zone_name: str, change: datetime) -> None:
    """Sparse rounds (7, 59, 61 minutes) around each change: one start per day, labels never back."""
    tz = ZoneInfo(zone_name)
    for at in at_times(tz, change):
        cfg = DigestsConfig.model_validate({"daily": {"at": at}})
        for minutes in (7, 59, 61):
            seen = periods_every(
                tz, cfg, change - timedelta(days=3), change + timedelta(days=3), timedelta(minutes=minutes)
            )
            labels = [p.label for _t, p in seen]
            assert labels == sorted(labels), (at, minutes)  # never back to a previous day
            starts = {}
            for t, p in seen:
                assert p.starts <= t
                assert starts.setdefault(p.label, p.starts) == p.starts  # one start per period
            days = [date.fromisoformat(label) for label in starts]
            assert days == [days[0] + timedelta(days=n) for n in range(len(days))], (
                at,
                minutes,
            )  # none skipped
            assert all(
                b - a < timedelta(hours=26)
                for a, b in zip(list(starts.values()), list(starts.values())[1:], strict=False)
            )


def test_autumn_repeated_hour_stays_in_the_period_that_started() -> None:
    """Paris, 25 October 2026, at 02:30: the first 02:30 (00:30Z) starts the day; the second 02:00-02:30
    (01:00Z-01:30Z) reads earlier on the wall but is still that day's period."""
    paris = ZoneInfo("Europe/Paris")
    cfg = DigestsConfig.model_validate({"daily": {"at": "02:30"}})
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    for minutes in (0, 29, 30, 31, 45, 59, 60, 75, 89, 90, 120):
        p = current_period(first + timedelta(minutes=minutes), paris, "daily", cfg)
        assert (p.label, p.starts) == ("2026-10-25", first), minutes
    assert current_period(first - timedelta(seconds=1), paris, "daily", cfg).label == "2026-10-24"
    # weekly on that Sunday at 02:30, the same
    weekly = DigestsConfig.model_validate({"weekly": {"day": "sunday", "at": "02:30"}})
    assert current_period(first + timedelta(minutes=45), paris, "weekly", weekly).label == "2026-10-25"


def change_in(zone_name: str, season: str) -> datetime:
    """A zone's 2026 change of ``season`` (autumn: clocks go back); an ordinary day where there is none."""
    tz = ZoneInfo(zone_name)
    for change in transitions(tz):
        back = change.astimezone(tz).utcoffset() < (change - timedelta(minutes=1)).astimezone(tz).utcoffset()
        if back == (season == "autumn"):
            return change
    return datetime(2026, 10, 25, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone_name", "season", "minutes"),
    [(z, season, 59 if n % 2 else 61) for n, z in enumerate(DST_ZONES) for season in ("autumn", "spring")],
)
def test_rounds_send_each_day_once_across_dst(scene, zone_name: str, season: str, minutes: int) -> None:
    """Rounds every 59 or 61 minutes over three days around a change, with the digest time inside
    its repeated or skipped hour: each day's digest is sent exactly once, in order."""
    change = change_in(zone_name, season)
    at = at_times(ZoneInfo(zone_name), change)[1]  # the middle of the repeated or skipped hour
    s = scene.reconfigure(digests={"daily": {"at": at}})
    store = scene.store
    start = change - timedelta(days=1, hours=12)
    sub = store.subscribers.add(
        "a@example.org", now=start - timedelta(days=1), frequency="daily", timezone=zone_name
    )
    clock = FakeClock(start)
    sends: Counter[str] = Counter()
    while clock.now <= change + timedelta(days=1, hours=12):
        scene.article(f"news-{clock.now:%m%d%H%M}", date=f"{clock.now:%Y-%m-%dT%H:%M:00+00:00}")
        sends.update(run_digest(s, store, "daily", clock=clock, up_since=start).sends)
        clock.advance(minutes=minutes)
    days = [p for _f, p, _k, _a in DigestState(store).history(sub.id)]  # type: ignore[arg-type]
    first = date.fromisoformat(days[0])
    assert days == [(first + timedelta(days=n)).isoformat() for n in range(len(days))], at
    assert len(days) == 3 and set(sends.values()) == {1}
    assert sorted(k.split(":")[2] for k in sends) == days


@settings(max_examples=300, deadline=None)
@given(
    zone_name=st.sampled_from((*DST_ZONES, "Australia/Lord_Howe", "America/Havana", "Pacific/Apia")),
    at=st.times().map(lambda t: f"{t:%H:%M}"),
    near=st.integers(0, 7),  # which 2026 change to start close to (modulo how many the zone has)
    now=st.datetimes(datetime(2011, 1, 1), datetime(2027, 1, 1), timezones=st.just(UTC)),
    offset=st.timedeltas(timedelta(hours=-3), timedelta(hours=3)),
    later=st.one_of(
        st.timedeltas(timedelta(0), timedelta(hours=3)), st.timedeltas(timedelta(0), timedelta(days=9))
    ),
    frequency=st.sampled_from(FREQUENCIES),
)
def test_current_period_never_goes_back(
    zone_name: str, at: str, near: int, now: datetime, offset: timedelta, later: timedelta, frequency: str
) -> None:
    """Monotonic in ``now`` for any zone and time of day; half the instants are within 3 h of a DST change."""
    tz = ZoneInfo(zone_name)
    changes = transitions(tz)
    if changes and near % 2:
        now = changes[near % len(changes)] + offset
    cfg = DigestsConfig.model_validate({"daily": {"at": at}, "weekly": {"day": "sunday", "at": at}})
    p, q = (current_period(t, tz, frequency, cfg) for t in (now, now + later))
    assert p.starts <= now and q.starts <= now + later
    assert (p.label, p.starts) <= (q.label, q.starts)
