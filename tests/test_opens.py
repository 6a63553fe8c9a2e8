"""Opens (issue #16 item 3): a 1x1 image per send, only with ``analytics.opens: true``, machines apart.

Real parts throughout: issues sent by the file transport, the real app over
real HTTP (uvicorn), SQLite and PostgreSQL, the real `publisher report`.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select
from typer.testing import CliRunner

from publisher.cli import app
from publisher.config import Settings, load_settings
from publisher.models import Frequency
from publisher.ops.editors import add_editor
from publisher.ops.opens import classify_open, prune_opens
from publisher.ops.send import send_issue
from publisher.render.email_mime import make_recipient, prepare_message, slot
from publisher.store import Store, open_store
from publisher.store.opens import OPEN_KINDS, Open, open_events, open_hours
from publisher.tokens import Purpose, click_token, make_token, read_token
from publisher.web.opens import GIF
from tests.fixtures_content import article
from tests.fixtures_golden import (
    DIGEST_AT,
    SENT_AT,
    SUBSCRIBED_AT,
    check_golden,
    copy_sample_project,
    golden_environ,
    run_cli,
)
from tests.fixtures_send import FAST, SLUG, Clock
from tests.fixtures_web import API_TOKEN, SECRET, form_fields

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
APPLE_MPP = "Mozilla/5.0"  # ua-parser/uap-core#509
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
YAHOO = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
OUTLOOK = "Mozilla/5.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; ms-office; MSOffice 16)"
PROBE = "Microsoft Office Existence Discovery"
KEY = f"issue:{SLUG}"
READERS = ("reader@example.org", "other@example.org")
PIXEL = re.compile(r'<img\b[^>]*\ssrc="([^"]*/o/[^"]*)"[^>]*>')
PASSWORD = "correct horse battery staple"


def _send(settings: Settings, store: Store) -> list[tuple[str, str]]:
    """Send the issue to two readers by the file transport; (HTML part, text part) of each mail."""
    for address in READERS:
        store.subscribers.add(address, now=datetime(2026, 3, 1, tzinfo=UTC))
    send_issue(settings, store, SLUG, clock=Clock(), retry=FAST)
    parts = []
    for eml in sorted(settings.paths.outbox.rglob("*.eml")):
        msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        html, text = msg.get_body(("html",)), msg.get_body(("plain",))
        assert html is not None and text is not None
        parts.append((html.get_content(), text.get_content()))  # type: ignore[attr-defined]
    assert len(parts) == len(READERS)
    return parts


def _project(
    write_issue: Any, make_settings: Callable[..., Settings], store: Store, **analytics: Any
) -> Settings:
    write_issue(f"issues/{SLUG}.md", article(title="Spring News", date="2026-03-01", body="Trams are back."))
    return make_settings(database={"url": store.url}, analytics=analytics)


@pytest.fixture
def sent(project: Path, write_issue: Any, make_settings: Callable[..., Settings], store: Store) -> Any:
    settings = _project(write_issue, make_settings, store, opens=True)
    return settings, _send(settings, store)


@pytest.fixture
def served(sent: Any, store: Store, make_app: Callable[..., FastAPI], live_server: Any) -> Any:
    """(settings, the image's path, the live server's base URL)."""
    settings, parts = sent
    (src,) = PIXEL.findall(parts[0][0])
    path = unescape(src)[len(settings.site.url) :]
    server = live_server(settings, make_app(settings, store))
    return settings, path, server.url.rstrip("/")


def _load(url: str, agent: str | bytes | None = BROWSER, method: str = "GET") -> httpx.Response:
    headers = {} if agent is None else {"User-Agent": agent}
    return httpx.request(method, url, headers=headers, follow_redirects=False)


def test_one_image_in_the_html_part_the_same_for_every_reader_and_none_in_text(
    sent: Any, store: Store
) -> None:
    settings, parts = sent
    pixels = [PIXEL.findall(html) for html, _ in parts]
    assert all(len(p) == 1 for p in pixels) and pixels[0] == pixels[1]  # names the send, not the reader
    src = unescape(pixels[0][0])
    assert src.startswith(settings.site.url + "/o/")
    assert read_token(SECRET.encode(), Purpose.OPEN, src.rsplit("/", 1)[1]) == KEY
    tag = PIXEL.search(parts[0][0])
    assert tag is not None and 'width="1"' in tag.group(0) and 'alt=""' in tag.group(0)
    assert parts[0][0].index(tag.group(0)) < parts[0][0].lower().rindex("</body>")
    assert not any("/o/" in text for _, text in parts)
    assert store.opens.event_count() == 0  # sending records no open


def test_opens_off_means_no_image_and_404(
    project: Path,
    write_issue: Any,
    make_settings: Callable[..., Settings],
    store: Store,
    make_app: Callable[..., FastAPI],
    live_server: Any,
) -> None:
    settings = _project(write_issue, make_settings, store)
    assert settings.analytics.opens is False  # off by default
    parts = _send(settings, store)
    assert not any(PIXEL.search(html) or "/o/" in html for html, _ in parts)
    base = live_server(settings, make_app(settings, store)).url.rstrip("/")
    token = make_token(SECRET.encode(), Purpose.OPEN, KEY)  # a valid token changes nothing
    for method in ("GET", "HEAD"):
        assert _load(f"{base}/o/{token}", method=method).status_code == 404
    assert store.opens.event_count() == 0


def test_each_load_is_counted_by_class_and_machines_apart(served: Any, store: Store, web_clock: Any) -> None:
    _, path, base = served
    loads = [
        (BROWSER, "GET"),
        (OUTLOOK, "GET"),  # the Outlook desktop client: a person opening it
        (APPLE_MPP, "GET"),
        (GMAIL, "GET"),
        (YAHOO, "GET"),
        (PROBE, "GET"),
        ("", "GET"),
        (None, "GET"),
        (BROWSER, "HEAD"),
    ]
    for agent, method in loads:
        got = _load(base + path, agent, method)
        assert got.status_code == 200, (agent, got.status_code)
        assert got.headers["content-type"] == "image/gif"
        assert "no-store" in got.headers["cache-control"]
        if method == "GET":
            assert got.content == GIF and got.content.startswith(b"GIF89a")
    info = store.ledger.get_send(KEY)
    assert info is not None and info.started_at is not None
    web_clock.now = info.started_at + timedelta(seconds=5)  # a gateway fetching on delivery
    assert _load(base + path).status_code == 200
    assert store.opens.by_kind(info.id) == {
        "human": 2,
        "apple_mpp": 1,
        "gmail_proxy": 1,
        "proxy": 1,
        "scanner": 4,
        "prefetch": 1,
    }
    assert store.opens.event_count() == len(loads) + 1


def test_a_burst_of_loads_is_counted_whole(served: Any, store: Store) -> None:
    _, path, base = served

    async def burst() -> list[int]:
        async with httpx.AsyncClient(headers={"User-Agent": BROWSER}) as client:
            got = await asyncio.gather(*(client.get(base + path) for _ in range(40)))
        return [r.status_code for r in got]

    assert asyncio.run(burst()) == [200] * 40
    info = store.ledger.get_send(KEY)
    assert info is not None
    assert store.opens.by_kind(info.id) == {"human": 40}
    assert sum(n for _, n in store.opens.by_hour(info.id)) == 40


def test_forged_altered_foreign_and_hostile_tokens_count_nothing(served: Any, store: Store) -> None:
    _, path, base = served
    token = path.rsplit("/", 1)[1]
    secret = SECRET.encode()
    altered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    bad = [
        altered,
        token + "A",
        make_token(b"another-secret-0123456789abcdef012345", Purpose.OPEN, KEY),  # forged
        make_token(secret, Purpose.OPEN, "issue:no-such-send"),  # a send we never made
        click_token(secret, KEY, 1),  # another purpose
        make_token(secret, Purpose.UNSUBSCRIBE, "reader@example.org"),
        "A" * 10_240,
        "=?utf-8?q?=0D=0AX-Evil:_1?=",
        "..%5C..%5Cetc",
        "%E2%80%AEfig",  # a bidi override
    ]
    for t in bad:
        got = _load(f"{base}/o/{t}")
        assert got.status_code == 400, t
        assert got.content == GIF and got.headers["content-type"] == "image/gif"  # no broken image
    for t in ("%00", token + "%00", "a%0D%0Ab"):  # control characters: the guard's 422, app-wide
        assert _load(f"{base}/o/{t}").status_code == 422, t
    assert store.opens.event_count() == 0


def _raw(base: str, path: str, agent: bytes) -> bytes:
    """One HTTP/1.1 request written by hand (no client library would send these bytes)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nUser-Agent: " + agent + b"\r\n\r\n")
        return sock.recv(4096)


