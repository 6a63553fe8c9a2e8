"""Per-subscriber click counting (issue #16, item 1's per-reader part): off by default, said when on.

Real parts: issues sent by the file transport, the real app over real HTTP
(uvicorn), SQLite and PostgreSQL. The privacy test runs the same story twice
(reader A clicks, then in a fresh database reader B clicks) and compares every
table and column: with per-subscriber counting off the two databases are
identical, so nothing stored can tell who clicked; with it on they differ.
"""

from __future__ import annotations

import email
import email.policy
import re
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, inspect, select, text

from publisher.config import Settings
from publisher.ops.feedback import erase_subscriber
from publisher.ops.send import send_issue
from publisher.ops.sunset import sunset_tick
from publisher.store import Store, open_store
from publisher.store.engagement import Engagement
from publisher.store.schema import engagement, subscriber_clicks
from publisher.tokens import TokenError, click_token, read_reader_token, reader_token
from tests.fixtures_content import article
from tests.fixtures_send import FAST, SLUG, Clock
from tests.fixtures_web import SECRET
from tests.fixtures_web import Clock as WebClock

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
OUT = "https://trams.example.com/news?a=1&b=2"
BODY = f"The [trams]({OUT}) are back. See the [map](https://maps.example.com/lines)."
READERS = ("ana@example.org", "bo@example.org")
CLICKED_AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # long after the send: a person's click


def _messages(settings: Settings) -> dict[str, str]:
    """recipient -> HTML part of the mail the file transport wrote for them."""
    out: dict[str, str] = {}
    for eml in sorted(settings.paths.outbox.rglob("*.eml")):
        msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        html = msg.get_body(("html",))
        assert html is not None
        out[str(msg["To"].addresses[0].addr_spec)] = html.get_content()  # type: ignore[attr-defined]
    return out


def _redirects(html: str) -> list[str]:
    return [unescape(h) for h in re.findall(r'<a\b[^>]*?\shref="([^"]*)"', html) if "/r/" in h]


def _send(settings: Settings, store: Store) -> dict[str, str]:
    for address in READERS:
        store.subscribers.add(address, now=datetime(2026, 3, 1, tzinfo=UTC))
    send_issue(settings, store, SLUG, clock=Clock(), retry=FAST)
    return _messages(settings)


@pytest.fixture
def per_reader(
    project: Path, write_issue: Any, make_settings: Callable[..., Settings], store: Store
) -> tuple[Settings, dict[str, str]]:
    write_issue(f"issues/{SLUG}.md", article(title="Spring News", date="2026-03-01", body=BODY))
    settings = make_settings(database={"url": store.url}, analytics={"per_subscriber": True})
    return settings, _send(settings, store)


@pytest.fixture
def served(
    per_reader: tuple[Settings, dict[str, str]],
    store: Store,
    make_app: Callable[..., FastAPI],
    live_server: Any,
) -> tuple[Settings, dict[str, str], str]:
    settings, mails = per_reader
    app = make_app(settings, store, clock=WebClock(CLICKED_AT))
    return settings, mails, live_server(settings, app).url.rstrip("/")


def _get(base: str, settings: Settings, link: str, **kw: Any) -> httpx.Response:
    return httpx.get(base + link[len(settings.site.url) :], follow_redirects=False, timeout=10, **kw)


def _id(store: Store, address: str) -> int:
    sub = store.subscribers.get(address)
    assert sub is not None and sub.id is not None
    return sub.id


# -- tokens -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hostile",
    ["", "a\r\nb", "x\x00y", "=?utf-8?q?1?=", "\u202eabc", "x" * 10_000, "AAAA", "a.b", "a/b"],
)
def test_a_hostile_reader_token_is_refused(hostile: str) -> None:
    with pytest.raises(TokenError):
        read_reader_token(SECRET.encode(), "issue:x", hostile)


def test_a_reader_token_names_one_reader_of_one_send_and_cannot_be_altered() -> None:
    secret = SECRET.encode()
    token = reader_token(secret, "issue:x", 42)
    assert read_reader_token(secret, "issue:x", token) == 42
    assert "42" not in token and len(token) < 40
    for wrong in (
        lambda: read_reader_token(secret, "issue:y", token),  # moved onto another send's links
        lambda: read_reader_token(b"another-secret-0123456789abcdef0123", "issue:x", token),
        lambda: read_reader_token(secret, "issue:x", token[:-1] + ("A" if token[-1] != "A" else "B")),
        lambda: read_reader_token(secret, "issue:x", click_token(secret, "issue:x", 1)),  # other purpose
    ):
        with pytest.raises(TokenError):
            wrong()
    assert reader_token(secret, "issue:x", 43) != token


# -- the mail ---------------------------------------------------------------------------------------


