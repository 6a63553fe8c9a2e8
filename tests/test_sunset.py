"""Sunsetting (issue #16, item 6): ask the long-silent once, pause them if they stay silent.

Real parts: issues sent by the file transport to SQLite and PostgreSQL, the
re-engagement mail entered as the ``reengage`` sequence, clicks and the
preferences page over real HTTP, and ``publisher status`` through its CLI.

The story: per-subscriber counting is turned on on 1 January; three issues go
out (February, March, April). Ana clicks in March; Bo never clicks; Cy joined
in mid-March; Di reads weekly digests (no issue reaches her).
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from publisher.cli import app
from publisher.config import Settings
from publisher.models import Frequency
from publisher.ops.send import send_issue
from publisher.ops.sunset import sunset_tick
from publisher.store import Audience, Store
from publisher.store.clicks import Click
from publisher.store.engagement import Engagement
from publisher.store.sequences import SequenceStore
from publisher.tokens import Purpose, make_token
from tests.fixtures_content import article
from tests.fixtures_schedule import run_until
from tests.fixtures_send import FAST
from tests.fixtures_web import SECRET, form_fields
from tests.fixtures_web import Clock as WebClock

ON = datetime(2026, 1, 1, 9, tzinfo=UTC)  # per-subscriber counting turned on (first tick)
JOINED = datetime(2025, 12, 1, tzinfo=UTC)
ISSUES = {
    "feb": datetime(2026, 2, 1, 9, tzinfo=UTC),
    "mar": datetime(2026, 3, 1, 9, tzinfo=UTC),
    "apr": datetime(2026, 4, 1, 9, tzinfo=UTC),
}
ANA_CLICKS = datetime(2026, 3, 5, 12, tzinfo=UTC)
SWEEP = datetime(2026, 7, 15, 9, tzinfo=UTC)  # 195 days after ON: Bo has been silent long enough
STEP = """---
title: Still reading?
subject: Do you still want our newsletter?
---

To keep getting it, open [your preferences]({{ preferences_url }}) and press Save.
"""


class Ticking:
    """A send's clock: starts at ``at`` and moves a millisecond a call."""

    def __init__(self, at: datetime) -> None:
        self.now = at

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def _issue(settings: Settings, store: Store, write_issue: Any, slug: str, at: datetime) -> set[str]:
    """Send issue ``slug`` at ``at``: the addresses it reached."""
    write_issue(
        f"issues/{slug}.md",
        article(title=f"News {slug}", date="2026-01-01", body="[Map](https://maps.example.com/)"),
    )
    before = set(settings.paths.outbox.rglob("*.eml")) if settings.paths.outbox.is_dir() else set()
    send_issue(settings, store, slug, clock=Ticking(at), retry=FAST)
    found = set()
    for eml in set(settings.paths.outbox.rglob("*.eml")) - before:
        msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        found.add(str(msg["To"].addresses[0].addr_spec))
    return found


def _id(store: Store, address: str) -> int:
    sub = store.subscribers.get(address)
    assert sub is not None and sub.id is not None
    return sub.id


@pytest.fixture
def story(project: Path, write_issue: Any, make_settings: Callable[..., Settings], store: Store) -> Settings:
    write_issue("sequences/reengage/01-still-reading.md", STEP)
    settings = make_settings(
        database={"url": store.url},
        analytics={
            "per_subscriber": True,
            "sunset_after": "180d",
            "sunset_min_issues": 2,
            "sunset_grace": "14d",
        },
    )
    for address in ("ana@example.org", "bo@example.org"):
        store.subscribers.add(address, now=JOINED)
    store.subscribers.add("di@example.org", now=JOINED, frequency=Frequency.WEEKLY)
    assert sunset_tick(settings, store, clock=lambda: ON).tracking
    for slug, at in ISSUES.items():
        if slug == "apr":
            store.subscribers.add("cy@example.org", now=datetime(2026, 3, 15, tzinfo=UTC))
        _issue(settings, store, write_issue, slug, at)
    link = store.clicks.target("issue:mar", 1)
    assert link is not None
    store.clicks.record([Click(link.link_id, ANA_CLICKS, "human", _id(store, "ana@example.org"))])
    return settings


