"""Click counting (issue #16): links through /r/<token>, counted per send and link, machines apart.

Real parts throughout: an issue sent by the file transport, the real app over
real HTTP (uvicorn), SQLite and PostgreSQL.
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
from sqlalchemy import inspect, select
from typer.testing import CliRunner

from publisher.cli import app
from publisher.config import Settings
from publisher.errors import PublisherError
from publisher.ops.clicks import PREFETCH, SCANNER, classify
from publisher.ops.send import send_issue
from publisher.render.links import rewrite_links
from publisher.store import Store
from publisher.store.clicks import Click, click_events, click_hours, click_links
from publisher.store.opens import Open, open_events
from publisher.tokens import Purpose, click_token, make_token
from tests.fixtures_content import article
from tests.fixtures_schedule import run_until
from tests.fixtures_send import FAST, SLUG, Clock
from tests.fixtures_web import API_TOKEN, SECRET

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
OUT = "https://trams.example.com/news?a=1&b=2"
BODY = (
    f"The [trams]({OUT}) are back. Write to [the desk](mailto:desk@example.org). "
    "See the [map](https://maps.example.com/lines) and the [trams]"
    f"({OUT}) again."
)


def _send(settings: Settings, store: Store) -> tuple[str, str]:
    """Send the issue to one reader by the file transport; (HTML part, text part) of the mail."""
    store.subscribers.add("reader@example.org", now=datetime(2026, 3, 1, tzinfo=UTC))
    send_issue(settings, store, SLUG, clock=Clock(), retry=FAST)
    (eml,) = sorted((settings.paths.outbox).rglob("*.eml"))
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    html, text = msg.get_body(("html",)), msg.get_body(("plain",))
    assert html is not None and text is not None
    return html.get_content(), text.get_content()  # type: ignore[attr-defined]


def _hrefs(html: str) -> list[str]:
    return [unescape(h) for h in re.findall(r'<a\b[^>]*?\shref="([^"]*)"', html)]


@pytest.fixture
def sent(project: Path, write_issue: Any, make_settings: Callable[..., Settings], store: Store) -> Any:
    """An issue with two outside links (one twice) and a mailto:, sent to one reader."""
    write_issue(f"issues/{SLUG}.md", article(title="Spring News", date="2026-03-01", body=BODY))
    settings = make_settings(database={"url": store.url})
    html, text = _send(settings, store)
    return settings, html, text


@pytest.fixture
def served(sent: Any, store: Store, make_app: Callable[..., FastAPI], live_server: Any) -> Any:
    settings, html, _ = sent
    server = live_server(settings, make_app(settings, store))
    return settings, html, server.url.rstrip("/")


def _redirects(html: str) -> list[str]:
    return [h for h in _hrefs(html) if "/r/" in h]


def test_links_are_rewritten_once_per_url_and_never_the_personal_ones(sent: Any, store: Store) -> None:
    settings, html, text = sent
    hrefs = _hrefs(html)
    redirects = _redirects(html)
    assert OUT not in hrefs and "https://maps.example.com/lines" not in hrefs
    assert "mailto:desk@example.org" in hrefs  # mailto: never rewritten
    assert any("/unsubscribe/" in h for h in hrefs) and any("/preferences/" in h for h in hrefs)
    assert all(h.startswith(settings.site.url + "/r/") for h in redirects)
    assert len(redirects) > len(set(redirects))  # the tram link twice: one URL, one number, one token
    assert OUT in text  # the plain-text part shows where its links go
    recorded = {lk.url for lk in store.clicks.by_link(f"issue:{SLUG}")}
    assert {OUT, "https://maps.example.com/lines"} <= recorded
    assert not any("unsubscribe" in u or u.startswith("mailto:") for u in recorded)


def test_a_click_over_http_lands_at_the_original_url_and_counts_once(served: Any, store: Store) -> None:
    settings, html, base = served
    tram = _redirects(html)[1]  # links 1.. follow the HTML order: the view link, then the body's
    path = tram[len(settings.site.url) :]
    got = httpx.get(base + path, headers={"User-Agent": BROWSER}, follow_redirects=False)
    assert got.status_code == 302
    links = {lk.url: lk.by_kind for lk in store.clicks.by_link(f"issue:{SLUG}")}
    assert got.headers["location"] in links
    assert got.headers["cache-control"] == "no-store"
    clicked = got.headers["location"]
    assert links[clicked] == {"human": 1}
    assert sum(sum(k.values()) for k in links.values()) == 1
    assert store.clicks.event_count() == 1


def test_head_and_scanners_are_counted_apart(served: Any, store: Store) -> None:
    settings, html, base = served
    path = _redirects(html)[0][len(settings.site.url) :]
    assert httpx.head(base + path, headers={"User-Agent": BROWSER}).status_code == 302
    for agent in ("Mozilla/5.0 (compatible; Barracuda Sentinel)", "python-requests/2.32", ""):
        assert httpx.get(base + path, headers={"User-Agent": agent}).status_code == 302
    by_kind = store.clicks.by_link(f"issue:{SLUG}")[0].by_kind
    assert by_kind == {"scanner": 4}


def test_clicks_soon_after_the_send_are_prefetches() -> None:
    start = datetime(2026, 3, 2, 8, tzinfo=UTC)
    assert classify("GET", BROWSER, start + timedelta(seconds=5), start, 60) == PREFETCH
    assert classify("GET", BROWSER, start + timedelta(minutes=5), start, 60) == "human"
    assert (
        classify("GET", "Mozilla/5.0 (compatible; Google-Safety)", start + timedelta(days=1), start, 60)
        == SCANNER
    )


def _status(url: str) -> int:
    return httpx.get(url, headers={"User-Agent": BROWSER}, follow_redirects=False).status_code


def test_forged_altered_foreign_and_hostile_tokens_are_refused_and_nothing_recorded(
    served: Any, store: Store
) -> None:
    _, html, base = served
    token = _redirects(html)[0].rsplit("/", 1)[1]
    secret = SECRET.encode()
    altered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    bad = [
        altered,
        click_token(b"another-secret-0123456789abcdef012345", f"issue:{SLUG}", 1),  # forged
        click_token(secret, f"issue:{SLUG}", 999),  # a link the send never had
        click_token(secret, "issue:some-other-send", 1),  # a send that recorded nothing
        make_token(secret, Purpose.CONFIRM, "reader@example.org"),  # another purpose (and it expires)
        make_token(secret, Purpose.UNSUBSCRIBE, "reader@example.org"),
        "A" * 10_240,
        "=?utf-8?q?=0D=0ALocation:_https://evil.example?=",
        "..%5C..%5Cetc",
    ]
    for t in bad:
        assert _status(f"{base}/r/{t}") == 400, t
    assert _status(f"{base}/r/https:%2F%2Fevil.example") // 100 != 3  # a '/' never reaches /r/{token}
    for t in ("%00", "a%00b", token + "%00"):  # control characters: the guard middleware's 422, app-wide
        assert _status(f"{base}/r/{t}") == 422, t
    assert store.clicks.event_count() == 0


def test_no_token_of_a_send_redirects_outside_that_send(served: Any, store: Store) -> None:
    _, _, base = served
    mine = {lk.url for lk in store.clicks.by_link(f"issue:{SLUG}")}
    secret = SECRET.encode()
    for n in range(1, len(mine) + 5):
        got = httpx.get(
            f"{base}/r/{click_token(secret, f'issue:{SLUG}', n)}", headers={"User-Agent": BROWSER}
        )
        assert got.status_code in (302, 400)
        if got.status_code == 302:
            assert got.headers["location"] in mine


def test_clicks_off_leaves_every_link_as_written(
    project: Path, write_issue: Any, make_settings: Callable[..., Settings], store: Store
) -> None:
    write_issue(f"issues/{SLUG}.md", article(title="Spring News", date="2026-03-01", body=BODY))
    settings = make_settings(database={"url": store.url}, analytics={"clicks": False})
    html, _ = _send(settings, store)
    assert not _redirects(html)
    assert OUT in _hrefs(html)
    assert store.clicks.by_link(f"issue:{SLUG}") == []


def test_nothing_stored_names_a_reader(served: Any, store: Store) -> None:
    settings, html, base = served
    httpx.get(base + _redirects(html)[1][len(settings.site.url) :], headers={"User-Agent": BROWSER})
    columns = {
        t.name: {c["name"] for c in inspect(store.engine).get_columns(t.name)}
        for t in (click_links, click_events, click_hours)
    }
    assert columns == {
        "click_links": {"id", "send_key", "link_no", "url", "created_at"},
        "click_events": {"id", "link_id", "at", "kind"},
        "click_hours": {"link_id", "hour", "kind", "clicks"},
    }
    with store.engine.connect() as conn:
        rows = [str(r) for t in (click_links, click_events, click_hours) for r in conn.execute(select(t))]
    assert rows and not any("reader@example.org" in r or "127.0.0.1" in r for r in rows)


def test_report_api_and_cli_agree(served: Any, store: Store) -> None:
    settings, html, base = served
    for _ in range(2):
        httpx.get(base + _redirects(html)[1][len(settings.site.url) :], headers={"User-Agent": BROWSER})
    httpx.head(base + _redirects(html)[1][len(settings.site.url) :])
    send_id = store.ledger.get_send(f"issue:{SLUG}").id  # type: ignore[union-attr]
    got = httpx.get(f"{base}/api/sends/{send_id}/report", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert got.status_code == 200, got.text
    report = got.json()
    assert report["delivered"] == 1 and report["human_clicks"] == 2
    assert report["machine_clicks"] == {"scanner": 1}
    assert report["click_rate"] == 2.0
    assert report["top_links"][0]["human_clicks"] == 2
    assert "not per person" in report["note"]
    missing = httpx.get(f"{base}/api/sends/999999/report", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert missing.status_code == 404


def test_prune_deletes_old_events_and_keeps_the_hours(sent: Any, store: Store) -> None:
    link = store.clicks.by_link(f"issue:{SLUG}")[0]
    target = store.clicks.target(f"issue:{SLUG}", link.link_no)
    assert target is not None
    old = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
    store.clicks.record([Click(target.link_id, old, "human"), Click(target.link_id, old, "human")])
    assert store.clicks.prune(old + timedelta(days=1)) == 2
    assert store.clicks.event_count() == 0
    assert store.clicks.by_hour(f"issue:{SLUG}") == [(datetime(2026, 1, 1, 9, tzinfo=UTC), 2)]


def test_publisher_run_deletes_raw_events_past_retention_by_itself(sent: Any, store: Store) -> None:
    """`publisher run`'s loop prunes clicks and opens older than analytics.retention; the hours stay."""
    settings, _, _ = sent
    target = store.clicks.target(f"issue:{SLUG}", 1)
    send = store.ledger.get_send(f"issue:{SLUG}")
    assert target is not None and send is not None
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=91), now - timedelta(days=89)  # retention: 90 days
    store.clicks.record([Click(target.link_id, old, "human"), Click(target.link_id, recent, "human")])
    store.opens.record([Open(send.id, old, "human"), Open(send.id, recent, "apple_mpp")])
    run_until(settings, lambda: store.clicks.event_count() == 1 and _open_events(store) == 1)
    assert sum(n for _, n in store.clicks.by_hour(f"issue:{SLUG}")) == 2  # the hourly figures keep both


