"""The console's Issues pages over real HTTP: states, `check` problems, preview, test send, queue, send now.

The real app on the real store (SQLite, and PostgreSQL when configured),
mail over SMTP to the test server in another process; nothing mocked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from publisher.config import Settings
from publisher.content import load_issue
from publisher.ops.editors import add_editor
from publisher.ops.queue import list_queue
from publisher.render.email import issue_email_files
from publisher.store import Store
from publisher.web.admin_auth import ADMIN_CSP
from publisher.web.admin_preview import EMAIL_CSP, PREVIEW_CSP
from tests.fixtures_content import article
from tests.fixtures_smtp import SmtpServer
from tests.fixtures_store import add_subscribers
from tests.fixtures_web import Clock, form_fields, main_text

PASSWORD = "correct horse battery staple"
SLUG = "spring-news"


@dataclass
class Console:
    client: TestClient
    settings: Settings
    store: Store
    server: SmtpServer
    clock: Clock

    def sign_in(self, email: str) -> None:
        self.client.cookies.clear()
        r = self.client.get("/admin/login")
        form = {k: v[0] for k, v in form_fields(r.text).items() if k in ("csrf", "next")}
        r = self.client.post("/admin/login", data={**form, "email": email, "password": PASSWORD})
        assert r.status_code == 303, r.text

    def csrf(self) -> str:
        return form_fields(self.client.get("/admin").text)["csrf"][0]

    def audit(self) -> list[tuple[str, str, str]]:
        return [
            (e.actor, e.action, e.target)
            for e in self.store.editors.audit(50)
            if e.action.startswith("issue.")
        ]


@pytest.fixture
def console(
    write_issue: Callable[..., object],
    web_settings: Callable[..., Settings],
    store: Store,
    make_app: Callable[..., FastAPI],
    web_clock: Clock,
    smtp_server: SmtpServer,
) -> Iterator[Console]:
    """Three issues (ready, draft, broken), an editor and a viewer, SMTP to the test server; Ann signed in."""
    write_issue(f"issues/{SLUG}.md", article(title="Spring News", body="The trams are back."))
    write_issue("issues/later.md", article(title="Later", extra="draft: true"))
    write_issue("issues/broken.md", "---\ntitle: Broken\ndate: not a date\n---\n\nBody.\n")
    settings = web_settings(
        site={"url": "http://testserver", "timezone": "Europe/London"},
        email={"transport": "smtp", "smtp": {"host": "127.0.0.1", "port": smtp_server.port, "timeout": 10}},
    )
    for email, role in (("ann@example.org", "editor"), ("vic@example.org", "viewer")):
        add_editor(store, email, PASSWORD, role=role, name="", actor="cli", now=web_clock())
    app = make_app(settings, store)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
        c = Console(client, settings, store, smtp_server, web_clock)
        c.sign_in("ann@example.org")
        yield c


def test_the_list_shows_every_issue_its_state_and_its_check_problem(console: Console) -> None:
    r = console.client.get("/admin/issues")
    assert r.status_code == 200 and r.headers["content-security-policy"] == ADMIN_CSP
    text = main_text(r.text)
    assert "Spring News ready" in text and "Later draft" in text and "broken broken" in text
    assert "issues/broken.md:3: date:" in text  # the problem `publisher check` reports, at its line
    queued = console.client.post(
        f"/admin/issues/{SLUG}/queue",
        data={"csrf": console.csrf(), "at": "2099-01-01T09:00", "zone": "Europe/London"},
    )
    assert queued.status_code == 303
    assert "Spring News queued" in main_text(console.client.get("/admin/issues").text)


def test_the_preview_is_the_email_as_the_build_makes_it(console: Console) -> None:
    files = issue_email_files(console.settings, load_issue(console.settings, SLUG))
    r = console.client.get(f"/admin/issues/{SLUG}/email.html")
    assert r.status_code == 200 and r.content == files[f"emails/{SLUG}.html"]
    assert r.headers["content-security-policy"] == EMAIL_CSP and "script" not in EMAIL_CSP
    assert r.headers["x-frame-options"] == "SAMEORIGIN"
    dark = console.client.get(f"/admin/issues/{SLUG}/email.html?scheme=dark").text
    light = console.client.get(f"/admin/issues/{SLUG}/email.html?scheme=light").text
    assert "prefers-color-scheme" in r.text and "@media all" in dark and "@media not all" in light
    assert console.client.get(f"/admin/issues/{SLUG}/email.html?scheme=blue").status_code == 404

    page = console.client.get(f"/admin/issues/{SLUG}")
    assert page.status_code == 200 and page.headers["content-security-policy"] == PREVIEW_CSP
    assert page.text.count('<iframe sandbox=""') == 4
    assert 'width="600"' in page.text and 'width="375"' in page.text and "scheme=dark" in page.text
    text = main_text(page.text)
    assert "SubjectSpring News" in text and "PreheaderThe trams are back." in text
    assert "of the 102 KB at which Gmail clips" in text
    assert " ".join(files[f"emails/{SLUG}.txt"].decode().split()) in text  # the text part, whole
    assert f"Linkhttp://testserver/{SLUG}/" in text  # the feed entry
    assert console.client.get("/admin/issues/broken").status_code == 200  # says why, no preview
    assert "cannot be made" in main_text(console.client.get("/admin/issues/broken").text)


def test_send_a_test_to_me_arrives_at_the_smtp_server(console: Console) -> None:
    r = console.client.post(f"/admin/issues/{SLUG}/test", data={"csrf": console.csrf()})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/issues/{SLUG}?done=test"
    got = console.server.received()
    assert [m.rcpt for m in got] == ["ann@example.org"]
    assert got[0].message()["Subject"].endswith("Spring News")
    assert console.audit() == [("ann@example.org", "issue.test", SLUG)]
    assert console.store.ledger.get_send(f"issue:{SLUG}") is None  # a test copy plans nothing


def test_queue_in_the_editors_zone_then_unqueue(console: Console) -> None:
    when = (console.clock() + timedelta(days=3)).astimezone(ZoneInfo("America/New_York"))
    picker = f"{when:%Y-%m-%dT%H:%M}"
    r = console.client.post(
        f"/admin/issues/{SLUG}/queue", data={"csrf": console.csrf(), "at": picker, "zone": "America/New_York"}
    )
    assert r.status_code == 303
    [row] = list_queue(console.store)
    assert row.slug == SLUG and row.send_at == when.replace(second=0, microsecond=0).astimezone(UTC)
    page = main_text(console.client.get(r.headers["location"]).text)
    assert f"{row.send_at:%Y-%m-%d %H:%M} UTC" in page and "(America/New_York)" in page
    r = console.client.post(f"/admin/issues/{SLUG}/unqueue", data={"csrf": console.csrf()})
    assert r.status_code == 303 and list_queue(console.store) == []
    again = console.client.post(f"/admin/issues/{SLUG}/unqueue", data={"csrf": console.csrf()})
    assert again.status_code == 409 and "is not queued" in main_text(again.text)
    assert [a for _, a, _ in console.audit()] == ["issue.unqueue", "issue.queue"]


def test_send_now_asks_with_the_count_then_sends_exactly_once(console: Console) -> None:
    emails = add_subscribers(console.store, 3)
    url = f"/admin/issues/{SLUG}/send"
    asked = console.client.post(url, data={"csrf": console.csrf()})
    assert asked.status_code == 200 and "to 3 recipients" in main_text(asked.text)
    assert console.server.count() == 0 and console.store.ledger.get_send(f"issue:{SLUG}") is None
    fields = form_fields(asked.text)
    assert fields["confirm"] == ["yes"] and fields["count"] == ["3"]
    stale = console.client.post(url, data={"csrf": console.csrf(), "confirm": "yes", "count": "2"})
    assert stale.status_code == 200 and "has changed" in stale.text and console.server.count() == 0

    form = {"csrf": fields["csrf"][0], "confirm": "yes", "count": "3"}
    r = console.client.post(url, data=form)
    assert r.status_code == 303 and r.headers["location"] == f"/admin/issues/{SLUG}?done=sending"
    assert sorted(m.rcpt for m in console.server.received()) == sorted(emails)
    twice = console.client.post(url, data=form)
    assert twice.status_code == 409 and "already sent" in main_text(twice.text)
    assert console.server.count() == 3
    assert console.audit() == [("ann@example.org", "issue.send", SLUG)]
    assert "Spring News sent" in main_text(console.client.get("/admin/issues").text)


def _nothing_changed(console: Console) -> None:
    assert console.server.count() == 0 and list_queue(console.store) == []
    assert console.store.ledger.get_send(f"issue:{SLUG}") is None and console.audit() == []


def test_a_viewer_sees_the_pages_but_cannot_change_anything(console: Console) -> None:
    add_subscribers(console.store, 2)
    console.sign_in("vic@example.org")
    page = console.client.get(f"/admin/issues/{SLUG}")
    assert page.status_code == 200 and "<form" not in page.text.split('id="main"')[1].split("</main>")[0]
    token = console.csrf()  # the viewer's own valid token (the sign-out form's)
    form = {"csrf": token, "at": "2099-01-01T09:00", "zone": "UTC", "confirm": "yes", "count": "2"}
    for action in ("test", "queue", "unqueue", "send"):
        assert console.client.post(f"/admin/issues/{SLUG}/{action}", data=form).status_code == 403
    _nothing_changed(console)


def test_posts_without_a_valid_csrf_token_are_refused(console: Console) -> None:
    add_subscribers(console.store, 2)
    form = {"at": "2099-01-01T09:00", "zone": "UTC", "confirm": "yes", "count": "2"}
    for action in ("test", "queue", "send"):
        for bad in ({}, {"csrf": "0" * 64}):
            r = console.client.post(f"/admin/issues/{SLUG}/{action}", data={**form, **bad})
            assert r.status_code == 403
    _nothing_changed(console)


HOSTILE_SLUGS = [
    "..%2F..%2Fconfig.yaml",
    "%2E%2E",
    "a%00b",
    "x" * 10_000,
    "spring%E2%80%AEnews",
    "Spring-News",
]


@pytest.mark.parametrize("slug", HOSTILE_SLUGS)
def test_hostile_slugs_are_not_found_and_change_nothing(console: Console, slug: str) -> None:
    form = {"csrf": console.csrf(), "at": "2099-01-01T09:00", "zone": "UTC", "confirm": "yes", "count": "0"}
    for path in (f"/admin/issues/{slug}", f"/admin/issues/{slug}/email.html"):
        assert console.client.get(path).status_code in (404, 422)
    for action in ("test", "queue", "unqueue", "send"):  # 405: a decoded '/' leaves our routes (archive's)
        assert console.client.post(f"/admin/issues/{slug}/{action}", data=form).status_code in (404, 405, 422)
    _nothing_changed(console)


@pytest.mark.parametrize(
    ("at", "zone", "says"),
    [
        ("next tuesday", "UTC", "not a time"),
        ("2026-13-45T99:99", "UTC", "not a time"),
        ("0001-01-01T00:00", "Pacific/Kiritimati", "in the past"),
        ("9999-12-31T23:59", "Pacific/Pago_Pago", "out of range"),
        ("2000-01-01T09:00", "UTC", "in the past"),
        ("2099-01-01T09:00\u202e", "UTC", "not a time"),
        ("2" * 10_000, "UTC", "not a date and time"),
        ("", "UTC", "missing"),
        ("2099-01-01T09:00", "../../etc/passwd", "not a time zone"),
        ("2099-01-01T09:00", "Mars/Olympus_Mons", "not a time zone"),
    ],
)
def test_a_hostile_date_time_gets_a_clear_error(console: Console, at: str, zone: str, says: str) -> None:
    r = console.client.post(
        f"/admin/issues/{SLUG}/queue", data={"csrf": console.csrf(), "at": at, "zone": zone}
    )
    assert r.status_code in (409, 422)
    assert says in main_text(r.text)
    _nothing_changed(console)