def test_only_the_long_silent_who_got_enough_issues_are_asked_and_only_once(
    story: Settings, store: Store
) -> None:
    report = sunset_tick(story, store, clock=lambda: SWEEP, force=True)
    assert (report.asked, report.paused, report.waiting) == (1, 0, 0)
    states = {a: Engagement(store).state(_id(store, f"{a}@example.org")) for a in ("ana", "bo", "cy", "di")}
    assert states == {"ana": None, "bo": "reengaged", "cy": None, "di": None}
    assert SequenceStore(store).at_steps() == {("reengage", 0): 1}  # Bo entered the reengage sequence
    again = sunset_tick(story, store, clock=lambda: SWEEP + timedelta(hours=2), force=True)
    assert (again.asked, again.paused) == (0, 0)
    assert SequenceStore(store).at_steps() == {("reengage", 0): 1}


def test_silence_counts_only_from_when_per_subscriber_counting_was_turned_on(
    project: Path, write_issue: Any, make_settings: Callable[..., Settings], store: Store
) -> None:
    write_issue("sequences/reengage/01-still-reading.md", STEP)
    settings = make_settings(
        database={"url": store.url}, analytics={"per_subscriber": True, "sunset_min_issues": 2}
    )
    store.subscribers.add("bo@example.org", now=JOINED)
    for slug, at in ISSUES.items():
        _issue(settings, store, write_issue, slug, at)
    late_on = datetime(2026, 5, 1, tzinfo=UTC)  # long after Bo's issues: none was counted per reader
    sunset_tick(settings, store, clock=lambda: late_on)
    assert sunset_tick(settings, store, clock=lambda: SWEEP, force=True).asked == 0
    _issue(settings, store, write_issue, "may", datetime(2026, 5, 2, tzinfo=UTC))
    _issue(settings, store, write_issue, "jun", datetime(2026, 6, 2, tzinfo=UTC))
    assert sunset_tick(settings, store, clock=lambda: late_on + timedelta(days=181), force=True).asked == 1


def test_no_click_within_the_grace_period_pauses_and_a_click_resumes(
    story: Settings,
    store: Store,
    write_issue: Any,
    make_app: Callable[..., FastAPI],
    live_server: Any,
) -> None:
    bo = _id(store, "bo@example.org")
    sunset_tick(story, store, clock=lambda: SWEEP, force=True)
    assert sunset_tick(story, store, clock=lambda: SWEEP + timedelta(days=10), force=True).paused == 0
    assert sunset_tick(story, store, clock=lambda: SWEEP + timedelta(days=15), force=True).paused == 1
    assert Engagement(store).state(bo) == "paused"
    reached = _issue(story, store, write_issue, "aug", datetime(2026, 8, 1, tzinfo=UTC))
    assert "bo@example.org" not in reached and "ana@example.org" in reached
    assert store.ledger.audience_size(Audience(frequencies=None)) == 3  # ana, cy, di: Bo is paused
    # Bo finds April's mail and clicks its link (over HTTP): he is back
    april = [p for p in story.paths.outbox.rglob("*.eml") if b"bo@example.org" in p.read_bytes()]
    html = "".join(
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        .get_body(("html",))
        .get_content()  # type: ignore[union-attr]
        for p in april
        if b"News apr" in p.read_bytes()
    )
    link = next(unescape(h) for h in re.findall(r'href="([^"]*/r/[^"]*)"', html))
    server = live_server(story, make_app(story, store, clock=WebClock(datetime(2026, 8, 2, tzinfo=UTC))))
    got = httpx.get(
        server.url.rstrip("/") + link[len(story.site.url) :],
        headers={"User-Agent": "Mozilla/5.0 Firefox/128.0"},
        follow_redirects=False,
    )
    assert got.status_code == 302
    assert Engagement(store).state(bo) is None
    assert "bo@example.org" in _issue(story, store, write_issue, "sep", datetime(2026, 9, 1, tzinfo=UTC))


def test_a_scanner_following_the_links_does_not_resume(story: Settings, store: Store) -> None:
    bo = _id(store, "bo@example.org")
    sunset_tick(story, store, clock=lambda: SWEEP, force=True)
    link = store.clicks.target("issue:apr", 1)
    assert link is not None
    store.clicks.record([Click(link.link_id, SWEEP + timedelta(days=1), "scanner", bo)])
    assert Engagement(store).state(bo) == "reengaged"
    assert sunset_tick(story, store, clock=lambda: SWEEP + timedelta(days=15), force=True).paused == 1