def test_each_reader_gets_the_same_links_with_their_own_reader_part(
    per_reader: tuple[Settings, dict[str, str]], store: Store
) -> None:
    _, mails = per_reader
    links = {address: _redirects(html) for address, html in mails.items()}
    ana, bo = links[READERS[0]], links[READERS[1]]
    assert len(ana) == len(bo) >= 2
    for address, found in links.items():
        readers = {link.rsplit(".", 1)[1] for link in found}
        assert len(readers) == 1, "one reader part per message, the same on every link"
        assert read_reader_token(SECRET.encode(), f"issue:{SLUG}", readers.pop()) == _id(store, address)
    assert [a.rsplit(".", 1)[0] for a in ana] == [b.rsplit(".", 1)[0] for b in bo]  # the link parts agree
    assert ana != bo


def test_with_per_subscriber_off_the_links_name_no_reader(
    project: Path, write_issue: Any, make_settings: Callable[..., Settings], store: Store
) -> None:
    write_issue(f"issues/{SLUG}.md", article(title="Spring News", date="2026-03-01", body=BODY))
    settings = make_settings(database={"url": store.url})
    mails = _send(settings, store)
    ana, bo = (_redirects(mails[a]) for a in READERS)
    assert ana == bo and ana and not any("." in link.rsplit("/", 1)[1] for link in ana)


# -- clicks over HTTP -------------------------------------------------------------------------------


def test_a_click_records_who_clicked_and_lands_at_the_url(
    served: tuple[Settings, dict[str, str], str], store: Store
) -> None:
    settings, mails, base = served
    link = next(lk for lk in _redirects(mails[READERS[1]]))
    got = _get(base, settings, link, headers={"User-Agent": BROWSER})
    assert got.status_code == 302 and got.headers["location"].startswith("https://")
    bo = _id(store, READERS[1])
    assert [(at, kind) for _, at, kind in Engagement(store).clicks_by(bo)] == [(CLICKED_AT, "human")]
    assert Engagement(store).clicks_by(_id(store, READERS[0])) == []
    with store.read() as conn:
        row = conn.execute(select(engagement).where(engagement.c.subscriber_id == bo)).one()
    assert (row.last_click_at, row.human_clicks, row.sunset) == (CLICKED_AT, 1, None)
    # a scanner's fetch is recorded apart and moves nothing on
    assert _get(base, settings, link, headers={"User-Agent": "python-requests/2.32"}).status_code == 302
    assert [k for _, _, k in Engagement(store).clicks_by(bo)] == ["human", "scanner"]
    with store.read() as conn:
        assert conn.execute(select(engagement.c.human_clicks)).scalar_one() == 1


def test_altered_forged_or_moved_reader_parts_are_refused_and_nothing_is_written(
    served: tuple[Settings, dict[str, str], str], store: Store
) -> None:
    settings, mails, base = served
    link = _redirects(mails[READERS[0]])[0]
    head, reader = link.rsplit(".", 1)
    flipped = reader[:5] + ("A" if reader[5] != "A" else "B") + reader[6:]
    forged = reader_token(b"not-our-secret-0123456789abcdef0123", f"issue:{SLUG}", _id(store, READERS[1]))
    other_send = reader_token(SECRET.encode(), "issue:another", _id(store, READERS[1]))
    for bad in (flipped, forged, other_send, reader + "x", "%0d%0a", "=?utf-8?q?1?=", "x" * 1500):
        got = _get(base, settings, f"{head}.{bad}", headers={"User-Agent": BROWSER})
        # control characters are refused by the app's guard before any route (422), the rest here
        assert got.status_code == (422 if bad == "%0d%0a" else 400), bad
    assert store.clicks.event_count() == 0
    with store.read() as conn:
        assert conn.execute(select(subscriber_clicks)).all() == []
        assert conn.execute(select(engagement)).all() == []


def test_a_link_without_its_reader_part_still_counts_but_names_nobody(
    served: tuple[Settings, dict[str, str], str], store: Store
) -> None:
    settings, mails, base = served
    head = _redirects(mails[READERS[0]])[0].rsplit(".", 1)[0]
    assert _get(base, settings, head, headers={"User-Agent": BROWSER}).status_code == 302
    assert store.clicks.event_count() == 1
    with store.read() as conn:
        assert conn.execute(select(subscriber_clicks)).all() == []


def test_links_mailed_before_it_was_turned_off_name_nobody(
    per_reader: tuple[Settings, dict[str, str]],
    store: Store,
    make_settings: Callable[..., Settings],
    make_app: Callable[..., FastAPI],
    live_server: Any,
) -> None:
    _, mails = per_reader  # sent with per-subscriber counting on...
    off = make_settings(analytics={"per_subscriber": False})  # ...which is off when the reader clicks
    base = live_server(off, make_app(off, store, clock=WebClock(CLICKED_AT))).url.rstrip("/")
    link = _redirects(mails[READERS[0]])[0]
    assert _get(base, off, link, headers={"User-Agent": BROWSER}).status_code == 302
    assert store.clicks.event_count() == 1
    with store.read() as conn:
        assert conn.execute(select(subscriber_clicks)).all() == []
        assert conn.execute(select(engagement)).all() == []


# -- nothing stored can tell who clicked (every table, every column) -------------------------------


