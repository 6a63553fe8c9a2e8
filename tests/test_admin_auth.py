"""The console's door over real HTTP: sign-in, sessions, CSRF, roles, throttling, cookies, CSP.

The real app (``create_app``) on the real store, SQLite and PostgreSQL (where
the login throttle's buckets live in the database), with the app's clock moved
instead of waiting.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Annotated

import pytest
import sqlalchemy as sa
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from starlette.datastructures import FormData

from publisher.config import Settings
from publisher.ops.editors import add_editor
from publisher.store import Store
from publisher.store.schema import editor_sessions
from publisher.web.admin_auth import ADMIN_CSP, SESSION_COOKIE, editor_form
from tests.fixtures_web import Clock, form_fields, main_text

PASSWORD = "correct horse battery staple"


def _add(store: Store, email: str, role: str = "editor", now=None) -> None:
    add_editor(store, email, PASSWORD, role=role, name="", actor="cli", now=now)


@pytest.fixture
def console(
    web_settings: Callable[..., Settings], store: Store, make_app: Callable[..., FastAPI], web_clock: Clock
) -> Iterator[TestClient]:
    """A client of the app on an http:// site, with an editor and a viewer."""
    _add(store, "ann@example.org", now=web_clock())
    _add(store, "vic@example.org", role="viewer", now=web_clock())
    app = make_app(web_settings(site={"url": "http://testserver"}), store)
    changed: list[str] = []

    @app.post("/admin/test-change")  # an editor-only action, as later console routes will be
    async def change(form: Annotated[FormData, Depends(editor_form)]) -> dict[str, str]:
        changed.append(str(form.get("what")))
        return {"ok": "yes"}

    app.state.changed = changed
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
        yield client


def _login_form(client: TestClient, next_path: str = "") -> dict[str, str]:
    r = client.get("/admin/login" + (f"?next={next_path}" if next_path else ""))
    assert r.status_code == 200
    fields = form_fields(r.text)
    return {"csrf": fields["csrf"][0], "next": fields["next"][0]}


def _sign_in(client: TestClient, email: str = "ann@example.org", password: str = PASSWORD, **extra: str):
    form = _login_form(client)
    form.update(email=email, password=password, **extra)
    return client.post("/admin/login", data=form)


def _csrf(client: TestClient) -> str:
    r = client.get("/admin")
    assert r.status_code == 200, r.text
    doc = form_fields(r.text)
    return doc["csrf"][0]


def _sessions(store: Store) -> list[str]:
    with store.read() as conn:
        return list(conn.execute(sa.select(editor_sessions.c.id)).scalars())


def _actions(store: Store) -> list[tuple[str, str]]:
    return [(e.actor, e.action) for e in store.editors.audit(50)]


def test_sign_in_see_the_console_and_sign_out(console: TestClient, store: Store) -> None:
    r = console.get("/admin")
    assert r.status_code == 303 and r.headers["location"] == "/admin/login?next=/admin"
    r = _sign_in(console, "Ann@Example.org")
    assert r.status_code == 303 and r.headers["location"] == "/admin"
    token = console.cookies.get(SESSION_COOKIE)
    assert token and _sessions(store) == [hashlib.sha256(token.encode()).hexdigest()]  # only its hash

    page = console.get("/admin")
    assert page.status_code == 200
    text = main_text(page.text)
    assert "Signed in as ann@example.org, role editor" in text
    assert "login" in text and "editor.add" in text  # the audit log, real rows
    assert page.headers["content-security-policy"] == ADMIN_CSP
    assert page.headers["cache-control"] == "no-store"

    r = console.post("/admin/logout", data={"csrf": _csrf(console)})
    assert r.status_code == 303 and r.headers["location"] == "/admin/login"
    assert _sessions(store) == []
    console.cookies.set(SESSION_COOKIE, token, path="/admin")  # the old cookie is worth nothing now
    assert console.get("/admin").status_code == 303
    assert _actions(store)[:2] == [("ann@example.org", "logout"), ("ann@example.org", "login")]


def test_wrong_password_signs_nobody_in_and_is_audited(console: TestClient, store: Store) -> None:
    r = _sign_in(console, password="not the password at all")
    assert r.status_code == 401 and "Wrong email address or password" in r.text
    assert SESSION_COOKIE not in console.cookies and _sessions(store) == []
    r = _sign_in(console, email="nobody@example.org")
    assert r.status_code == 401
    failed = [e for e in store.editors.audit(50) if e.action == "login.failed"]
    assert [e.target for e in failed] == ["nobody@example.org", "ann@example.org"]
    assert all("not the password" not in f"{e.actor}{e.target}{e.detail}" for e in failed)


def test_failures_are_throttled_per_account_then_per_client(
    console: TestClient, store: Store, web_clock: Clock
) -> None:
    for _ in range(5):
        assert _sign_in(console, password="wrong password here").status_code == 401
    r = _sign_in(console, password="wrong password here")
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    right = _sign_in(console)  # even the right password waits
    assert right.status_code == 429 and SESSION_COOKIE not in console.cookies
    web_clock.advance(seconds=int(right.headers["retry-after"]))
    assert _sign_in(console).status_code == 303
    console.cookies.clear()

    for i in range(20):  # the wait refilled the client's bucket: 20 more failures spend it
        assert _sign_in(console, email=f"guess{i}@example.org").status_code == 401
    r = _sign_in(console, email="another@example.org")
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