def test_hostile_user_agents_are_classified_and_never_stored(served: Any, store: Store) -> None:
    _, path, base = served
    agents: list[str | bytes] = [
        "Mozilla/5.0 " + "x" * 10_240,
        "x" * 10_000 + " GoogleImageProxy",  # past what is looked at: an ordinary reader
        "=?utf-8?q?GoogleImageProxy?=",  # never decoded, but the words are there
        "\u202eMozilla/5.0 (evil)".encode(),
    ]
    for agent in agents:
        assert _load(base + path, agent).status_code == 200
    for agent in (b"a\x00b", b"a\rb"):  # refused by the HTTP parser before the app
        assert _raw(base, path, agent).startswith(b"HTTP/1.1 400"), agent
    # h11 takes a bare LF as a line end: a user agent "a" and a header we neither trust nor keep
    assert _raw(base, path, b"a\nX-Forwarded-For: 10.0.0.1").startswith(b"HTTP/1.1 200")
    info = store.ledger.get_send(KEY)
    assert info is not None
    assert store.opens.by_kind(info.id) == {"human": 4, "gmail_proxy": 1}
    with store.engine.connect() as conn:
        rows = [str(r) for t in (open_events, open_hours) for r in conn.execute(select(t))]
    assert rows and not any(s in r for r in rows for s in ("xxx", "evil", "Mozilla", "10.0.0.1"))


