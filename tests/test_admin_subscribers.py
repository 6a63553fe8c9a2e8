"""The console's subscriber pages over real HTTP: list, one subscriber, actions, CSV upload and export.

The real app on the real store (SQLite and PostgreSQL), signed in through the
real sign-in form; mail goes to a real SMTP server; nothing is mocked.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from publisher.config import Settings
from publisher.models import Feedback, FeedbackKind, SubscriberStatus
from publisher.ops.editors import add_editor
from publisher.ops.feedback import apply_feedback, hasher_for
from publisher.store import Filter, Store
from publisher.store.schema import deliveries, sends
from publisher.store.subscriber_search import Search
from publisher.web.admin_csv import export_chunks, sweep, upload_folder, upload_path
from tests.fixtures_store import add_subscribers, subscriber
from tests.fixtures_web import Clock, form_fields, main_text

PASSWORD = "correct horse battery staple"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def sign_in(client: TestClient, email: str) -> None:
    r = client.get("/admin/login")
    csrf = form_fields(r.text)["csrf"][0]
    r = client.post(
        "/admin/login", data={"csrf": csrf, "next": "/admin", "email": email, "password": PASSWORD}
    )
    assert r.status_code == 303, r.text


def csrf_of(client: TestClient) -> str:
    return form_fields(client.get("/admin").text)["csrf"][0]


@pytest.fixture
def app(
    web_settings: Callable[..., Settings],
    store: Store,
    make_app: Callable[..., FastAPI],
    web_clock: Clock,
):
    add_editor(store, "ann@example.org", PASSWORD, role="editor", name="", actor="cli", now=web_clock())
    add_editor(store, "vic@example.org", PASSWORD, role="viewer", name="", actor="cli", now=web_clock())
    return make_app(web_settings(site={"url": "http://testserver"}), store)


def _client(app: FastAPI, email: str) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
        sign_in(client, email)
        yield client


@pytest.fixture
def editor(app: FastAPI) -> Iterator[TestClient]:
    yield from _client(app, "ann@example.org")


@pytest.fixture
def viewer(app: FastAPI) -> Iterator[TestClient]:
    yield from _client(app, "vic@example.org")


def rows(html: str) -> list[str]:
    """The addresses listed on a subscribers page, in order."""
    return re.findall(r'<a href="/admin/subscribers/\d+">([^<]+)</a>', html)


def link(html: str, rel: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)" rel="{rel}">', html)
    return found.group(1).replace("&amp;", "&") if found else None


def test_search_and_filters(editor: TestClient, store: Store) -> None:
    add = store.subscribers.add
    add("ada@example.org", now=NOW, name="Ada Lovelace", topics="science", timezone="Europe/London")
    add("bob@example.net", now=NOW, name="Bob", status="pending", frequency="weekly")
    add("cy@example.org", now=NOW, name="Cyrus", status="unsubscribed", topics="science;art")
    assert rows(editor.get("/admin/subscribers").text) == [
        "ada@example.org",
        "bob@example.net",
        "cy@example.org",
    ]
    assert rows(editor.get("/admin/subscribers?q=LOVELACE").text) == ["ada@example.org"]
    assert rows(editor.get("/admin/subscribers?q=example.net").text) == ["bob@example.net"]
    assert rows(editor.get("/admin/subscribers?status=pending").text) == ["bob@example.net"]
    assert rows(editor.get("/admin/subscribers?frequency=weekly").text) == ["bob@example.net"]
    assert rows(editor.get("/admin/subscribers?topic=science").text) == [
        "ada@example.org",
        "cy@example.org",
    ]
    assert rows(editor.get("/admin/subscribers?zone=Europe/London").text) == ["ada@example.org"]
    assert rows(editor.get("/admin/subscribers?sort=newest").text)[0] == "cy@example.org"
    page = editor.get("/admin/subscribers?status=nonsense&q=%25&sort=x")  # unusable values: "any"
    assert page.status_code == 200 and rows(page.text) == []  # '%' is a literal, not a wildcard
    assert rows(editor.get("/admin/subscribers?status=nonsense").text)[0] == "ada@example.org"


@pytest.mark.parametrize("sort", ["oldest", "newest", "email"])
def test_keyset_pages_neither_repeat_nor_skip_when_rows_arrive(
    editor: TestClient, store: Store, sort: str
) -> None:
    emails = add_subscribers(store, 120)
    first = editor.get(f"/admin/subscribers?sort={sort}")
    seen = rows(first.text)
    assert len(seen) == 50 and link(first.text, "prev") is None
    for i in range(5):  # added meanwhile: after every listed row in id and address order
        store.subscribers.add(f"zz-new{i}@example.org", now=NOW)
    if sort == "newest":
        store.subscribers.add("aaa-new@example.org", now=NOW)
    second = editor.get(link(first.text, "next") or "")
    seen += rows(second.text)
    third = editor.get(link(second.text, "next") or "")
    seen += rows(third.text)
    expected = sorted(emails) if sort != "newest" else sorted(emails, reverse=True)
    if sort == "oldest":
        expected += [f"zz-new{i}@example.org" for i in range(5)]
    if sort == "email":
        expected += [f"zz-new{i}@example.org" for i in range(5)]
    assert seen == expected[: len(seen)] and len(set(seen)) == len(seen)
    assert len(seen) == (125 if sort != "newest" else 120)
    back = editor.get(link(second.text, "prev") or "")
    assert rows(back.text) == rows(first.text)


def _history_rows(store: Store, settings: Settings, email: str) -> None:
    """A send with a delivery to ``email`` (ledger rows), then a hard bounce of it applied as mail is."""
    sub = subscriber(store, email)
    with store.write() as conn:
        send_id = conn.execute(
            sa.insert(sends)
            .values(kind="issue", key="issue:spring-news", issue_slug="spring-news", created_at=NOW)
            .returning(sends.c.id)
        ).scalar_one()
        delivery_id = conn.execute(
            sa.insert(deliveries)
            .values(
                send_id=send_id,
                subscriber_id=sub.id,
                email=email,
                status="sent",
                attempts=1,
                sent_at=NOW,
            )
            .returning(deliveries.c.id)
        ).scalar_one()
    bounce = Feedback(
        kind=FeedbackKind.HARD_BOUNCE,
        key="dsn-1",
        address=email,
        delivery_id=delivery_id,
        status="5.1.1",
        detail="550 mailbox unavailable",
    )
    apply_feedback(store, settings, [bounce], now=NOW)


def test_subscriber_page_shows_history_and_status_change_is_audited(
    editor: TestClient, store: Store, web_settings: Callable[..., Settings]
) -> None:
    sub = store.subscribers.add("ada@example.org", now=NOW, name="Ada")
    _history_rows(store, web_settings(), sub.email)
    page = editor.get(f"/admin/subscribers/{sub.id}")
    text = main_text(page.text)
    assert "issue:spring-news" in text and "sent" in text
    assert "hard_bounce" in text and "550 mailbox unavailable" in text
    assert subscriber(store, sub.email).status is SubscriberStatus.BOUNCED
    r = editor.post(
        f"/admin/subscribers/{sub.id}/status",
        data={"csrf": csrf_of(editor), "status": "unsubscribed"},
    )
    assert r.status_code == 303 and r.headers["location"] == f"/admin/subscribers/{sub.id}?done=status"
    assert subscriber(store, "ada@example.org").status is SubscriberStatus.UNSUBSCRIBED
    text = main_text(editor.get(r.headers["location"]).text)
    assert "Status changed." in text and "bounced -> unsubscribed" in text and "subscriber.status" in text
    [entry] = [e for e in store.editors.audit(50) if e.action == "subscriber.status"]
    assert (entry.actor, entry.target) == ("ann@example.org", f"subscriber:{sub.id}")


def test_bounced_is_not_confirmed_again_by_hand(editor: TestClient, store: Store) -> None:
    sub = store.subscribers.add("b@example.org", now=NOW, status="bounced")
    r = editor.post(
        f"/admin/subscribers/{sub.id}/status", data={"csrf": csrf_of(editor), "status": "confirmed"}
    )
    assert r.status_code == 422 and "not confirmed again by hand" in r.text
    assert subscriber(store, "b@example.org").status is SubscriberStatus.BOUNCED


def test_erase_is_the_cli_erasure_and_leaves_no_address_in_the_log(
    editor: TestClient, store: Store, web_settings: Callable[..., Settings]
) -> None:
    sub = store.subscribers.add("gone@example.org", now=NOW)
    csrf = csrf_of(editor)
    r = editor.post(f"/admin/subscribers/{sub.id}/erase", data={"csrf": csrf})  # the box not ticked
    assert r.status_code == 422 and store.subscribers.get("gone@example.org") is not None
    r = editor.post(f"/admin/subscribers/{sub.id}/erase", data={"csrf": csrf, "sure": "yes"})
    assert r.status_code == 303 and "Subscriber erased." in main_text(editor.get(r.headers["location"]).text)
    assert store.subscribers.get("gone@example.org") is None
    hasher = hasher_for(web_settings().secret_key())
    assert store.feedback.suppressed("gone@example.org", hasher=hasher) == "erased"
    assert all("gone@" not in f"{e.target}{e.detail}" for e in store.editors.audit(50))
    assert editor.get(f"/admin/subscribers/{sub.id}").status_code == 404


def test_resend_confirmation_arrives_over_smtp(
    web_settings: Callable[..., Settings],
    store: Store,
    make_app: Callable[..., FastAPI],
    web_clock: Clock,
    smtp_server,
) -> None:
    add_editor(store, "ann@example.org", PASSWORD, role="editor", name="", actor="cli", now=web_clock())
    settings = web_settings(
        site={"url": "http://testserver"},
        email={"transport": "smtp", "smtp": {"port": smtp_server.port}},
    )
    sub = store.subscribers.add("new@example.org", now=NOW, name="New", status="pending")
    gone = store.subscribers.add("left@example.org", now=NOW, status="unsubscribed")
    for client in _client(make_app(settings, store), "ann@example.org"):
        csrf = csrf_of(client)
        r = client.post(f"/admin/subscribers/{sub.id}/confirmation", data={"csrf": csrf})
        assert r.status_code == 303 and r.headers["location"].endswith("?done=confirmation")
        r = client.post(f"/admin/subscribers/{gone.id}/confirmation", data={"csrf": csrf})
        assert r.status_code == 422
    [got] = smtp_server.received()
    assert got.rcpt == "new@example.org" and "/confirm/" in got.message().as_string()
    assert [e.detail for e in store.editors.audit(50) if e.action == "subscriber.confirm-mail"] == [
        "handed over"
    ]


def test_viewers_see_but_cannot_act_and_forms_need_the_csrf_token(
    viewer: TestClient, editor: TestClient, store: Store
) -> None:
    sub = store.subscribers.add("ada@example.org", now=NOW)
    page = viewer.get(f"/admin/subscribers/{sub.id}")
    assert page.status_code == 200 and '<form method="post" action="/admin/subscribers/' not in page.text
    csrf = csrf_of(viewer)
    for action, data in (
        ("status", {"status": "unsubscribed"}),
        ("confirmation", {}),
        ("erase", {"sure": "yes"}),
    ):
        assert (
            viewer.post(f"/admin/subscribers/{sub.id}/{action}", data={"csrf": csrf, **data}).status_code
            == 403
        )
        assert editor.post(f"/admin/subscribers/{sub.id}/{action}", data=data).status_code == 403
        assert (
            editor.post(f"/admin/subscribers/{sub.id}/{action}", data={"csrf": "0" * 64, **data}).status_code
            == 403
        )
    files = {"file": ("a.csv", b"email\nx@example.org\n", "text/csv")}
    assert viewer.post("/admin/subscribers/import", data={"csrf": csrf}, files=files).status_code == 403
    assert editor.post("/admin/subscribers/import", files=files).status_code == 403
    assert subscriber(store, "ada@example.org").status is SubscriberStatus.CONFIRMED
    assert store.subscribers.count() == 1


def test_pages_refuse_without_a_session(app: FastAPI, store: Store) -> None:
    sub = store.subscribers.add("ada@example.org", now=NOW)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as anon:
        for path in (
            "/admin/subscribers",
            f"/admin/subscribers/{sub.id}",
            "/admin/subscribers/import",
            "/admin/subscribers/export.csv",
        ):
            r = anon.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/admin/login?next=")
        assert anon.post(f"/admin/subscribers/{sub.id}/erase", data={"sure": "yes"}).status_code == 303
    assert store.subscribers.count() == 1


def _upload(client: TestClient, body: bytes) -> str:
    r = client.post(
        "/admin/subscribers/import",
        data={"csrf": csrf_of(client)},
        files={"file": ("list.csv", body, "text/csv")},
    )
    assert r.status_code == 200, r.text
    return r.text


def confirm_fields(client: TestClient, page: str) -> dict[str, str]:
    """The confirm button's form: the CSRF token and the upload's token."""
    found = re.search(r'name="token" value="([^"]+)"', page)
    assert found is not None, "no confirm button"
    return {"csrf": csrf_of(client), "token": found.group(1)}


def test_upload_reports_bad_rows_and_writes_nothing_until_confirmed(editor: TestClient, store: Store) -> None:
    page = _upload(
        editor,
        b"email,name,frequency\nann@example.org,Ann,daily\nnot-an-address,Bad,daily\nbo@example.org,Bo,sometimes\n",
    )
    text = main_text(page)
    assert "2 refused" in text and "1 to add" in text
    assert re.search(r"3\s*email", text) and re.search(r"4\s*frequency", text)  # row numbers and columns
    assert store.subscribers.count() == 0
    fields = confirm_fields(editor, page)
    assert (
        editor.post("/admin/subscribers/import/confirm", data={**fields, "csrf": "0" * 64}).status_code == 403
    )
    done = editor.post("/admin/subscribers/import/confirm", data=fields)
    assert done.status_code == 200 and "1 added" in main_text(done.text)
    assert [s.email for s in store.subscribers.list()] == ["ann@example.org"]
    assert editor.post("/admin/subscribers/import/confirm", data=fields).status_code == 404  # used up
    assert next(e.action for e in store.editors.audit(50)) == "subscribers.import"


def test_a_list_of_thousands_is_not_refused_as_an_oversized_form(editor: TestClient, store: Store) -> None:
    rows = "".join(f"reader{i}@example.org,Reader {i}\n" for i in range(5000))  # ~150 KB: over a form's 64 KB
    page = _upload(editor, ("email,name\n" + rows).encode())
    assert "5000 to add" in main_text(page).replace(",", "")
    assert store.subscribers.count() == 0  # checked, not written


def test_an_upload_is_bound_to_its_session(app: FastAPI, editor: TestClient, store: Store) -> None:
    page = _upload(editor, b"email\nann@example.org\n")
    token = confirm_fields(editor, page)["token"]
    for other in _client(app, "ann@example.org"):  # the same editor, another browser
        r = other.post("/admin/subscribers/import/confirm", data={"csrf": csrf_of(other), "token": token})
        assert r.status_code == 404
    assert store.subscribers.count() == 0


def test_a_file_without_the_email_column_is_refused_whole(editor: TestClient, store: Store) -> None:
    text = main_text(_upload(editor, b"name,status\nAnn,confirmed\n"))
    assert "Nothing can be imported" in text and "email" in text
    assert 'name="token"' not in text and store.subscribers.count() == 0


HOSTILE = (
    "email,name\n"
    "f1@example.org,\"=cmd|' /C calc'!A0\"\n"
    'f2@example.org,"line\r\nbreak"\n'
    'f3@example.org,"nul\x00here"\n'
    'f4@example.org,"bidi\u202eevil"\n'
    f"f5@example.org,{'x' * 10_000}\n"
    "f6@example.org,=?utf-8?b?QWRtaW4=?=\n"
    '=HYPERLINK("http://evil")@example.org,Ann\n'
)


def test_hostile_cells_are_refused_or_escaped_as_the_cli_does(editor: TestClient, store: Store) -> None:
    page = _upload(editor, HOSTILE.encode())
    cli = store.subscribers  # the CLI's path, for comparison, on a copy of the report (rolled back below)
    text = main_text(page)
    assert "1 to add" in text and "6 refused" in text  # only the formula name is a legal name
    assert "10000" not in text or "x" * 300 not in text
    fields = confirm_fields(editor, page)
    assert editor.post("/admin/subscribers/import/confirm", data=fields).status_code == 200
    assert [s.email for s in cli.list()] == ["f1@example.org"]
    exported = editor.get("/admin/subscribers/export.csv").text
    assert exported.splitlines()[1] == "f1@example.org,'=cmd|' /C calc'!A0,confirmed,instant,,UTC"


def test_export_is_the_cli_export_and_round_trips(editor: TestClient, store: Store) -> None:
    store.subscribers.add(
        "ada@example.org", now=NOW, name="@SUM(1+1)", topics="art;science", timezone="Europe/Paris"
    )
    store.subscribers.add("bob@example.org", now=NOW, name="-Bob", status="unsubscribed", frequency="weekly")
    add_subscribers(store, 30)
    cli = io.StringIO()
    store.subscribers.export_csv(cli)
    r = editor.get("/admin/subscribers/export.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text == cli.getvalue()
    assert b"".join(export_chunks(store, Search(), chunk=7)).decode() == cli.getvalue()
    assert b"".join(export_chunks(store, Search(), chunk=32)).decode() == cli.getvalue()
    only = editor.get("/admin/subscribers/export.csv?zone=Europe/Paris").text
    assert only.splitlines()[1:] == ["ada@example.org,'@SUM(1+1),confirmed,instant,art;science,Europe/Paris"]
    before = {s.email: s for s in store.subscribers.list()}
    store.subscribers.remove("ada@example.org")
    page = _upload(editor, r.content)
    fields = confirm_fields(editor, page)
    assert "1 to add" in main_text(page) and "0 refused" in main_text(page)
    editor.post("/admin/subscribers/import/confirm", data=fields)
    after = {s.email: s for s in store.subscribers.list()}
    assert {e: (s.name, s.status, s.topics, s.timezone) for e, s in after.items()} == {
        e: (s.name, s.status, s.topics, s.timezone) for e, s in before.items()
    }
    assert store.subscribers.count(Filter(status=SubscriberStatus.UNSUBSCRIBED)) == 1


def test_unconfirmed_uploads_are_swept_after_an_hour() -> None:
    folder = upload_folder()
    path = upload_path("session-x", "token-for-the-sweep-test")
    path.write_bytes(b"email\n")
    now = path.stat().st_mtime
    assert sweep(folder, now + 60) >= 0 and path.exists()
    os.utime(path, (now - 3601, now - 3601))
    sweep(folder, now)
    assert not path.exists()
