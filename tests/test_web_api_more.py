"""The admin API's list/add/change/send routes and /api/docs; `serve`'s start line; web.public_url."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from publisher.config import Settings
from publisher.models import Frequency, SubscriberStatus
from publisher.ops.confirm import confirmations_go_to
from publisher.store import Filter, Store
from tests.fixtures_content import article
from tests.fixtures_web import API_TOKEN, SECRET, Clock, form_fields, link_from, outbox_messages
from tests.polling import wait_for

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def api(
    web_settings: Callable[..., Settings], store: Store, make_app: Callable[..., FastAPI], write_issue: Any
) -> Iterator[TestClient]:
    write_issue("issues/first.md", article("First", date="2026-03-01", extra="tags: [science]"))
    write_issue("issues/later.md", article("Later", date="2026-03-02", extra="draft: true"))
    with TestClient(make_app(web_settings(), store)) as client:
        yield client


def _fill(store: Store, now: Any, n: int = 250) -> None:
    statuses = list(SubscriberStatus)
    frequencies = list(Frequency)
    for i in range(n):
        store.subscribers.add(
            f"reader{i:03d}@example.org",
            now=now,
            name=f"Reader {i} {'Smith' if i % 7 == 0 else 'Jones'}",
            status=statuses[i % len(statuses)],
            frequency=frequencies[i % len(frequencies)],
            topics=("science",) if i % 2 else ("food", "art"),
        )


def _all_pages(api: TestClient, query: dict[str, Any]) -> list[str]:
    seen: list[str] = []
    after = 0
    for _ in range(100):
        r = api.get("/api/subscribers", params={**query, "after": after, "limit": 17}, headers=AUTH)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= 17
        seen += [s["email"] for s in body["items"]]
        if body["next"] is None:
            return seen
        after = body["next"]
    raise AssertionError("paging did not end")


@pytest.mark.parametrize(
    ("query", "wanted"),
    [
        ({}, Filter()),
        ({"status": "confirmed"}, Filter(status=SubscriberStatus.CONFIRMED)),
        ({"frequency": "weekly", "topic": "science"}, Filter(frequency=Frequency.WEEKLY, topic="science")),
        ({"search": "smith", "status": "pending"}, Filter(search="smith", status=SubscriberStatus.PENDING)),
        ({"topic": "nothing"}, Filter(topic="nothing")),
    ],
)
def test_paging_with_filters_returns_each_subscriber_once(
    api: TestClient, store: Store, web_clock: Clock, query: dict[str, str], wanted: Filter
) -> None:
    _fill(store, web_clock())
    seen = _all_pages(api, query)
    expected = [s.email for s in store.subscribers.list(wanted)]
    assert seen == expected  # each once, in id order, nothing missed
    assert len(set(seen)) == len(seen)
    if not query:
        assert len(seen) == 250


def test_listing_refuses_bad_parameters(api: TestClient) -> None:
    for params in ({"status": "gone"}, {"limit": 0}, {"limit": 5000}, {"after": -1}, {"search": "x" * 300}):
        assert api.get("/api/subscribers", params=params, headers=AUTH).status_code == 422, params


def test_add_and_change_a_subscriber(api: TestClient, store: Store) -> None:
    body = {"email": "Ann@Example.org", "name": "Ann", "topics": ["Science"], "timezone": "Europe/Paris"}
    r = api.post("/api/subscribers", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    assert r.json()["email"] == "ann@example.org" and r.json()["topics"] == ["science"]
    assert api.post("/api/subscribers", json=body, headers=AUTH).status_code == 409

    r = api.patch(
        "/api/subscribers/ann@example.org",
        json={"name": "Ann B", "frequency": "weekly", "topics": [], "status": "unsubscribed"},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    sub = store.subscribers.get("ann@example.org")
    assert (sub.name, sub.frequency, sub.topics, sub.status) == (
        "Ann B",
        Frequency.WEEKLY,
        (),
        SubscriberStatus.UNSUBSCRIBED,
    )
    assert api.patch("/api/subscribers/nobody@example.org", json={}, headers=AUTH).status_code == 404
    for status in ("bounced", "pending"):  # only confirmed/unsubscribed may be set by hand
        r = api.patch("/api/subscribers/ann@example.org", json={"status": status}, headers=AUTH)
        assert r.status_code == 422
    store.subscribers.set_status("ann@example.org", "complained", now=sub.updated_at)
    r = api.patch("/api/subscribers/ann@example.org", json={"status": "confirmed"}, headers=AUTH)
    assert r.status_code == 409 and "complained" in r.json()["error"]


HOSTILE: list[dict[str, Any]] = [
    {"name": "=?utf-8?q?Eve=0D=0ABcc:_all@example.org?="},
    {"name": "Eve\r\nBcc: all@example.org"},
    {"name": "Eve\x00"},
    {"name": "x" * 10_240},
    {"name": "<script>"},
    {"timezone": "Mars/Olympus"},
    {"timezone": "right/UTC"},
    {"timezone": "x" * 10_240},
    {"topics": ["bad;topic\n"]},
    {"topics": ["t" * 10_240]},
    {"frequency": "hourly"},
    {"unknown": "field"},
]


@pytest.mark.parametrize("bad", HOSTILE, ids=lambda b: next(iter(b)) + ":" + repr(b[next(iter(b))])[:20])
def test_hostile_input_is_refused_and_nothing_is_stored(
    api: TestClient, store: Store, web_clock: Clock, bad: dict[str, Any]
) -> None:
    store.subscribers.add("bob@example.org", now=web_clock(), name="Bob")
    before = store.subscribers.get("bob@example.org")
    r = api.post("/api/subscribers", json={"email": "eve@example.org", **bad}, headers=AUTH)
    assert r.status_code == 422, r.text
    assert store.subscribers.get("eve@example.org") is None
    r = api.patch("/api/subscribers/bob@example.org", json={"name": "Robert", **bad}, headers=AUTH)
    assert r.status_code == 422, r.text
    assert store.subscribers.get("bob@example.org") == before


@pytest.mark.parametrize("email", ["eve\r\n@example.org", "no-at-sign", "x" * 300 + "@example.org", ""])
def test_bad_addresses_are_refused(api: TestClient, store: Store, email: str) -> None:
    assert api.post("/api/subscribers", json={"email": email}, headers=AUTH).status_code == 422
    assert store.subscribers.count() == 0


def test_send_answers_202_then_shows_in_sends_and_refuses_a_second(
    api: TestClient, store: Store, web_clock: Clock
) -> None:
    store.subscribers.add("ann@example.org", now=web_clock(), name="Ann")
    r = api.post("/api/issues/first/send", headers=AUTH)
    assert r.status_code == 202, r.text
    assert r.json() == {"key": "issue:first", "slug": "first"}

    def sent() -> list[dict[str, Any]]:
        return [s for s in api.get("/api/sends", headers=AUTH).json() if s["key"] == "issue:first"]

    wait_for(lambda: sent() and sent()[0]["pending"] == 0)
    [send] = sent()
    assert (send["planned"], send["sent"]) == (1, 1)
    again = api.post("/api/issues/first/send", headers=AUTH)
    assert again.status_code == 409 and "already sent" in again.json()["error"]
    assert api.post("/api/issues/later/send", headers=AUTH).status_code == 409  # a draft
    assert api.post("/api/issues/nope/send", headers=AUTH).status_code == 404
    assert api.post("/api/issues/first/send").status_code == 401


def test_a_broken_issue_elsewhere_does_not_block_a_send(
    api: TestClient, store: Store, write_issue: Any
) -> None:
    write_issue("issues/broken.md", "---\ntitle: [unclosed\n---\nBody\n")
    assert api.post("/api/issues/first/send", headers=AUTH).status_code == 202
    r = api.post("/api/issues/broken/send", headers=AUTH)
    assert r.status_code == 409 and "problems" in r.json()["error"]


def test_a_send_already_started_here_is_refused(api: TestClient) -> None:
    api.app.state.api_sends = {"issue:first"}  # as while a background send is still running
    r = api.post("/api/issues/first/send", headers=AUTH)
    assert r.status_code == 409 and "running" in r.json()["error"]


def test_docs_need_the_token_and_list_every_path(api: TestClient) -> None:
    assert api.get("/api/docs").status_code == 401
    assert api.get("/api/docs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = api.get("/api/docs", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<script" not in r.text
    spec = api.get("/openapi.json").json()
    assert "/api/docs" not in spec["paths"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert f"<code>{method.upper()} {path}</code>" in r.text
            for code in op["responses"]:
                assert f"<code>{code}</code>" in r.text
    for name in spec["components"]["schemas"]:
        assert f'id="model-{name}"' in r.text
    for param in ("status", "frequency", "topic", "search", "after", "limit"):
        assert f"<code>{param}</code>" in r.text


# -- where confirmation mail goes, and where its links lead --------------------------------------


def test_confirmations_go_to_names_the_outbox_or_the_smtp_server(
    web_settings: Callable[..., Settings],
) -> None:
    settings = web_settings()
    assert str(settings.paths.outbox / "web-confirmations") in confirmations_go_to(settings)
    smtp = web_settings(email={"transport": "smtp", "smtp": {"host": "mail.example.net", "port": 587}})
    assert "mail.example.net:587" in confirmations_go_to(smtp)


def test_serve_says_where_confirmations_go_and_where_links_lead(
    web_settings: Callable[..., Settings], project: Path
) -> None:
    settings = web_settings(web={"public_url": "http://127.0.0.1:8000"})
    env = {**os.environ, "PUBLISHER_SECRET_KEY": SECRET, "COLUMNS": "300"}
    cmd = [
        sys.executable,
        "-m",
        "publisher.cli",
        "serve",
        "--port",
        "0",
        "--config",
        str(project / "config.yaml"),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    line = next(x for x in lines if x.startswith("confirmation mails"))
    assert str(settings.paths.outbox / "web-confirmations") in line
    assert "http://127.0.0.1:8000/" in line


@pytest.fixture
def trial(
    web_settings: Callable[..., Settings], store: Store, make_app: Callable[..., FastAPI]
) -> Iterator[tuple[TestClient, Settings]]:
    """The app as in a local trial: the real site's URL, reached on 127.0.0.1."""
    settings = web_settings(
        site={"url": "https://news.example.org"}, web={"public_url": "http://127.0.0.1:8000"}
    )
    with TestClient(
        make_app(settings, store), base_url="http://testserver", follow_redirects=False
    ) as client:
        yield client, settings