@pytest.mark.parametrize(
    "agent",
    ["", " ", "\x00", "a\r\nb", "\u202e\u2066", "=?utf-8?q?=0D=0A?=", "x" * 100_000, "Mozilla/5.0\x00"],
)
def test_classify_takes_any_string(agent: str) -> None:
    start = datetime(2026, 3, 2, 8, tzinfo=UTC)
    for at in (start + timedelta(seconds=1), start + timedelta(days=1)):
        assert classify_open("GET", agent, at, start, 60) in OPEN_KINDS


def test_timing_alone_makes_a_prefetch() -> None:
    start = datetime(2026, 3, 2, 8, tzinfo=UTC)
    assert classify_open("GET", BROWSER, start + timedelta(seconds=59), start, 60) == "prefetch"
    assert classify_open("GET", BROWSER, start + timedelta(seconds=61), start, 60) == "human"
    assert classify_open("GET", APPLE_MPP, start + timedelta(days=3), start, 60) == "apple_mpp"
    assert classify_open("get", GMAIL, start + timedelta(days=3), None, 60) == "gmail_proxy"


def test_nothing_stored_names_a_reader(served: Any, store: Store) -> None:
    _, path, base = served
    for agent in (BROWSER, GMAIL, APPLE_MPP):
        assert _load(base + path, agent).status_code == 200
    columns = {
        t.name: {c["name"] for c in inspect(store.engine).get_columns(t.name)}
        for t in (open_events, open_hours)
    }
    assert columns == {
        "open_events": {"id", "send_id", "at", "kind"},
        "open_hours": {"send_id", "hour", "kind", "opens"},
    }
    with store.engine.connect() as conn:
        rows = [str(r) for t in (open_events, open_hours) for r in conn.execute(select(t))]
    assert len(rows) == 6
    for needle in ("127.0.0.1", *READERS, "Firefox", "ggpht", "Mozilla"):
        assert not any(needle in r for r in rows), needle