def test_turning_per_subscriber_counting_off_resumes_the_paused(
    story: Settings, store: Store, make_settings: Callable[..., Settings], write_issue: Any
) -> None:
    """Once clicks no longer name readers, no click could resume a pause: the pause goes with the data."""
    bo = _id(store, "bo@example.org")
    sunset_tick(story, store, clock=lambda: SWEEP, force=True)
    sunset_tick(story, store, clock=lambda: SWEEP + timedelta(days=15), force=True)
    assert Engagement(store).state(bo) == "paused"
    off = make_settings(database={"url": store.url}, analytics={"per_subscriber": False})
    assert sunset_tick(off, store, clock=lambda: SWEEP + timedelta(days=16)).forgotten >= 1
    assert Engagement(store).state(bo) is None
    assert "bo@example.org" in _issue(off, store, write_issue, "aug", datetime(2026, 8, 1, tzinfo=UTC))


def test_saving_the_preferences_page_resumes_a_paused_reader(
    story: Settings, store: Store, make_app: Callable[..., FastAPI], live_server: Any
) -> None:
    bo = _id(store, "bo@example.org")
    sunset_tick(story, store, clock=lambda: SWEEP, force=True)
    sunset_tick(story, store, clock=lambda: SWEEP + timedelta(days=15), force=True)
    base = live_server(story, make_app(story, store)).url.rstrip("/")
    path = f"{base}/preferences/{make_token(SECRET.encode(), Purpose.PREFERENCES, 'bo@example.org')}"
    page = httpx.get(path)
    assert page.status_code == 200 and "Your mail is paused" in page.text
    assert Engagement(store).state(bo) == "paused"  # looking (or a scanner fetching) changes nothing
    fields = form_fields(page.text)
    data = {"csrf": fields["csrf"][0], "name": "", "frequency": "instant", "timezone": "UTC"}
    saved = httpx.post(path, data=data)
    assert saved.status_code == 200 and "Your mail is paused" not in saved.text
    assert Engagement(store).state(bo) is None
    # saying "keep sending" counts like a click: no new question for another sunset_after
    assert sunset_tick(story, store, clock=lambda: SWEEP + timedelta(days=16), force=True).asked == 0


def test_without_a_reengagement_mail_nobody_is_asked_or_paused(
    story: Settings, store: Store, project: Path
) -> None:
    (project / "sequences" / "reengage" / "01-still-reading.md").unlink()
    report = sunset_tick(story, store, clock=lambda: SWEEP, force=True)
    assert (report.asked, report.waiting) == (0, 1)
    assert Engagement(store).state(_id(store, "bo@example.org")) is None


def test_publisher_status_lists_candidates_reengaged_and_paused(
    story: Settings, store: Store, project: Path, write_issue: Any
) -> None:
    def status() -> str:
        got = CliRunner().invoke(app, ["status", "--config", str(project / "config.yaml")])
        assert got.exit_code == 0, got.output
        line = next(line for line in got.output.splitlines() if line.startswith("sunsetting:"))
        return line

    assert status() == "sunsetting: 1 candidate(s), 0 re-engaged (asked, grace running), 0 paused"
    sunset_tick(story, store, clock=lambda: SWEEP, force=True)
    assert status() == "sunsetting: 0 candidate(s), 1 re-engaged (asked, grace running), 0 paused"
    sunset_tick(story, store, clock=lambda: SWEEP + timedelta(days=15), force=True)
    assert status() == "sunsetting: 0 candidate(s), 0 re-engaged (asked, grace running), 1 paused"


def test_the_sweep_runs_at_most_once_an_hour(story: Settings, store: Store) -> None:
    just_before = ON + timedelta(days=180) - timedelta(minutes=10)  # Bo: not silent quite long enough
    assert sunset_tick(story, store, clock=lambda: just_before).asked == 0
    assert sunset_tick(story, store, clock=lambda: just_before + timedelta(minutes=30)).asked == 0  # not due
    assert sunset_tick(story, store, clock=lambda: just_before + timedelta(minutes=61)).asked == 1


def test_the_scheduler_tick_asks_the_silent(story: Settings, store: Store) -> None:
    """`publisher run`'s loop (a Runner on the real clock, months after the story) sweeps by itself."""
    run_until(story, lambda: Engagement(store).state(_id(store, "bo@example.org")) == "reengaged")
    assert Engagement(store).state(_id(store, "ana@example.org")) is None