def _open_events(store: Store) -> int:
    with store.read() as conn:
        return len(conn.execute(select(open_events)).all())


def test_publisher_report_prints_the_table_and_a_sparkline(sent: Any, store: Store, project: Path) -> None:
    target = store.clicks.target(f"issue:{SLUG}", 1)
    assert target is not None
    at = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
    store.clicks.record([Click(target.link_id, at, "human")] * 3 + [Click(target.link_id, at, "scanner")])
    store.clicks.record([Click(target.link_id, at + timedelta(hours=3), "human")])
    got = CliRunner().invoke(app, ["report", f"issue:{SLUG}", "--config", str(project / "config.yaml")])
    assert got.exit_code == 0, got.output
    lines = dict(
        re.split(r"\s{2,}", ln.strip(), maxsplit=1) for ln in got.output.splitlines() if "  " in ln.strip()
    )
    assert lines["delivered"] == "1" and lines["human clicks"] == "4" and lines["click rate"] == "400.0%"
    assert lines["machine clicks"].startswith("1 scanner")
    assert lines["clicks / hour"] == "█▁▁▄"
    assert "not per person" in got.output
    missing = CliRunner().invoke(app, ["report", "nope", "--config", str(project / "config.yaml")])
    assert missing.exit_code != 0 and "no send nope" in missing.output