def test_report_api_and_cli_show_opens_with_the_estimate_warning(
    served: Any, store: Store, project: Path, web_clock: Any
) -> None:
    _, path, base = served
    for agent in (BROWSER, BROWSER, BROWSER, APPLE_MPP, APPLE_MPP, GMAIL):
        assert _load(base + path, agent).status_code == 200
    info = store.ledger.get_send(KEY)
    assert info is not None
    got = httpx.get(f"{base}/api/sends/{info.id}/report", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert got.status_code == 200, got.text
    opens = got.json()["opens"]
    assert opens["human_opens"] == 3 and opens["open_rate"] == 1.5  # two delivered
    assert opens["machine_opens"] == {"apple_mpp": 2, "gmail_proxy": 1}
    assert [h["opens"] for h in opens["opens_by_hour"]] == [3]
    assert "opens are an estimate" in opens["note"].lower()
    said = CliRunner().invoke(app, ["report", KEY, "--config", str(project / "config.yaml")])
    assert said.exit_code == 0, said.output
    lines = dict(re.split(r"\s{2,}", ln.strip(), maxsplit=1) for ln in said.output.splitlines() if "  " in ln)
    assert lines["human opens"] == "3" and lines["open rate"] == "150.0%"
    assert lines["machine opens (apple_mpp)"] == "2" and lines["machine opens (gmail_proxy)"] == "1"
    assert "opens are an estimate" in said.output.lower()


def test_with_opens_off_the_reports_say_nothing_of_opens(
    project: Path,
    write_issue: Any,
    make_settings: Callable[..., Settings],
    store: Store,
    make_app: Callable[..., FastAPI],
    live_server: Any,
) -> None:
    settings = _project(write_issue, make_settings, store)
    _send(settings, store)
    info = store.ledger.get_send(KEY)
    assert info is not None
    store.opens.record([Open(info.id, datetime.now(UTC), "human")])  # even if some were stored once
    base = live_server(settings, make_app(settings, store)).url.rstrip("/")
    got = httpx.get(f"{base}/api/sends/{info.id}/report", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert got.status_code == 200 and "opens" not in got.json()
    said = CliRunner().invoke(app, ["report", KEY, "--config", str(project / "config.yaml")])
    assert said.exit_code == 0 and "open" not in said.output.lower()


def test_the_console_report_shows_opens_only_when_on(
    project: Path,
    write_issue: Any,
    make_settings: Callable[..., Settings],
    store: Store,
    make_app: Callable[..., FastAPI],
    web_clock: Any,
) -> None:
    settings = _project(write_issue, make_settings, store, opens=True)
    _send(settings, store)
    info = store.ledger.get_send(KEY)
    assert info is not None
    at = datetime.now(UTC)
    store.opens.record([Open(info.id, at, "human")] * 2 + [Open(info.id, at, "apple_mpp")])
    add_editor(store, "ann@example.org", PASSWORD, role="viewer", name="Ann", actor="cli", now=web_clock())
    pages = {}
    for opens in (True, False):
        shown = make_settings(site={"url": "http://testserver"}, analytics={"opens": opens})
        with TestClient(make_app(shown, store), base_url="http://testserver", follow_redirects=False) as c:
            fields = form_fields(c.get("/admin/login").text)
            form = {"csrf": fields["csrf"][0], "next": fields["next"][0], "email": "ann@example.org"}
            assert c.post("/admin/login", data={**form, "password": PASSWORD}).status_code == 303
            page = c.get(f"/admin/sends/{info.id}")
            assert page.status_code == 200
            pages[opens] = page.text
    assert 'id="opens-caption"' in pages[True] and "Opens are an estimate" in pages[True]
    assert re.search(r"Human</th><td>2<", pages[True]) and re.search(r"\(apple_mpp\)</th><td>1<", pages[True])
    assert "opens-caption" not in pages[False] and "estimate" not in pages[False]


def test_prune_deletes_old_events_and_keeps_the_hours(sent: Any, store: Store) -> None:
    settings, _ = sent
    info = store.ledger.get_send(KEY)
    assert info is not None
    old = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
    now = old + settings.analytics.retention + timedelta(days=1)
    store.opens.record([Open(info.id, old, "human")] * 2 + [Open(info.id, now, "human")])
    assert prune_opens(settings, store, now) == 2
    assert store.opens.event_count() == 1
    assert store.opens.by_hour(info.id)[0] == (datetime(2026, 1, 1, 9, tzinfo=UTC), 2)


def test_report_prune_deletes_old_opens_too(sent: Any, store: Store, project: Path) -> None:
    info = store.ledger.get_send(KEY)
    assert info is not None
    store.opens.record([Open(info.id, datetime(2020, 1, 1, tzinfo=UTC), "human")])
    said = CliRunner().invoke(app, ["report", "--prune", "--config", str(project / "config.yaml")])
    assert said.exit_code == 0, said.output
    assert "deleted 1 raw open event(s)" in said.output
    assert store.opens.event_count() == 0


def _sample(folder: Path, *, opens: bool) -> tuple[Path, Settings]:
    """The golden tests' sample project in ``folder``, with opens on or off."""
    config = copy_sample_project(folder)
    if opens:
        data = yaml.safe_load(config.read_text())
        data.setdefault("analytics", {})["opens"] = True
        config.write_text(yaml.safe_dump(data, allow_unicode=True))
    return config, load_settings(config, environ=golden_environ())


def _issue_mail(folder: Path, *, opens: bool) -> bytes:
    """`summer-of-water` as a subscriber receives it (the golden test's inputs), opens on or off."""
    _, settings = _sample(folder, opens=opens)
    assert settings.analytics.opens is opens
    with open_store(settings.database.url) as store:
        store.subscribers.add("zoe@example.org", now=SUBSCRIBED_AT, name="Zoë Lovelace")
        outcome = send_issue(settings, store, "summer-of-water", clock=lambda: SENT_AT)
    assert outcome.drain is not None and outcome.drain.sent == 1, outcome
    (eml,) = settings.paths.outbox.rglob("*.eml")
    return eml.read_bytes()


def test_the_rebuilt_email_with_opens_on_matches_golden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, update_golden: bool
) -> None:
    for key, value in golden_environ().items():
        if key.startswith("PUBLISHER_"):
            monkeypatch.setenv(key, value)
    on = _issue_mail(tmp_path / "on", opens=True)
    off = _issue_mail(tmp_path / "off", opens=False)  # tests/golden/issue-email.eml (test_golden.py)
    check_golden([("issue-email-opens.eml", on)], update=update_golden)
    (on_html, on_text), (off_html, off_text) = (_parts(data) for data in (on, off))
    assert len(PIXEL.findall(on_html)) == 1 and not PIXEL.search(off_html)
    assert "/o/" not in on_text and "/o/" not in off_text


def _parts(data: bytes) -> tuple[str, str]:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    html, text = msg.get_body(("html",)), msg.get_body(("plain",))
    assert html is not None and text is not None
    return html.get_content(), text.get_content()  # type: ignore[attr-defined]


def test_prepare_adds_the_image_alone_and_personalising_stays_a_join(
    make_settings: Callable[..., Settings],
) -> None:
    """The same rendered mail prepared with opens off and on: the HTML part gains the image, nothing else."""
    off = make_settings()
    on = off.model_copy(update={"analytics": off.analytics.model_copy(update={"opens": True})})
    html = (
        f'<html><body><p>Hi {slot("greeting")}</p><a href="{slot("unsubscribe_url")}">Leave</a></body></html>'
    )
    text = f"Hi\nLeave: {slot('unsubscribe_url')}\n"
    secret = SECRET.encode()
    args = {"subject": "S", "html": html, "text": text, "send_key": KEY, "date": SENT_AT, "feedback_id": "f"}
    made = {name: prepare_message(s, **args, click_secret=secret) for name, s in (("off", off), ("on", on))}
    assert not PIXEL.search(made["off"].html) and made["off"].html == html  # no links: nothing rewritten
    assert PIXEL.sub("", made["on"].html) == made["off"].html and made["on"].text == made["off"].text
    assert made["on"].slot_positions.keys() == made["off"].slot_positions.keys()  # no new slot
    assert prepare_message(on, **args).html == html  # no secret (a test copy, the build's file): no image
    reader = make_recipient(on, secret, KEY, "zoe@example.org", "Zoë")
    for prepared in made.values():
        assert _parts(prepared.personalise(reader))[0] == prepared.fill_html(reader)


def test_a_digest_carries_the_image_of_its_send(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in golden_environ().items():
        if key.startswith("PUBLISHER_"):
            monkeypatch.setenv(key, value)
    config, settings = _sample(tmp_path, opens=True)
    with open_store(settings.database.url) as store:
        store.subscribers.add(
            "asa@example.org", now=SUBSCRIBED_AT, frequency=Frequency.DAILY, timezone="Europe/London"
        )
    said = run_cli("digest", "daily", "--now", DIGEST_AT, "--config", str(config))
    assert "sent 1 message(s)" in said, said
    (eml,) = settings.paths.outbox.rglob("*.eml")
    html, text = _parts(eml.read_bytes())
    (src,) = PIXEL.findall(html)
    with open_store(settings.database.url) as store:
        (row,) = store.ledger.sends(limit=1)
    token = unescape(src).rsplit("/", 1)[1]
    assert read_token(settings.secret_key(), Purpose.OPEN, token) == row[0].key
    assert "/o/" not in text
