"""Digest rounds in pages (issue 17): a round never holds the whole list, and pages change nothing.

A round reads its candidates a page at a time and records each page in one
transaction. These tests make pages of a few subscribers (``store.digests.PAGE``)
so that one round spans many pages, zones, periods and variants, and check
the outcome subscriber by subscriber; and that a round which fails between
pages (a real database error, raised by a trigger) is finished by the next one
with nobody recorded or mailed twice.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from publisher.deliver import RetryPolicy
from publisher.ops.digest import run_digest
from publisher.ops.feedback import suppress
from publisher.store import DigestState
from publisher.store import digests as digest_store
from publisher.store.digests import Contents, Lede, VariantPlan, ZoneShare
from tests.fixtures_schedule import FakeClock

FAST = RetryPolicy(attempts=4, initial=0.02, maximum=0.05, give_up_after=5, jitter=0.0)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
JOINED = NOW - timedelta(days=10)
UP = NOW - timedelta(days=1)  # the scheduler has been up all day: every zone's period may be sent
# At NOW (daily at 07:00): UTC, London and Tokyo are in the period of 1 December, Los Angeles
# (04:00 there) still in that of 30 November: two period labels in one round.
ZONES = ("America/Los_Angeles", "Asia/Tokyo", "Europe/London", "UTC")
LABEL = {"America/Los_Angeles": "2026-11-30", "Asia/Tokyo": "2026-12-01", "Europe/London": "2026-12-01"}
# newest first: what each topic mix gets (tram-baking is the newest, bread-news the oldest)
MIXES = {
    "": ("tram-baking", "tram-news", "bread-news"),
    "trams": ("tram-baking", "tram-news"),
    "baking": ("tram-baking", "bread-news"),
    "gardens": (),  # nothing matches: due, recorded, no mail
}


@pytest.fixture
def smtp_scene(scene, smtp_server):
    scene.reconfigure(
        email={"transport": "smtp", "smtp": {"host": "127.0.0.1", "port": smtp_server.port, "timeout": 10}}
    )
    return scene, smtp_server


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(digest_store, "PAGE", 4)
    return 4


def articles(scene) -> None:
    scene.article("bread-news", tags=("baking",), date="2026-11-28T09:00:00+00:00")
    scene.article("tram-news", tags=("trams",), date="2026-11-29T09:00:00+00:00")
    scene.article("tram-baking", tags=("trams", "baking"), date="2026-11-30T09:00:00+00:00")


def test_a_round_in_pages_of_four_records_each_subscriber_exactly_as_planned(scene, small_pages) -> None:
    store = scene.store
    articles(scene)
    expected: dict[int, tuple[str, str, tuple[str, ...]]] = {}  # id -> (zone, label, articles)
    n = 0
    for copy in range(2):
        for zone in ZONES:  # interleaved by id: every page holds several zones and mixes
            for topics, got in MIXES.items():
                sub = store.subscribers.add(
                    f"r{n:02d}-{copy}@example.org",
                    now=JOINED,
                    frequency="daily",
                    topics=topics,
                    timezone=zone,
                )
                expected[sub.id] = (zone, LABEL.get(zone, "2026-12-01"), got)  # type: ignore[index]
                n += 1
    late = store.subscribers.add("late@example.org", now=NOW - timedelta(hours=1), frequency="daily")
    store.subscribers.add("gone@example.org", now=JOINED, frequency="daily")
    suppress(store, scene.settings, "gone@example.org", reason="complained", now=JOINED)

    r = run_digest(scene.settings, store, "daily", clock=FakeClock(NOW), up_since=UP)

    with_news = sum(1 for _z, _p, got in expected.values() if got)
    assert (r.due, r.mailed, r.quiet, r.not_yet) == (len(expected), with_news, len(expected) - with_news, 1)
    assert (r.zones, r.variants, r.rendered) == (4, 12, 3)  # 4 zones x 3 lists with news, 3 distinct lists
    keys = [f"digest:daily:{LABEL.get(z, '2026-12-01')}:{z}" for z in ZONES]
    assert r.sends == keys  # one send per zone, however many pages it took, in zone order
    state = DigestState(store)
    for sub_id, (zone, label, got) in expected.items():
        key = f"digest:daily:{label}:{zone}"
        assert state.history(sub_id) == [("daily", label, key if got else None, got)], sub_id
    assert state.history(late.id) == []  # type: ignore[arg-type]
    for key in keys:
        send = store.ledger.get_send(key)
        assert send is not None
        variants = list(state.variants(send.id).values())  # one per article list, not one per page
        assert sorted(v.articles for v in variants) == sorted(got for got in MIXES.values() if got)
        assert {v.lede for v in variants} == {Lede.SUBSCRIBED}  # their first digest
        counts = store.ledger.counts(send.id)
        assert counts.planned == counts.sent == 6  # planned grows page by page, and matches the rows
    mail = [p.read_bytes() for p in scene.settings.paths.outbox.rglob("*.eml")]
    assert len(mail) == with_news and not any(b"gone@example.org" in m for m in mail)
    again = run_digest(scene.settings, store, "daily", clock=FakeClock(NOW), up_since=UP)
    assert (again.due, again.sends, again.sent) == (0, [], 0)


def _boom(store, subscriber_id: int) -> None:
    """A trigger that refuses the recipient row of one subscriber: the round fails mid-way, for real."""
    with store.write() as conn:
        if store.dialect == "postgresql":
            conn.exec_driver_sql(
                "CREATE FUNCTION digest_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.subscriber_id = {subscriber_id} THEN RAISE EXCEPTION 'boom'; END IF; "
                "RETURN NEW; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER digest_boom BEFORE INSERT ON digest_recipients "
                "FOR EACH ROW EXECUTE FUNCTION digest_boom()"
            )
        else:
            conn.exec_driver_sql(
                "CREATE TRIGGER digest_boom BEFORE INSERT ON digest_recipients "
                f"WHEN NEW.subscriber_id = {subscriber_id} BEGIN SELECT RAISE(ABORT, 'boom'); END"
            )


def _no_boom(store) -> None:
    with store.write() as conn:
        on = " ON digest_recipients" if store.dialect == "postgresql" else ""
        conn.exec_driver_sql(f"DROP TRIGGER digest_boom{on}")


def test_a_round_that_fails_between_pages_is_finished_by_the_next_without_doubles(
    smtp_scene, small_pages
) -> None:
    """Pages 1 and 2 are recorded, page 3 fails: the next round records the rest and mails everyone once."""
    scene, server = smtp_scene
    store = scene.store
    articles(scene)
    subs = [
        store.subscribers.add(
            f"r{n:02d}@example.org", now=JOINED, frequency="daily", timezone=("UTC", "Asia/Tokyo")[n % 2]
        )
        for n in range(20)
    ]
    _boom(store, subs[10].id)  # type: ignore[arg-type]
    clock = FakeClock(NOW)
    with pytest.raises(sa.exc.DBAPIError, match="boom"):
        run_digest(scene.settings, store, "daily", clock=clock, up_since=UP, retry=FAST)
    state = DigestState(store)
    recorded = [s.email for s in subs if state.history(s.id)]  # type: ignore[arg-type]
    assert recorded == [s.email for s in subs[:8]]  # whole pages only; nothing of the page that failed
    assert server.count() == 0  # recorded before any mail goes out, and the round stopped there
    _no_boom(store)

    clock.advance(minutes=5)
    r = run_digest(scene.settings, store, "daily", clock=clock, up_since=UP, retry=FAST)
    assert (r.due, r.mailed) == (12, 12)  # the 12 not yet recorded, and nobody else
    assert r.sent == 20  # the earlier pages' rows are drained too
    assert Counter(m.rcpt for m in server.received()) == {s.email: 1 for s in subs}
    for s in subs:
        assert [(f, p) for f, p, _k, _a in state.history(s.id)] == [("daily", "2026-12-01")]  # type: ignore[arg-type]
    clock.advance(minutes=5)
    r = run_digest(scene.settings, store, "daily", clock=clock, up_since=UP, retry=FAST)
    assert (r.due, r.sent) == (0, 0)


def test_candidate_pages_are_bounded_ordered_and_survive_recording_in_between(scene) -> None:
    store = scene.store
    due = [
        store.subscribers.add(
            f"d{n}@example.org", now=JOINED, frequency="daily", timezone=("UTC", "Asia/Tokyo")[n % 2]
        )
        for n in range(8)
    ]
    store.subscribers.add("other-zone@example.org", now=JOINED, frequency="daily", timezone="Europe/Paris")
    store.subscribers.add("weekly@example.org", now=JOINED, frequency="weekly", timezone="UTC")
    store.subscribers.add("instant@example.org", now=JOINED, timezone="UTC")
    state = DigestState(store)
    pages = state.candidate_pages("daily", "2026-12-01", ["UTC", "Asia/Tokyo"], size=3)
    first = next(pages)
    # record the first page's subscribers while the round is between pages, as a round does
    share = ZoneShare(
        "digest:daily:2026-12-01:UTC",
        "2026-12-01",
        [VariantPlan(Contents(("story",)), tuple(c.id for c in first))],
        [],
        {"frequency": "daily", "period": "2026-12-01", "zone": "UTC"},
    )
    [rec] = state.record("daily", [share], now=NOW, to_seq=1)
    assert (rec.mailed, rec.variants) == (3, 1)
    rest = list(pages)
    assert [len(p) for p in [first, *rest]] == [3, 3, 2]
    ids = [c.id for p in [first, *rest] for c in p]
    assert ids == sorted(ids) == sorted(s.id for s in due)  # type: ignore[type-var]
    # afterwards, the recorded ones are no longer candidates for the period; a page of 50 holds the rest
    again = [
        c.id for p in state.candidate_pages("daily", "2026-12-01", ["UTC", "Asia/Tokyo"], size=50) for c in p
    ]
    assert again == ids[3:]
    # recording the same page again writes nothing: the recipient row is unique per period
    [rec] = state.record("daily", [share], now=NOW, to_seq=1)
    assert (rec.mailed, rec.quiet) == (0, 0)
    send = store.ledger.get_send("digest:daily:2026-12-01:UTC")
    assert send is not None and store.ledger.counts(send.id).planned == 3
