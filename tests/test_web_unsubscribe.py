"""One-click unsubscribe (RFC 8058) over real HTTP, and the preferences form with its CSRF defences."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from publisher.config import Settings
from publisher.models import Frequency, SubscriberStatus
from publisher.store import Store
from publisher.store.engine import WriteBusyError
from publisher.store.schema import subscribers as subscribers_table
from publisher.tokens import Purpose, make_token
from publisher.web import ServerHandle
from tests.fixtures_content import article
from tests.fixtures_store import add_subscribers
from tests.fixtures_web import Clock, form_fields, main_text

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def server(web_server: ServerHandle) -> ServerHandle:
    return web_server


def token(settings: Settings, purpose: Purpose, address: str) -> str:
    return make_token(settings.secret_key(), purpose, address)


def test_one_click_post_multipart_and_urlencoded_without_cookies(
    server: ServerHandle, web_settings: Callable[..., Settings], store: Store, web_clock: Clock
) -> None:
    settings = web_settings()
    for address in ("multi@example.org", "form@example.org"):
        store.subscribers.add(address, now=web_clock())
    with httpx.Client(base_url=server.url, follow_redirects=False) as http:
        multi = http.post(
            f"/unsubscribe/{token(settings, Purpose.UNSUBSCRIBE, 'multi@example.org')}",
            files={"List-Unsubscribe": (None, "One-Click")},
        )
        assert multi.request.headers["content-type"].startswith("multipart/form-data")
        form = http.post(
            f"/unsubscribe/{token(settings, Purpose.UNSUBSCRIBE, 'form@example.org')}", data=ONE_CLICK
        )
        assert form.request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert "cookie" not in form.request.headers
    for r in (multi, form):
        assert r.status_code == 200
        assert "location" not in r.headers and "set-cookie" not in r.headers
        assert "You are unsubscribed" in main_text(r.text)
    for address in ("multi@example.org", "form@example.org"):
        assert store.subscribers.get(address).status is SubscriberStatus.UNSUBSCRIBED


def test_get_never_unsubscribes_and_shows_a_button(
    server: ServerHandle, web_settings: Callable[..., Settings], store: Store, web_clock: Clock
) -> None:
    settings = web_settings()
    store.subscribers.add("reader@example.org", now=web_clock())
    path = f"/unsubscribe/{token(settings, Purpose.UNSUBSCRIBE, 'reader@example.org')}"
    with httpx.Client(base_url=server.url) as http:
        for _ in range(3):
            page = http.get(path)
            assert page.status_code == 200
            assert http.head(path).status_code == 200
        fields = form_fields(page.text)
        assert fields == {"List-Unsubscribe": ["One-Click"]}
        assert store.subscribers.get("reader@example.org").status is SubscriberStatus.CONFIRMED
        assert "reader@example.org" in main_text(page.text)
        # the button posts back to the same URL
        first = http.post(path, data=fields_to_data(fields))
        again = http.post(path, data=ONE_CLICK)  # idempotent
    assert first.status_code == again.status_code == 200
    assert main_text(first.text) == main_text(again.text)
    assert store.subscribers.get("reader@example.org").status is SubscriberStatus.UNSUBSCRIBED


def fields_to_data(fields: dict[str, list[str]]) -> dict[str, str]:
    return {k: v[0] for k, v in fields.items()}


def test_unknown_address_answers_the_same_and_bounced_stays_bounced(
    server: ServerHandle, web_settings: Callable[..., Settings], store: Store, web_clock: Clock
) -> None:
    settings = web_settings()
    store.subscribers.add("known@example.org", now=web_clock())
    store.subscribers.add("bounced@example.org", now=web_clock(), status="bounced")
    with httpx.Client(base_url=server.url) as http:
        known = http.post(f"/unsubscribe/{token(settings, Purpose.UNSUBSCRIBE, 'known@example.org')}")
        unknown = http.post(f"/unsubscribe/{token(settings, Purpose.UNSUBSCRIBE, 'ghost@example.org')}")
        bounced = http.post(f"/unsubscribe/{token(settings, Purpose.UNSUBSCRIBE, 'bounced@example.org')}")
    assert known.status_code == unknown.status_code == bounced.status_code == 200
    assert main_text(known.text).replace("known", "X") == main_text(unknown.text).replace("ghost", "X")
    assert store.subscribers.get("ghost@example.org") is None
    assert store.subscribers.get("bounced@example.org").status is SubscriberStatus.BOUNCED


def test_tokens_of_other_purposes_forged_or_tampered_are_refused(
    server: ServerHandle, web_settings: Callable[..., Settings], store: Store, web_clock: Clock
) -> None:
    settings = web_settings()
    store.subscribers.add("t@example.org", now=web_clock())
    good = token(settings, Purpose.UNSUBSCRIBE, "t@example.org")
    bad = [
        token(settings, Purpose.CONFIRM, "t@example.org"),
        token(settings, Purpose.PREFERENCES, "t@example.org"),
        good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        make_token(b"another-secret", Purpose.UNSUBSCRIBE, "t@example.org"),
        "dA.x.y",
        "x" * 5000,
    ]
    with httpx.Client(base_url=server.url) as http:
        pages = [http.post(f"/unsubscribe/{t}", data=ONE_CLICK) for t in bad]
        pages += [http.get(f"/unsubscribe/{t}") for t in bad]
        pages += [http.get(f"/preferences/{token(settings, Purpose.UNSUBSCRIBE, 't@example.org')}")]
    texts = set()
    for r in pages:
        assert r.status_code == 400
        assert "t@example.org" not in r.text
        texts.add(main_text(r.text))
    assert len(texts) == 1  # the same plain page whatever was wrong
    assert store.subscribers.get("t@example.org").status is SubscriberStatus.CONFIRMED


def test_concurrent_one_click_posts_commit_before_each_answer_and_stay_idempotent(
    server: ServerHandle, web_settings: Callable[..., Settings], store: Store, web_clock: Clock
) -> None:
    """Many clicks at once share a write; each 200 means that address's row is already committed."""
    settings = web_settings()
    readers = add_subscribers(store, 40)
    store.subscribers.add("bounced@example.org", now=web_clock(), status="bounced")
    store.subscribers.add("pending@example.org", now=web_clock(), status="pending")
    addresses = [*readers, "bounced@example.org", "pending@example.org", "ghost@example.org"]
    stopped = {a for a in addresses if a not in ("bounced@example.org", "ghost@example.org")}
    clicks = addresses * 3  # every link clicked three times, all at once

    async def click(http: httpx.AsyncClient, address: str) -> tuple[str, httpx.Response, object]:
        r = await http.post(f"/unsubscribe/{token(settings, Purpose.UNSUBSCRIBE, address)}", data=ONE_CLICK)
        sub = store.subscribers.get(address)  # read on another connection as soon as the answer is in
        return address, r, sub.status if sub else None

    async def burst() -> list[tuple[str, httpx.Response, object]]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as http:
            return await asyncio.gather(*(click(http, a) for a in clicks))

    answers = asyncio.run(burst())
    texts = set()
    for address, r, status in answers:
        assert r.status_code == 200, address
        texts.add(main_text(r.text).replace(address, "X"))
        if address in stopped:
            assert status is SubscriberStatus.UNSUBSCRIBED, address
    assert len(texts) == 1  # the same answer for every address, known or not
    assert store.subscribers.get("bounced@example.org").status is SubscriberStatus.BOUNCED
    assert store.subscribers.get("ghost@example.org") is None
    counts = store.subscribers.counts_by_status()
    assert counts == {"unsubscribed": len(stopped), "bounced": 1}


