"""Hostile input in every field: clear 4xx answers, nothing stored, no markup in pages or mail."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from publisher.config import Settings
from publisher.store import Store, open_store
from publisher.tokens import Purpose, make_token
from publisher.web import ServerHandle
from tests.fixtures_content import article
from tests.fixtures_web import NS, Clock, main_text, outbox_messages, parse_html

SCRIPT = "<script>alert(1)</script>"
HOSTILE = [
    SCRIPT,
    "Ann\r\nBcc: victim@example.org",
    "Ann\nX-Injected: 1",
    "x" * 10_000,
    '"><img src=x onerror=alert(1)>',
    "\x00\x07",
    "=?utf-8?q?x=0D=0AContent-Type:_text/html=0D=0A=0D=0A<h1>hi</h1>?=",
    "=?utf-8?b?QW5uDQpCY2M6IHZAZXhhbXBsZS5vcmc=?=",
    "Ann\u2028Bcc: v@example.org",
    "Ann\x85X-Injected: 1",
    "\u202egnp.exe",
    "Ann \u2066evil\u2069",
]
GOOD = {"email": "ok@example.org", "name": "Ok", "frequency": "daily", "timezone": "Europe/Paris"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """SQLite only: these tests are about validation, which runs before the database is touched
    (the store tests run both backends)."""
    s = open_store(f"sqlite:///{tmp_path / 'hostile.db'}")
    yield s
    s.close()


@pytest.fixture
def client(
    web_settings: Callable[..., Settings], store: Store, make_app: Callable[..., FastAPI], write_issue
) -> Iterator[TestClient]:
    write_issue("issues/a.md", article("A", extra="tags: [science]"))
    with TestClient(make_app(web_settings(), store)) as c:
        yield c


def assert_no_injected_markup(html: str) -> None:
    doc = parse_html(html)
    scripts = doc.findall(".//h:script", NS)
    assert all("alert" not in "".join(s.itertext()) for s in scripts)
    assert doc.findall(".//h:img", NS) == []
    assert SCRIPT not in html and "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")


@pytest.mark.parametrize("field", ["email", "name", "frequency", "topics", "timezone"])
def test_subscribe_refuses_hostile_values(
    client: TestClient, store: Store, web_settings: Callable[..., Settings], field: str
) -> None:
    for value in HOSTILE:
        r = client.post("/subscribe", data={**GOOD, field: value})
        assert r.status_code == 422, (field, value[:20])
        assert field in main_text(r.text)  # the reason names the field
        assert_no_injected_markup(r.text)
    assert store.subscribers.count() == 0
    assert outbox_messages(web_settings()) == []


@pytest.mark.parametrize("field", ["name", "frequency", "topics", "timezone"])
def test_preferences_refuse_hostile_values(
    client: TestClient, store: Store, web_settings: Callable[..., Settings], web_clock: Clock, field: str
) -> None:
    store.subscribers.add(
        "p@example.org", now=web_clock(), name="Pat", frequency="weekly", topics=("science",)
    )
    before = store.subscribers.get("p@example.org")
    path = f"/preferences/{make_token(web_settings().secret_key(), Purpose.PREFERENCES, 'p@example.org')}"
    page = client.get(path)
    csrf = parse_html(page.text).find(".//h:input[@name='csrf']", NS).get("value")
    for value in HOSTILE:
        r = client.post(path, data={**GOOD, "csrf": csrf, field: value})
        assert r.status_code == 422, (field, value[:20])
        assert field in main_text(r.text)
        assert_no_injected_markup(r.text)
    assert store.subscribers.get("p@example.org") == before


def test_encoded_words_in_names_are_refused_with_the_reason(
    client: TestClient, store: Store, web_settings: Callable[..., Settings]
) -> None:
    r = client.post("/subscribe", data={**GOOD, "name": "=?utf-8?q?Ann?="})
    assert r.status_code == 422 and "'=?'" in main_text(r.text)
    assert store.subscribers.count() == 0 and outbox_messages(web_settings()) == []


@pytest.mark.parametrize("zone", ["posixrules", "right/UTC", "posix/Europe/Paris", "Factory", "localtime"])
def test_only_canonical_time_zones(client: TestClient, store: Store, zone: str) -> None:
    """Names the tz files carry that are no place a person lives: refused like unknown ones."""
    r = client.post("/subscribe", data={**GOOD, "timezone": zone})
    assert r.status_code == 422 and "time zone" in main_text(r.text)
    assert store.subscribers.count() == 0


def test_a_real_name_with_special_characters_is_kept_and_escaped(
    client: TestClient, store: Store, web_settings: Callable[..., Settings]
) -> None:
    name = 'Zoë O\'Brien & "Co" 李'
    r = client.post("/subscribe", data={**GOOD, "name": name})
    assert r.status_code == 200
    assert store.subscribers.get("ok@example.org").name == name
    [msg] = outbox_messages(web_settings())
    assert msg["To"].addresses[0].display_name == name
    html = msg.get_body(("html",)).get_content()
    assert "O&#39;Brien &amp; &#34;Co&#34;" in html or "O&#x27;Brien &amp; &quot;Co&quot;" in html
    assert name in msg.get_body(("plain",)).get_content()
    # exactly the headers we wrote: nothing smuggled in
    assert sorted(set(msg.keys())) == sorted(
        {
            "From",
            "To",
            "Reply-To",
            "Subject",
            "Date",
            "Message-ID",
            "Auto-Submitted",
            "MIME-Version",
            "Content-Type",
        }
    )


def test_unknown_and_too_many_topics(client: TestClient, store: Store) -> None:
    r = client.post("/subscribe", data={**GOOD, "topics": ["science", "bitcoin"]})
    assert r.status_code == 422 and "bitcoin" in main_text(r.text)
    r = client.post("/subscribe", data={**GOOD, "topics": ["science"] * 101})
    assert r.status_code == 422
    r = client.post("/subscribe", data={**GOOD, "topics": ["SCIENCE"]})  # case does not matter
    assert r.status_code == 200
    assert store.subscribers.get("ok@example.org").topics == ("science",)


def test_query_strings_and_odd_methods_are_harmless(client: TestClient) -> None:
    r = client.get("/subscribe", params={"email": SCRIPT, "name": SCRIPT})
    assert r.status_code == 200 and SCRIPT not in r.text
    assert client.put("/subscribe", data=GOOD).status_code == 405
    assert client.delete(f"/unsubscribe/{SCRIPT}").status_code == 405
    r = client.get("/confirm/<script>alert(1)<script>")
    assert r.status_code == 400 and "alert(1)" not in r.text
    r = client.get(f"/confirm/{SCRIPT}")  # the '/' in '</script>' makes it no confirm path at all
    assert r.status_code >= 400 and "alert(1)" not in r.text


@pytest.fixture
def server(web_server: ServerHandle) -> ServerHandle:
    return web_server


def test_bodies_over_64_kb_are_refused(
    server: ServerHandle, store: Store, web_settings: Callable[..., Settings]
) -> None:
    big = {**GOOD, "name": "x" * 70_000}
    unsub = f"/unsubscribe/{make_token(web_settings().secret_key(), Purpose.UNSUBSCRIBE, 'ok@example.org')}"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted while reading
        yield b"email=ok%40example.org&name="
        for _ in range(20):
            yield b"y" * 4096

    with httpx.Client(base_url=server.url) as http:
        declared = http.post("/subscribe", data=big)
        streamed = http.post(
            "/subscribe", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        one_click = http.post(unsub, content=b"x" * 100_000)
        api = http.request("DELETE", "/api/subscribers/ok@example.org", content=b"x" * 100_000)
    assert declared.status_code == streamed.status_code == one_click.status_code == 413
    assert "text/html" in declared.headers["content-type"]
    assert api.status_code == 413 and api.json()["error"]
    assert store.subscribers.count() == 0


def test_file_uploads_and_malformed_multipart_are_refused(client: TestClient, store: Store) -> None:
    r = client.post("/subscribe", data=GOOD, files={"name": ("evil.html", SCRIPT.encode(), "text/html")})
    assert r.status_code == 400 and SCRIPT not in r.text
    r = client.post(
        "/subscribe", content=b"--x\r\nbroken", headers={"Content-Type": "multipart/form-data; boundary=x"}
    )
    assert 400 <= r.status_code < 500
    assert store.subscribers.count() == 0
