"""Click counting in digests (issue #16), and what ``/r/`` answers besides a redirect.

A digest send has several variants (zone x article list) under one send key,
so its link numbers are the send's: one URL, one number, whichever variant
carries it, registered once however often the send's messages are prepared.
Real parts: a digest round over SMTP to the test server, the app in uvicorn
over real HTTP, SQLite and PostgreSQL (``db_url``).
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html import unescape
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from publisher.cli import app as cli
from publisher.content import load_library
from publisher.deliver import RetryPolicy
from publisher.ops.digest import run_digest
from publisher.ops.digest.messages import Renderers, prepared_messages
from publisher.store import DigestState, Store
from publisher.store.clicks import Click
from publisher.store.digests import DigestSend
from publisher.tokens import click_token, read_click_token
from tests.fixtures_schedule import FakeClock
from tests.fixtures_web import SECRET

FAST = RetryPolicy(attempts=4, initial=0.02, maximum=0.05, give_up_after=5, jitter=0.0)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
HREF = re.compile(r'<a\b[^>]*?\shref="([^"]*)"')


def _parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def _html(msg: EmailMessage) -> str:
    return msg.get_body(("html",)).get_content()  # type: ignore[union-attr]


def _redirects(html: str) -> list[str]:
    return [unescape(h) for h in HREF.findall(html) if "/r/" in h]


@pytest.fixture
def digest(scene: Any, smtp_server: Any) -> Any:
    """A daily round to two readers of one zone with different article lists: one send, two variants."""
    scene.reconfigure(
        email={"transport": "smtp", "smtp": {"host": "127.0.0.1", "port": smtp_server.port, "timeout": 10}}
    )
    scene.article("tram-news", tags=("trams",))
    scene.article("bread-news", tags=("baking",))
    scene.article("tram-baking", tags=("trams", "baking"))
    created = NOW - timedelta(days=1)
    scene.store.subscribers.add(
        "trams@example.org", now=created, frequency="daily", topics="trams", timezone="UTC"
    )
    scene.store.subscribers.add("all@example.org", now=created, frequency="daily", timezone="UTC")
    report = run_digest(
        scene.settings,
        scene.store,
        "daily",
        clock=FakeClock(NOW),
        up_since=NOW - timedelta(hours=6),
        retry=FAST,
    )
    assert (report.mailed, report.variants, report.sent) == (2, 2, 2)
    (key,) = report.sends
    got = {r.rcpt: _parse(r.data) for r in smtp_server.received()}
    return scene, key, got


def test_with_clicks_off_a_digest_keeps_its_links_and_records_none(scene: Any) -> None:
    scene.reconfigure(analytics={"clicks": False})
    scene.article("tram-news", tags=("trams",))
    scene.store.subscribers.add(
        "all@example.org", now=NOW - timedelta(days=1), frequency="daily", timezone="UTC"
    )
    report = run_digest(
        scene.settings,
        scene.store,
        "daily",
        clock=FakeClock(NOW),
        up_since=NOW - timedelta(hours=6),
        retry=FAST,
    )
    (key,) = report.sends
    (path,) = scene.settings.paths.outbox.rglob("*.eml")
    html = _html(_parse(path.read_bytes()))
    assert not _redirects(html) and f'href="{scene.settings.site.url}/tram-news/"' in html
    assert scene.store.clicks.numbering(key) == {}


def _numbers(key: str, hrefs: list[str]) -> dict[int, str]:
    """Link number -> the token's path, for a message's /r/ links (each must name ``key``)."""
    out = {}
    for href in hrefs:
        token = href.rsplit("/r/", 1)[1]
        send_key, n = read_click_token(SECRET.encode(), token)
        assert send_key == key
        out[n] = href
    return out


def test_a_digests_links_are_numbered_per_send_alike_in_every_variant(digest: Any) -> None:
    scene, key, got = digest
    site = scene.settings.site.url
    tram = f"{site}/tram-news/"
    links = {lk.link_no: lk.url for lk in scene.store.clicks.by_link(key)}
    assert sorted(links) == list(range(1, len(links) + 1))  # 1..n, no gaps
    assert len(set(links.values())) == len(links)  # one URL, one number
    assert {tram, f"{site}/bread-news/", f"{site}/tram-baking/"} <= set(links.values())
    assert not any(
        "/unsubscribe/" in u or "/preferences/" in u or u.startswith("mailto:") for u in links.values()
    )
    numbered = {rcpt: _numbers(key, _redirects(_html(msg))) for rcpt, msg in got.items()}
    by_url = {url: n for n, url in links.items()}
    # the tram story is in both variants under the same number, hence the same token
    assert numbered["trams@example.org"][by_url[tram]] == numbered["all@example.org"][by_url[tram]]
    assert set(numbered["trams@example.org"]) | set(numbered["all@example.org"]) == set(links)
    for msg in got.values():
        html = _html(msg)
        assert f'href="{tram}"' not in html  # every article link goes through /r/ ...
        assert any("/unsubscribe/" in h for h in HREF.findall(html))  # ... but never the personal ones
        assert tram in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_clicks_from_two_variants_count_on_one_url_and_the_report_shows_the_digest(
    digest: Any, make_app: Callable[..., FastAPI], live_server: Any
) -> None:
    scene, key, got = digest
    site = scene.settings.site.url
    tram = f"{site}/tram-news/"
    server = live_server(scene.settings, make_app(scene.settings, scene.store))
    base = server.url.rstrip("/")
    tram_no = {lk.url: lk.link_no for lk in scene.store.clicks.by_link(key)}[tram]
    for rcpt in ("trams@example.org", "all@example.org"):
        href = _numbers(key, _redirects(_html(got[rcpt])))[tram_no]
        answer = httpx.get(base + href[len(site) :], headers={"User-Agent": BROWSER}, follow_redirects=False)
        assert answer.status_code == 302 and answer.headers["location"] == tram
    counts = {lk.url: lk.by_kind for lk in scene.store.clicks.by_link(key)}
    assert counts[tram] == {"human": 2}
    assert all(not kinds for url, kinds in counts.items() if url != tram)
    out = CliRunner().invoke(cli, ["report", key, "--config", str(scene.project / "config.yaml")])
    assert out.exit_code == 0, out.output
    rows = dict(
        re.split(r"\s{2,}", ln.strip(), maxsplit=1) for ln in out.output.splitlines() if "  " in ln.strip()
    )
    assert rows["delivered"] == "2" and rows["human clicks"] == "2" and rows["click rate"] == "100.0%"
    assert "tram-news" in out.output


def _send(store: Store, key: str) -> DigestSend:
    info = store.ledger.get_send(key)
    assert info is not None
    return DigestSend(info.id, info.key, info.created_at, info.meta)


def test_preparing_a_send_again_numbers_alike_and_registers_nothing_new(digest: Any) -> None:
    scene, key, got = digest
    before = scene.store.clicks.numbering(key)
    library = load_library(scene.settings)
    again = prepared_messages(
        scene.settings, DigestState(scene.store), Renderers(scene.settings, library), _send(scene.store, key)
    )
    assert scene.store.clicks.numbering(key) == before
    first = {tuple(sorted(_numbers(key, _redirects(_html(m))).items())) for m in got.values()}
    second = {tuple(sorted(_numbers(key, _redirects(p.html)).items())) for p in again.values()}
    assert first == second  # the same tokens at the same numbers in every variant


def test_a_preparation_that_read_a_stale_numbering_numbers_again(
    digest: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process registered links in between: the clash is found, nothing wrong is recorded."""
    scene, key, _ = digest
    store = scene.store
    held = store.clicks.numbering(key)
    extra = "https://elsewhere.example.org/story"
    store.clicks.register(key, {**held, extra: len(held) + 1}, now=NOW)  # a variant we do not prepare
    monkeypatch.setattr(store.clicks, "numbering", lambda _key: {})  # read before the others registered
    library = load_library(scene.settings)
    again = prepared_messages(
        scene.settings, DigestState(store), Renderers(scene.settings, library), _send(store, key)
    )
    monkeypatch.undo()
    after = store.clicks.numbering(key)
    assert after == {**held, extra: len(held) + 1}  # nothing registered twice or renumbered
    recorded = {n: url for url, n in after.items()}
    site = scene.settings.site.url
    for prepared in again.values():
        numbers = _numbers(key, _redirects(prepared.html))
        assert len(held) + 1 not in numbers  # the other process's link is not in our mail
        assert {recorded[n] for n in numbers} <= set(held)
        assert f"{site}/tram-baking/" in {recorded[n] for n in numbers}