def test_forms_without_a_valid_csrf_token_are_refused(console: TestClient, store: Store) -> None:
    form = _login_form(console)
    for bad in ({}, {"csrf": "x" * 64}, {"csrf": form["csrf"][:-1] + "0"}):
        r = console.post("/admin/login", data={"email": "ann@example.org", "password": PASSWORD, **bad})
        assert r.status_code == 403
    assert _sessions(store) == [] and SESSION_COOKIE not in console.cookies

    assert _sign_in(console).status_code == 303
    for bad in ({}, {"csrf": "0" * 64}):
        assert console.post("/admin/logout", data=bad).status_code == 403
        assert console.post("/admin/test-change", data={"what": "x", **bad}).status_code == 403
    assert len(_sessions(store)) == 1 and console.app.state.changed == []  # type: ignore[attr-defined]
    r = console.post("/admin/test-change", data={"what": "x", "csrf": _csrf(console)})
    assert r.status_code == 200 and console.app.state.changed == ["x"]  # type: ignore[attr-defined]


def test_a_viewer_sees_but_cannot_change(console: TestClient) -> None:
    assert _sign_in(console, "vic@example.org").status_code == 303
    page = console.get("/admin")
    assert "role viewer" in main_text(page.text)
    r = console.post("/admin/test-change", data={"what": "x", "csrf": _csrf(console)})
    assert r.status_code == 403 and console.app.state.changed == []  # type: ignore[attr-defined]


def test_without_a_session_pages_redirect_and_json_gets_401(console: TestClient) -> None:
    assert console.post("/admin/test-change", data={"what": "x"}).status_code == 303
    r = console.get("/admin", headers={"accept": "application/json"})
    assert r.status_code == 401 and r.json()["error"]
    r = console.get("/admin", headers={"accept": "text/event-stream"})
    assert r.status_code == 401
    console.cookies.set(SESSION_COOKIE, "forged-token", path="/admin")
    assert console.get("/admin").status_code == 303


def test_sessions_end_when_idle_and_at_their_absolute_limit(console: TestClient, web_clock: Clock) -> None:
    assert _sign_in(console).status_code == 303
    web_clock.advance(hours=11)
    assert console.get("/admin").status_code == 200
    web_clock.advance(hours=12, seconds=1)  # idle past 12 hours
    assert console.get("/admin").status_code == 303

    assert _sign_in(console).status_code == 303
    for _ in range(20):  # used every 11 hours: never idle, but 7 days is the end
        web_clock.advance(hours=11)
        if console.get("/admin").status_code != 200:
            break
    else:
        pytest.fail("the session outlived its absolute limit")
    assert console.get("/admin").status_code == 303


@pytest.mark.parametrize(
    "wanted",
    [
        "https://evil.example/admin",
        "//evil.example/admin",
        "/\\evil.example",
        "/admin/../subscribe",
        "/adminx",
        "javascript:alert(1)",
        "/admin%0d%0aSet-Cookie:x=1",
        "/admin/%2e%2e/x",
    ],
)
def test_next_never_leaves_the_console(console: TestClient, wanted: str) -> None:
    form = _login_form(console)
    form.update(email="ann@example.org", password=PASSWORD, next=wanted)
    r = console.post("/admin/login", data=form)
    assert r.status_code == 303 and r.headers["location"] == "/admin"


def test_next_brings_the_editor_back(console: TestClient) -> None:
    r = console.get("/admin?view=audit")
    assert r.headers["location"] == "/admin/login?next=/admin%3Fview%3Daudit"
    form = _login_form(console, "/admin%3Fview%3Daudit")
    assert form["next"] == "/admin?view=audit"
    form.update(email="ann@example.org", password=PASSWORD)
    assert console.post("/admin/login", data=form).headers["location"] == "/admin?view=audit"


def _cookie_header(response) -> str:
    found = [c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "=")]
    assert len(found) == 1
    return found[0].lower()


def test_cookie_flags_on_http(console: TestClient) -> None:
    cookie = _cookie_header(_sign_in(console))
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/admin" in cookie
    assert "max-age=604800" in cookie and "secure" not in cookie


def test_cookie_is_secure_on_an_https_site(
    web_settings: Callable[..., Settings], store: Store, make_app: Callable[..., FastAPI], web_clock: Clock
) -> None:
    _add(store, "ann@example.org", now=web_clock())
    app = make_app(web_settings(site={"url": "https://news.example.org"}), store)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        r = _sign_in(client)
        assert r.status_code == 303
        cookie = _cookie_header(r)
        assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        assert client.get("/admin").status_code == 200


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "ann@example.org\r\nBcc: x@example.org"),
        ("email", "ann\x00@example.org"),
        ("email", "ann\u202e@example.org"),
        ("email", "a" * 10_000 + "@example.org"),
        ("email", "=?utf-8?q?ann?=@example.org"),
        ("password", PASSWORD + "\r\n"),
        ("password", PASSWORD + "\x00"),
        ("password", "\u202e" + PASSWORD),
        ("password", "p" * 10_000),
        ("next", "/admin\r\nX: y"),
        ("csrf", "\x00" * 10),
    ],
    ids=lambda v: repr(v)[:16],
)
def test_hostile_sign_in_input_is_refused_and_nothing_stored(
    console: TestClient, store: Store, field: str, value: str
) -> None:
    form = _login_form(console)
    form.update(email="ann@example.org", password=PASSWORD)
    form[field] = value
    r = console.post("/admin/login", data=form)
    if field == "next":
        assert r.status_code == 303 and r.headers["location"] == "/admin"  # signed in, sent home
        return
    assert r.status_code in (401, 403), r.text
    assert "Traceback" not in r.text and _sessions(store) == []
    for entry in store.editors.audit(50):
        text = f"{entry.actor}{entry.target}{entry.detail}"
        assert not any(c in text for c in "\r\n\x00\u202e") and len(text) < 1200


def test_the_console_stylesheet_is_served(console: TestClient) -> None:
    r = console.get("/admin/console.css")
    assert r.status_code == 200 and ".admin-table" in r.text  # the audit table; inputs are styled by site.css
