"""Queued issues: refusals, re-queue, unqueue, front matter send_at, and sending what is due."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from publisher.errors import ContentError, NotFoundError
from publisher.ops.queue import (
    QueueError,
    Stopped,
    list_queue,
    load_tolerant,
    parse_when,
    queue_issue,
    reconcile_front_matter,
    send_due,
    stop_check,
    unqueue_issue,
)
from publisher.ops.send import issue_key, send_issue
from publisher.store import Queue
from tests.fixtures_schedule import FakeClock

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def outbox_count(scene, slug: str) -> int:
    folder = scene.settings.paths.outbox
    return sum(1 for p in folder.rglob("*.eml") if slug in str(p.parent))


# -- refusals -------------------------------------------------------------------------------------


def test_queue_refuses_unknown_issue(scene) -> None:
    with pytest.raises(NotFoundError, match="no issue 'nope'"):
        queue_issue(scene.settings, scene.store, "nope", T0 + timedelta(hours=1), now=T0)


def test_queue_refuses_a_draft(scene) -> None:
    scene.article("draft-one", extra="draft: true")
    with pytest.raises(QueueError, match="draft-one is a draft") as exc:
        queue_issue(scene.settings, scene.store, "draft-one", T0 + timedelta(hours=1), now=T0)
    assert "draft: true" in (exc.value.hint or "")
    assert list_queue(scene.store) == []


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(minutes=-5)])
def test_queue_refuses_a_time_not_in_the_future(scene, offset) -> None:
    scene.article("news")
    with pytest.raises(QueueError, match="is in the past") as exc:
        queue_issue(scene.settings, scene.store, "news", T0 + offset, now=T0)
    assert "publisher send news" in (exc.value.hint or "")


def test_queue_refuses_an_issue_already_sent(scene) -> None:
    scene.article("news")
    scene.store.subscribers.add("a@example.org", now=T0)
    send_issue(scene.settings, scene.store, "news", clock=lambda: T0)
    with pytest.raises(QueueError, match="news was already sent"):
        queue_issue(scene.settings, scene.store, "news", T0 + timedelta(hours=1), now=T0)


def test_queue_refuses_an_issue_with_content_problems(scene) -> None:
    scene.article("news", date="2026-13-01")
    with pytest.raises(ContentError):
        queue_issue(scene.settings, scene.store, "news", T0 + timedelta(hours=1), now=T0)


# -- queue, re-queue, unqueue --------------------------------------------------------------------


def test_queue_then_requeue_moves_the_time(scene) -> None:
    scene.article("news")
    first = queue_issue(scene.settings, scene.store, "news", T0 + timedelta(hours=1), now=T0)
    assert (first.slug, first.status, first.send_at) == ("news", "queued", T0 + timedelta(hours=1))
    assert first.send_at.tzinfo is not None
    again = queue_issue(scene.settings, scene.store, "news", T0 + timedelta(hours=3), now=T0)
    assert again.send_at == T0 + timedelta(hours=3)
    assert again.created_at == first.created_at
    assert [q.slug for q in list_queue(scene.store)] == ["news"]
    # the same call twice is harmless
    queue_issue(scene.settings, scene.store, "news", T0 + timedelta(hours=3), now=T0)
    assert len(list_queue(scene.store)) == 1


def test_naive_time_is_in_the_site_time_zone(scene) -> None:
    scene.article("news")
    tz = scene.settings.site.tz  # Europe/London in the repo's config
    row = queue_issue(scene.settings, scene.store, "news", datetime(2026, 12, 1, 8, 0), now=T0)
    assert row.send_at == datetime(2026, 12, 1, 8, 0, tzinfo=tz).astimezone(UTC)


def test_unqueue(scene) -> None:
    scene.article("news")
    queue_issue(scene.settings, scene.store, "news", T0 + timedelta(hours=1), now=T0)
    assert unqueue_issue(scene.settings, scene.store, "news", now=T0) is True
    assert list_queue(scene.store) == []
    assert unqueue_issue(scene.settings, scene.store, "news", now=T0) is False
    assert unqueue_issue(scene.settings, scene.store, "never-queued", now=T0) is False


def test_parse_when_forms() -> None:
    tz = ZoneInfo("Europe/Paris")
    assert parse_when("2026-12-01 08:00", tz) == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    assert parse_when("2026-12-01T08:00+01:00", tz) == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    assert parse_when("2026-12-01T07:00Z", tz) == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    with pytest.raises(QueueError, match="not a time"):
        parse_when("tomorrow", tz)
    with pytest.raises(QueueError, match="does not exist in Europe/Paris"):
        parse_when("2026-03-29 02:30", tz)


# -- front matter send_at ------------------------------------------------------------------------


def test_front_matter_send_at_queues_and_follows_edits(scene) -> None:
    s = scene.settings
    scene.article("news", extra="send_at: 2026-12-01T08:00:00+00:00")
    lib, broken = load_tolerant(s)
    changes = reconcile_front_matter(s, scene.store, lib, broken, now=T0)
    assert changes and "queued news" in changes[0]
    row = Queue(scene.store).get("news")
    assert row is not None and row.source == "front_matter"
    assert row.send_at == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    # nothing changed: nothing to do
    assert reconcile_front_matter(s, scene.store, lib, broken, now=T0) == []
    # the editor unqueues: reconciling again does not put it back
    assert unqueue_issue(s, scene.store, "news", now=T0)
    assert reconcile_front_matter(s, scene.store, *load_tolerant(s), now=T0) == []
    assert list_queue(scene.store) == []
    # editing send_at re-queues at the new time
    scene.article("news", extra="send_at: 2026-12-02T08:00:00+00:00")
    assert reconcile_front_matter(s, scene.store, *load_tolerant(s), now=T0)
    assert [q.send_at.day for q in list_queue(scene.store)] == [2]
    # removing it cancels
    scene.article("news")
    changes = reconcile_front_matter(s, scene.store, *load_tolerant(s), now=T0)
    assert changes == ["unqueued news: send_at was removed (or the issue deleted)"]
    assert list_queue(scene.store) == []


def test_a_broken_issue_keeps_its_queue_row_until_fixed(scene) -> None:
    s = scene.settings
    scene.article("news", extra="send_at: 2026-12-01T08:00:00+00:00")
    scene.article("other")
    reconcile_front_matter(s, scene.store, *load_tolerant(s), now=T0)
    scene.article("news", date="not-a-date", extra="send_at: 2026-12-01T08:00:00+00:00")
    lib, broken = load_tolerant(s)
    assert "news" in broken and [i.slug for i in lib.issues] == ["other"]
    assert reconcile_front_matter(s, scene.store, lib, broken, now=T0) == []
    assert [q.slug for q in list_queue(scene.store)] == ["news"]


def test_front_matter_draft_is_not_queued(scene) -> None:
    s = scene.settings
    scene.article("news", extra="send_at: 2026-12-01T08:00:00+00:00\ndraft: true")
    assert reconcile_front_matter(s, scene.store, *load_tolerant(s), now=T0) == []
    assert list_queue(scene.store) == []


# -- sending what is due -------------------------------------------------------------------------


def test_due_issue_is_sent_once_to_instant_subscribers(scene) -> None:
    s, store = scene.settings, scene.store
    scene.article("news")
    for n in range(3):
        store.subscribers.add(f"r{n}@example.org", now=T0)
    store.subscribers.add("daily@example.org", now=T0, frequency="daily")
    queue_issue(s, store, "news", T0 + timedelta(minutes=10), now=T0)
    clock = FakeClock(T0 + timedelta(minutes=5))
    assert send_due(s, store, clock=clock, up_since=T0) == []  # not yet
    clock.set(T0 + timedelta(minutes=10))
    events = send_due(s, store, clock=clock, up_since=T0)
    assert [(e.slug, e.action) for e in events] == [("news", "sent")]
    assert outbox_count(scene, "news") == 3  # instant subscribers only
    assert Queue(store).get("news").status == "sent"  # type: ignore[union-attr]
    assert send_due(s, store, clock=clock, up_since=T0) == []
    assert outbox_count(scene, "news") == 3


@pytest.mark.parametrize(("lateness", "sent"), [("1h", False), ("3h", True)])
def test_issue_due_during_an_outage(scene, lateness, sent) -> None:
    s = scene.reconfigure(schedule={"max_lateness": lateness})
    store = scene.store
    scene.article("news")
    store.subscribers.add("a@example.org", now=T0)
    queue_issue(s, store, "news", T0 + timedelta(minutes=1), now=T0)
    back = T0 + timedelta(hours=2, minutes=1)  # down from T0 to two hours after the send time
    events = send_due(s, store, clock=FakeClock(back), up_since=back)
    row = Queue(store).get("news")
    assert row is not None
    if sent:
        assert [e.action for e in events] == ["sent"] and row.status == "sent"
        assert outbox_count(scene, "news") == 1
    else:
        assert [e.action for e in events] == ["missed"] and row.status == "missed"
        assert "2 h late is over schedule.max_lateness (1 h)" in row.note
        assert store.ledger.get_send(issue_key("news")) is None
        assert outbox_count(scene, "news") == 0
        # reported once, then left for the editor (not retried, not re-reported)
        assert send_due(s, store, clock=FakeClock(back), up_since=back) == []
        assert [q.status for q in list_queue(store)] == ["missed"]
    # either way, a later run never sends it (again)
    send_due(s, store, clock=FakeClock(back + timedelta(hours=1)), up_since=back)
    assert outbox_count(scene, "news") == (1 if sent else 0)


@pytest.mark.parametrize(("ago", "action"), [(timedelta(minutes=10), "sent"), (timedelta(hours=2), "missed")])
def test_front_matter_time_already_past_when_written(scene, ago, action) -> None:
    """Written while the scheduler is up with a send_at already past: within max_lateness, sent."""
    s, store = scene.settings, scene.store
    now = T0 + timedelta(hours=5)
    scene.article("news", extra=f"send_at: {(now - ago).isoformat()}")
    store.subscribers.add("a@example.org", now=T0)
    reconcile_front_matter(s, store, *load_tolerant(s), now=now)
    events = send_due(s, store, clock=FakeClock(now), up_since=T0)
    assert [e.action for e in events] == [action]


def test_late_because_busy_is_not_missed(scene) -> None:
    """Due while the scheduler was up (but busy for hours): sent, not missed."""
    s, store = scene.settings, scene.store
    scene.article("news")
    store.subscribers.add("a@example.org", now=T0)
    queue_issue(s, store, "news", T0 + timedelta(minutes=1), now=T0)
    events = send_due(s, store, clock=FakeClock(T0 + timedelta(hours=5)), up_since=T0)
    assert [e.action for e in events] == ["sent"]


def test_a_send_that_fails_is_reported_not_retried_forever(scene) -> None:
    s, store = scene.settings, scene.store
    scene.article("news")
    queue_issue(s, store, "news", T0 + timedelta(minutes=1), now=T0)
    (scene.project / "issues" / "news.md").unlink()  # deleted after queueing
    events = send_due(s, store, clock=FakeClock(T0 + timedelta(minutes=2)), up_since=T0)
    assert [e.action for e in events] == ["failed"]
    row = Queue(store).get("news")
    assert row is not None and row.status == "failed" and "no issue 'news'" in row.note
    assert send_due(s, store, clock=FakeClock(T0 + timedelta(minutes=3)), up_since=T0) == []


def test_stop_mid_send_checkpoints_and_resumes(scene) -> None:
    s, store = scene.settings, scene.store
    scene.article("news")
    for n in range(40):
        store.subscribers.add(f"r{n:02d}@example.org", now=T0)
    queue_issue(s, store, "news", T0 + timedelta(minutes=1), now=T0)
    stop = threading.Event()
    seen: list[int] = []

    def progress(_slug: str):
        def tick(done: int, total: int) -> None:
            seen.append(done)
            if done >= 5:
                stop.set()

        return tick

    clock = FakeClock(T0 + timedelta(minutes=1))
    with pytest.raises(Stopped):
        send_due(s, store, clock=clock, up_since=T0, stop=stop, progress=progress)
    row = Queue(store).get("news")
    assert row is not None and row.status == "sending"
    send = store.ledger.get_send(issue_key("news"))
    assert send is not None and send.lease_owner is None  # the lease was given back
    counts = store.ledger.counts(send.id)
    assert 0 < counts.sent < 40 and counts.sent + counts.pending == 40
    assert outbox_count(scene, "news") == counts.sent  # every file written is recorded as sent
    # next start: resumed, whatever its lateness, and nobody gets it twice
    later = T0 + timedelta(hours=6)
    events = send_due(s, store, clock=FakeClock(later), up_since=later)
    assert [e.action for e in events] == ["sent"]
    assert store.ledger.counts(send.id).sent == 40
    assert outbox_count(scene, "news") == 40


def test_stop_check_raises_once() -> None:
    stop = threading.Event()
    check = stop_check(stop)
    check(1, 2)
    stop.set()
    with pytest.raises(Stopped):
        check(1, 2)
    check(2, 2)  # the drainer's final flush must not be interrupted again


# -- the commands ------------------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, project):
    from typer.testing import CliRunner

    from publisher.cli import app

    monkeypatch.setenv("PUBLISHER_SECRET_KEY", "test-secret-0123456789abcdef0123456789")
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    cfg = str(project / "config.yaml")

    def invoke(*args: str):
        return runner.invoke(app, [*args, "--config", cfg])

    return invoke


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cli_queue_refusals_exit_1_with_the_reason(scene, cli) -> None:
    scene.article("news")
    scene.article("draft-one", extra="draft: true")
    cases = [
        (("queue", "nope", "--at", "2099-01-01 08:00"), "no issue 'nope'"),
        (("queue", "draft-one", "--at", "2099-01-01 08:00"), "draft-one is a draft"),
        (("queue", "news", "--at", "2020-01-01 08:00"), "is in the past"),
        (("queue", "news", "--at", "soon"), "not a time: 'soon'"),
        (("queue", "news"), "say when: --at WHEN"),
        (("unqueue", "news"), "news is not queued"),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cli_queue_list_unqueue_and_already_sent(scene, cli) -> None:
    scene.article("news")
    result = cli("queue", "news", "--at", "2099-12-01 08:00")
    assert result.exit_code == 0, result.output
    assert "queued news for 2099-12-01 08:00 GMT" in result.stdout
    listing = cli("queue")
    assert listing.exit_code == 0 and "news: queued for 2099-12-01 08:00 GMT" in listing.stdout
    result = cli("unqueue", "news")
    assert (result.exit_code, result.stdout.strip()) == (0, "unqueued news")
    assert "nothing is queued" in cli("queue").stdout
    scene.store.subscribers.add("a@example.org", now=T0)
    assert cli("send", "news").exit_code == 0
    result = cli("queue", "news", "--at", "2099-12-01 08:00")
    assert result.exit_code == 1 and "news was already sent" in result.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cli_digest_round_by_hand(scene, cli) -> None:
    scene.article("story")
    scene.store.subscribers.add("d@example.org", now=T0, frequency="daily", timezone="Asia/Tokyo")
    dry = cli("digest", "daily", "--now", "2026-12-01T07:05+09:00", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "1 subscriber(s) due (1 with news, 0 with nothing new) in 1 zone(s); 1 variant(s)" in dry.stdout
    assert "would send 1 message(s)" in dry.stdout
    real = cli("digest", "daily", "--now", "2026-12-01T07:05+09:00")
    assert real.exit_code == 0 and "sent 1 message(s), 0 failed, 0 pending" in real.stdout
    again = cli("digest", "daily", "--now", "2026-12-01T07:06+09:00")
    assert (
        again.exit_code == 0 and "0 subscriber(s) due" in again.stdout and "sent 0 message(s)" in again.stdout
    )
    bad = cli("digest", "hourly")
    assert bad.exit_code == 2 and "expected daily or weekly" in bad.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_status_lists_the_queue(scene, cli) -> None:
    scene.article("news")
    assert "nothing queued" in cli("status").stdout
    assert cli("queue", "news", "--at", "2099-12-01 08:00").exit_code == 0
    out = cli("status").stdout
    assert "queue: 1 issue(s)" in out
    assert "news: queued for 2099-12-01 08:00" in out