def test_one_click_waits_for_another_writer_without_blocking_the_server(
    server: ServerHandle, web_settings: Callable[..., Settings], store: Store, web_clock: Clock
) -> None:
    """While another connection holds the write lock (SQLite) or the row (PostgreSQL), the POST
    is not answered, other requests are, and the 200 comes once the row is written."""
    settings = web_settings()
    store.subscribers.add("held@example.org", now=web_clock())
    path = f"/unsubscribe/{token(settings, Purpose.UNSUBSCRIBE, 'held@example.org')}"
    answers: list[httpx.Response] = []
    with store.write() as conn:  # like a send's ledger write, held open
        conn.execute(
            subscribers_table.update()
            .where(subscribers_table.c.email == "held@example.org")
            .values(name="Held")
        )
        poster = threading.Thread(target=lambda: answers.append(httpx.post(server.url + path, timeout=60)))
        poster.start()
        with httpx.Client(base_url=server.url) as http:
            for _ in range(3):
                assert http.get(path).status_code == 200  # the event loop still serves
        poster.join(0.2)
        assert poster.is_alive() and not answers  # no 200 before the row can be written
    poster.join(60)
    assert [r.status_code for r in answers] == [200]
    sub = store.subscribers.get("held@example.org")
    assert sub.status is SubscriberStatus.UNSUBSCRIBED and sub.name == "Held"