def test_rewriting_skips_slots_app_pages_and_other_schemes() -> None:
    html = (
        '<a href="https://x.example/a?b=1&amp;c=2">a</a><a href="XPSLOTunsubscribe_urlX">u</a>'
        '<a href="https://app.example/unsubscribe/abc">u2</a><a href="https://app.example/preferences/x">p</a>'
        '<a href="mailto:a@b.example">m</a><a href="tel:+1">t</a><a href="#top">h</a>'
        '<a href="https://app.example/some-article/">s</a><a href="https://x.example/a?b=1&amp;c=2">again</a>'
    )
    out, links = rewrite_links(
        html, secret=SECRET.encode(), send_key="issue:k", app_url="https://app.example", marker="XPSLOT"
    )
    assert links.urls == ("https://x.example/a?b=1&c=2", "https://app.example/some-article/")
    for kept in ("XPSLOTunsubscribe_urlX", "/unsubscribe/abc", "/preferences/x", "mailto:", "tel:", "#top"):
        assert kept in out
    assert out.count("https://app.example/r/") == 3


def test_analytics_config_defaults_and_per_subscriber_is_off_by_default(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings()
    assert (s.analytics.clicks, s.analytics.per_subscriber, s.analytics.retention) == (
        True,
        False,
        timedelta(days=90),
    )
    assert make_settings(analytics={"retention": "30d"}).analytics.retention == timedelta(days=30)
    assert make_settings(analytics={"per_subscriber": True}).analytics.per_subscriber is True
    with pytest.raises(PublisherError, match="sunset_min_issues"):
        make_settings(analytics={"sunset_min_issues": 0})


@pytest.mark.parametrize(
    "ref",
    ["9" * 30, "\x1b[31mred", "[bold]x[/]", "a\r\nb", "=?utf-8?q?issue=3Ax?=", "\u202eevil", "x" * 10_000],
)
def test_publisher_report_refuses_a_hostile_send_reference(sent: Any, project: Path, ref: str) -> None:
    got = CliRunner().invoke(app, ["report", ref, "--config", str(project / "config.yaml")])
    assert got.exit_code == 1, got.output
    assert got.exception is None or isinstance(got.exception, SystemExit)  # said, not a traceback
    assert "no send" in got.output and "\x1b[31m" not in got.output and "\r" not in got.output