def _dump(url: str) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table, as sorted tuples of text (the whole database, nothing left out)."""
    engine = create_engine(url)
    try:
        found: dict[str, list[tuple[str, ...]]] = {}
        with engine.connect() as conn:
            for table in sorted(inspect(conn).get_table_names()):
                rows = conn.execute(text(f'SELECT * FROM "{table}"')).all()
                found[table] = sorted(tuple(repr(v) for v in row) for row in rows)
        return found
    finally:
        engine.dispose()


def _story(
    url: str,
    clicker: str,
    *,
    per_subscriber: bool,
    make_settings: Callable[..., Settings],
    make_app: Callable[..., FastAPI],
    live_server: Any,
) -> dict[str, list[tuple[str, ...]]]:
    """Two readers get the issue; ``clicker`` follows each link of their mail (and a scanner once)."""
    settings = make_settings(database={"url": url}, analytics={"per_subscriber": per_subscriber})
    shutil.rmtree(settings.paths.outbox, ignore_errors=True)
    with open_store(url) as store:
        mails = _send(settings, store)
        base = live_server(settings, make_app(settings, store, clock=WebClock(CLICKED_AT))).url.rstrip("/")
        links = _redirects(mails[clicker])
        for link in links:
            assert _get(base, settings, link, headers={"User-Agent": BROWSER}).status_code == 302
        assert _get(base, settings, links[0], headers={"User-Agent": "curl/8.5"}).status_code == 302
        assert store.clicks.event_count() == len(links) + 1
    return _dump(url)


@pytest.fixture
def two_urls(db_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two fresh, empty databases of the same kind."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
        return
    make = request.getfixturevalue("pg_schema_url")
    yield make(), make()


@pytest.mark.parametrize("per_subscriber", [False, True], ids=["off", "on"])
def test_only_with_per_subscriber_on_can_the_database_tell_who_clicked(
    per_subscriber: bool,
    two_urls: tuple[str, str],
    project: Path,
    write_issue: Any,
    make_settings: Callable[..., Settings],
    make_app: Callable[..., FastAPI],
    live_server: Any,
) -> None:
    write_issue(f"issues/{SLUG}.md", article(title="Spring News", date="2026-03-01", body=BODY))
    kw = {"per_subscriber": per_subscriber, "make_settings": make_settings}
    ana = _story(two_urls[0], READERS[0], make_app=make_app, live_server=live_server, **kw)  # type: ignore[arg-type]
    bo = _story(two_urls[1], READERS[1], make_app=make_app, live_server=live_server, **kw)  # type: ignore[arg-type]
    assert set(ana) == set(bo) and "click_events" in ana and "subscriber_clicks" in ana
    assert ana["click_events"] and ana["click_hours"]  # the clicks were recorded...
    differ = sorted(t for t in ana if ana[t] != bo[t])
    if per_subscriber:
        assert differ == ["engagement", "subscriber_clicks"]  # ...and with it on, who made them
    else:
        assert differ == []  # ...and nothing, in any table or column, says whose they were
        assert ana["subscriber_clicks"] == [] and ana["engagement"] == []


def test_turning_per_subscriber_off_erases_who_clicked(
    served: tuple[Settings, dict[str, str], str], store: Store, make_settings: Callable[..., Settings]
) -> None:
    settings, mails, base = served
    for address in READERS:
        link = _redirects(mails[address])[0]
        assert _get(base, settings, link, headers={"User-Agent": BROWSER}).status_code == 302
    sunset_tick(settings, store, clock=lambda: CLICKED_AT)
    with store.read() as conn:
        assert len(conn.execute(select(subscriber_clicks)).all()) == 2
    off = make_settings(analytics={"per_subscriber": False})
    report = sunset_tick(off, store, clock=lambda: CLICKED_AT + timedelta(minutes=1))
    assert not report.tracking and report.forgotten >= 4
    with store.read() as conn:
        assert conn.execute(select(subscriber_clicks)).all() == []
        assert conn.execute(select(engagement)).all() == []
    assert store.clicks.event_count() == 2  # the per-link counts stay


def test_erasing_a_subscriber_erases_their_clicks(
    served: tuple[Settings, dict[str, str], str], store: Store
) -> None:
    settings, mails, base = served
    for address in READERS:
        link = _redirects(mails[address])[0]
        assert _get(base, settings, link, headers={"User-Agent": BROWSER}).status_code == 302
    bo = _id(store, READERS[1])
    assert erase_subscriber(store, settings, READERS[1], now=CLICKED_AT)
    with store.read() as conn:
        assert {r.subscriber_id for r in conn.execute(select(subscriber_clicks))} == {_id(store, READERS[0])}
        assert bo not in set(conn.execute(select(engagement.c.subscriber_id)).scalars())
    # a click through the erased reader's old mail still lands, counted per link only
    assert (
        _get(base, settings, _redirects(mails[READERS[1]])[1], headers={"User-Agent": BROWSER}).status_code
        == 302
    )
    assert store.clicks.event_count() == 3
    with store.read() as conn:
        assert len(conn.execute(select(subscriber_clicks)).all()) == 1