def test_unsubscribe_many_changes_only_leaving_rows(store: Store, web_clock: Clock) -> None:
    now = web_clock()
    for address, status in (("a@example.org", "confirmed"), ("b@example.org", "pending")):
        store.subscribers.add(address, now=now, status=status)
    store.subscribers.add("c@example.org", now=now, status="complained")
    batch = [(a, now) for a in ("A@Example.org", "b@example.org", "c@example.org", "nobody@example.org")]
    assert store.subscribers.unsubscribe_many([*batch, ("not an address", now)]) == 2
    assert store.subscribers.unsubscribe_many(batch) == 0  # idempotent
    statuses = {
        a: store.subscribers.get(a).status for a in ("a@example.org", "b@example.org", "c@example.org")
    }
    assert statuses == {
        "a@example.org": SubscriberStatus.UNSUBSCRIBED,
        "b@example.org": SubscriberStatus.UNSUBSCRIBED,
        "c@example.org": SubscriberStatus.COMPLAINED,
    }


def test_write_now_fails_at_once_while_sqlite_is_locked(store: Store, web_clock: Clock) -> None:
    if store.dialect != "sqlite":
        pytest.skip("SQLite's database-wide write lock")
    store.subscribers.add("d@example.org", now=web_clock())
    held = store.connect()
    try:
        with store.write(), pytest.raises(WriteBusyError):  # another connection writing
            store.subscribers.unsubscribe_many([("d@example.org", web_clock())], conn=held)
        assert store.subscribers.unsubscribe_many([("d@example.org", web_clock())], conn=held) == 1
    finally:
        held.close()
    assert store.subscribers.get("d@example.org").status is SubscriberStatus.UNSUBSCRIBED


# -- preferences -------------------------------------------------------------------------------


@pytest.fixture
def prefs(
    web_settings: Callable[..., Settings],
    store: Store,
    make_app: Callable[..., FastAPI],
    write_issue,
    web_clock: Clock,
):
    write_issue("issues/a.md", article("A", extra="tags: [science, food]"))
    settings = web_settings()
    store.subscribers.add(
        "p@example.org", now=web_clock(), name="Pat", topics=("science",), timezone="Europe/London"
    )
    with TestClient(make_app(settings, store)) as client:
        yield client, f"/preferences/{token(settings, Purpose.PREFERENCES, 'p@example.org')}"


def test_preferences_show_and_save(prefs, store: Store) -> None:
    client, path = prefs
    page = client.get(path)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    fields = form_fields(page.text)
    assert fields["name"] == ["Pat"] and fields["timezone"] == ["Europe/London"]
    assert sorted(fields["topics"]) == ["*science", "food"]
    r = client.post(
        path,
        data={
            "csrf": fields["csrf"][0],
            "name": "Pat Q",
            "frequency": "weekly",
            "topics": ["food"],
            "timezone": "America/New_York",
        },
    )
    assert r.status_code == 200 and "saved" in main_text(r.text)
    sub = store.subscribers.get("p@example.org")
    assert (sub.name, sub.frequency, sub.topics, sub.timezone) == (
        "Pat Q",
        Frequency.WEEKLY,
        ("food",),
        "America/New_York",
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "https://evil.example.com"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    ],
)
def test_preferences_refuse_cross_site_posts(prefs, store: Store, headers: dict[str, str]) -> None:
    client, path = prefs
    csrf = form_fields(client.get(path).text)["csrf"][0]
    data = {"csrf": csrf, "name": "Hacked", "frequency": "daily", "timezone": "UTC"}
    r = client.post(path, data=data, headers=headers)
    assert r.status_code == 403
    assert store.subscribers.get("p@example.org").name == "Pat"
    ok = client.post(
        path, data=data, headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    )
    assert ok.status_code == 200 and store.subscribers.get("p@example.org").name == "Hacked"


def test_preferences_need_a_csrf_token_bound_to_this_link(
    prefs, store: Store, web_settings: Callable[..., Settings], web_clock: Clock
) -> None:
    client, path = prefs
    settings = web_settings()
    store.subscribers.add("other@example.org", now=web_clock())
    other_path = f"/preferences/{token(settings, Purpose.PREFERENCES, 'other@example.org')}"
    other_csrf = form_fields(client.get(other_path).text)["csrf"][0]
    data = {"name": "Hacked", "frequency": "daily", "timezone": "UTC"}
    for csrf in (None, "", "garbage", other_csrf):
        body = dict(data, **({"csrf": csrf} if csrf is not None else {}))
        r = client.post(path, data=body)
        assert r.status_code == 403, csrf
    assert store.subscribers.get("p@example.org").name == "Pat"


def test_preferences_for_a_removed_subscriber(prefs, store: Store) -> None:
    client, path = prefs
    store.subscribers.remove("p@example.org")
    r = client.get(path)
    assert r.status_code == 404 and "no subscription" in main_text(r.text)