def test_public_url_leads_the_confirmation_links(trial: tuple[TestClient, Settings]) -> None:
    client, settings = trial
    assert client.post("/subscribe", data={"email": "new@example.org"}).status_code == 200
    [msg] = outbox_messages(settings)
    confirm = link_from(msg, "confirm")
    assert confirm.startswith("http://127.0.0.1:8000/confirm/")
    html = msg.get_body(("html",))
    assert html is not None and f'href="{confirm}"' in html.get_content()
    page = client.get(urlsplit(link_from(msg, "confirm")).path)
    assert page.status_code == 200 and 'action="/confirm/' in page.text


def test_public_url_passes_the_same_origin_check(
    trial: tuple[TestClient, Settings], store: Store, web_clock: Clock
) -> None:
    client, settings = trial
    store.subscribers.add("p@example.org", now=web_clock(), name="Pat")
    client.post("/subscribe", data={"email": "p@example.org"})  # "already subscribed": a preferences link
    link = link_from(outbox_messages(settings)[-1], "preferences")
    assert link.startswith("http://127.0.0.1:8000/preferences/")
    path = urlsplit(link).path
    csrf = form_fields(client.get(path).text)["csrf"][0]
    data = {"csrf": csrf, "name": "Pat Q", "frequency": "daily", "timezone": "UTC"}
    r = client.post(path, data=data, headers={"Origin": "https://evil.example.com"})
    assert r.status_code == 403
    r = client.post(
        path, data=data, headers={"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin"}
    )
    assert r.status_code == 200, r.text
    assert store.subscribers.get("p@example.org").name == "Pat Q"