def test_registering_links_is_idempotent_and_refuses_a_clash(store: Store) -> None:
    key = "digest:daily:2026-12-01:UTC"
    a, b, c, d = (f"https://example.org/{x}" for x in "abcd")
    assert store.clicks.register(key, {a: 1, b: 2}, now=NOW) == {a: 1, b: 2}
    assert store.clicks.register(key, {a: 1, b: 2}, now=NOW) == {a: 1, b: 2}
    assert store.clicks.register(key, {a: 1, b: 2, c: 3}, now=NOW) == {a: 1, b: 2, c: 3}
    assert store.clicks.register(key, {a: 1, d: 2}, now=NOW) == {a: 1, b: 2, c: 3}  # 2 is b's
    assert store.clicks.register(key, {b: 5}, now=NOW) == {a: 1, b: 2, c: 3}  # b is 2
    assert [(lk.link_no, lk.url) for lk in store.clicks.by_link(key)] == [(1, a), (2, b), (3, c)]
    assert store.clicks.numbering("digest:daily:2026-12-01:Other") == {}


# -- what /r/ answers besides a redirect (served in front of FastAPI's router) ---------------------


@pytest.fixture
def one_link(
    store: Store, make_settings: Callable[..., Any], make_app: Callable[..., FastAPI], live_server: Any
) -> Any:
    settings = make_settings(database={"url": store.url})
    store.ledger.plan_send("issue", "issue:one", now=NOW, issue_slug="one")
    store.clicks.record_links("issue:one", ["https://example.org/a b?x=1&y=é"], now=NOW)
    server = live_server(settings, make_app(settings, store))
    return server.url.rstrip("/"), f"/r/{click_token(SECRET.encode(), 'issue:one', 1)}"


def test_the_redirect_carries_the_apps_security_headers(one_link: Any, store: Store) -> None:
    base, path = one_link
    got = httpx.get(base + path, headers={"User-Agent": BROWSER})
    assert got.status_code == 302
    assert got.headers["location"] == "https://example.org/a%20b?x=1&y=%C3%A9"  # never raw bytes in a header
    for name in ("content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy"):
        assert name in got.headers, name
    assert got.headers["cache-control"] == "no-store" and got.headers["x-robots-tag"] == "noindex"
    assert got.headers["content-length"] == "0" and got.content == b""
    bad = httpx.get(base + path[:-3] + "AAA", headers={"User-Agent": BROWSER})
    assert bad.status_code == 400 and "Link not valid" in bad.text  # the app's own page for a bad link
    assert "content-security-policy" in bad.headers
    assert store.clicks.event_count() == 1


def test_only_get_and_head_and_only_one_segment(one_link: Any, store: Store) -> None:
    base, path = one_link
    for method in ("POST", "PUT", "DELETE"):
        got = httpx.request(method, base + path, headers={"User-Agent": BROWSER})
        assert got.status_code == 405 and got.headers["allow"] == "GET, HEAD", method
    for other in (path + "/more", "/r/"):  # not /r/<token>: the archive's answer (no site built here)
        assert httpx.get(base + other).status_code in (404, 503), other
    big = httpx.post(base + path, content=b"x" * (200 * 1024), headers={"Content-Type": "text/plain"})
    assert big.status_code == 413  # the guard's size limit, before /r/ is answered
    assert store.clicks.event_count() == 0


def test_the_click_writer_leaves_wal_checkpoints_to_a_thread_and_restores_them(store: Store) -> None:
    """A burst on the event loop never checkpoints on its connection; the pool gets it back as it was."""
    if store.dialect != "sqlite":
        pytest.skip("a SQLite WAL matter")
    store.ledger.plan_send("issue", "issue:wal", now=NOW, issue_slug="wal")
    store.clicks.record_links("issue:wal", ["https://example.org/a"], now=NOW)
    target = store.clicks.target("issue:wal", 1)
    assert target is not None
    with store.connect() as conn:
        dbapi: Any = conn.connection.driver_connection
        store.defer_checkpoints(conn, True)
        assert dbapi.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        for _ in range(3):
            store.clicks.record([Click(target.link_id, NOW, "human")] * 50, conn=conn)
        store.checkpoint()  # what the writer runs in a thread
        busy, log, done = dbapi.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert busy == 0 and log == done  # nothing left to copy back
        store.defer_checkpoints(conn, False)
        assert dbapi.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    assert store.clicks.event_count() == 150
    assert store.clicks.by_hour("issue:wal") == [(NOW, 150)]


@pytest.mark.parametrize(
    ("agent", "kind"),
    [
        ("Mozilla/5.0 " + "x" * 10_240, "human"),  # too long to cache: matched each time
        ("Mozilla/5.0 (compatible; bingbot/2.0) " + "y" * 10_240, "scanner"),
        ("=?utf-8?q?Mozilla=2F5.0?=", "human"),
        ("Mozilla/5.0 \u202eevil", "human"),
        ("", "scanner"),  # empty: no browser sends that
    ],
)
def test_hostile_user_agents_are_classed_and_never_stored(
    one_link: Any, store: Store, agent: str, kind: str
) -> None:
    base, path = one_link
    got = httpx.get(base + path, headers={"User-Agent": agent.encode("utf-8")})
    assert got.status_code == 302
    (link,) = store.clicks.by_link("issue:one")
    assert link.by_kind == {kind: 1}
    with store.engine.connect() as conn:
        cells = [
            str(v)
            for t in ("click_events", "click_hours", "click_links")
            for r in conn.exec_driver_sql(f"SELECT * FROM {t}")
            for v in r
        ]
    assert not any(agent.strip() and agent[:20] in c for c in cells)
