"""The console's dashboard, live progress and send reports, over real HTTP on the real store.

Numbers on the pages are compared with what the store's own functions say
(``publisher status`` and ``GET /api/sends/{id}`` use the same ones); the event
stream is read from a real uvicorn while the ledger moves as a send moves it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from publisher.config import Settings
from publisher.models import Feedback, FeedbackKind
from publisher.ops.editors import add_editor
from publisher.store import Outcomes, Queue, SendCounts, Store
from publisher.store.clicks import Click
from publisher.store.feedback import BouncePolicy
from publisher.store.reports import weekly_growth
from publisher.store.schema import deliveries
from publisher.web.admin_events import StreamPolicy
from publisher.web.charts import DOMAINS as DOMAIN_CHART
from publisher.web.charts import bar_chart, charts_css
from tests.fixtures_content import article
from tests.fixtures_web import Clock, bound_socket, form_fields, parse_html

PASSWORD = "correct horse battery staple"
DOMAINS = {"gmail.com": 5, "mail.example.org": 3, "tiny.example.net": 1}


def _table(html: str, name: str) -> list[list[str]]:
    """The body rows (cells' text) of the table whose region is labelled ``name`` or whose caption is."""
    doc = parse_html(html)
    for el in doc.iter():
        caption = el.find("{*}caption") if el.tag.endswith("}table") else None
        if el.get("aria-labelledby") == name or (caption is not None and caption.get("id") == name):
            table = el if caption is not None else el.find(".//{*}table")
            body = table.find("{*}tbody")
            return [[" ".join("".join(c.itertext()).split()) for c in row] for row in body]
    raise AssertionError(f"no table {name}")


def sign_in(client: TestClient | httpx.Client, email: str) -> None:
    page = client.get("/admin/login")
    fields = form_fields(page.text)
    form = {"csrf": fields["csrf"][0], "next": fields["next"][0], "email": email, "password": PASSWORD}
    r = client.post("/admin/login", data=form)
    assert r.status_code == 303, r.text


def seed(store: Store, now: datetime) -> int:
    """Subscribers at three domains, one send of them all, a bounce, a complaint and an unsubscribe."""
    for domain, n in DOMAINS.items():
        for i in range(n):
            store.subscribers.add(f"reader{i}@{domain}", now=now - timedelta(days=8 * i))
    send = store.ledger.plan_send("issue", "issue:on-bread", now=now, issue_slug="on-bread").send
    rows = store.ledger.pending(send.id, limit=100)
    done = Outcomes()
    done.sent.extend((r.id, f"<m{r.id}@test>") for r in rows[:-1])
    done.failed.append((rows[-1].id, "550 no such user"))
    store.ledger.record(done, now=now)
    by_address = {r.email: r.id for r in rows}
    facts = [
        Feedback(FeedbackKind.HARD_BOUNCE, "b1", delivery_id=by_address["reader0@gmail.com"], source="smtp"),
        Feedback(FeedbackKind.COMPLAINT, "c1", delivery_id=by_address["reader1@gmail.com"], source="smtp"),
        Feedback(
            FeedbackKind.UNSUBSCRIBE, "u1", delivery_id=by_address["reader0@mail.example.org"], source="smtp"
        ),
    ]
    store.feedback.apply(facts, now=now, policy=BouncePolicy(), hasher=lambda a: a)
    return send.id


@pytest.fixture
def console(
    web_settings: Callable[..., Settings],
    store: Store,
    make_app: Callable[..., FastAPI],
    web_clock: Clock,
    write_issue,
) -> Iterator[tuple[TestClient, Store, Settings, int]]:
    write_issue("issues/on-bread.md", article("On bread"))
    write_issue("issues/broken.md", "---\ntitle: [unclosed\n---\nBody\n")
    add_editor(store, "ann@example.org", PASSWORD, role="editor", name="Ann", actor="cli", now=web_clock())
    add_editor(store, "vic@example.org", PASSWORD, role="viewer", name="", actor="cli", now=web_clock())
    send_id = seed(store, web_clock())
    Queue(store).put("next-week", web_clock() + timedelta(days=7), now=web_clock())
    settings = web_settings(site={"url": "http://testserver", "timezone": "America/New_York"})
    app = make_app(settings, store)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
        yield client, store, settings, send_id


def test_dashboard_shows_queue_sends_growth_and_problems(console, web_clock: Clock) -> None:
    client, store, settings, send_id = console
    sign_in(client, "ann@example.org")
    r = client.get("/admin/dashboard")
    assert r.status_code == 200, r.text
    at = web_clock() + timedelta(days=7)
    local = at.astimezone(settings.site.tz)
    assert _table(r.text, "next") == [
        ["next-week", "queued", f"{local:%Y-%m-%d %H:%M} {local.tzname()}", f"{at:%Y-%m-%d %H:%M} UTC"]
    ]
    counts = store.ledger.counts(send_id)
    (row,) = _table(r.text, "recent")
    assert row[:9] == ["issue:on-bread", "scheduled", "9", str(counts.sent), "1", "0", "1", "1", "1"]
    growth = weekly_growth(store, until=web_clock(), weeks=12)
    assert _table(r.text, "growth") == [
        [f"{w.start:%Y-%m-%d}", str(w.confirmed), str(w.unsubscribed), str(w.bounced)] for w in growth
    ]
    assert sum(w.confirmed for w in growth) == 9 and growth[-1].bounced == 1 and growth[-1].unsubscribed == 1
    assert "issues/broken.md" in r.text  # the `publisher check` problem
    assert 'role="img"' in r.text and '<title id="chart-growth-title">' in r.text
    assert "<script" not in r.text.split("<svg", 1)[1]  # the chart carries no script


def test_recent_sends_counts_match_the_deliveries_rows(console, web_clock: Clock) -> None:
    """The dashboard's counts (one query for several sends) agree with a plain grouped count of the rows."""
    _client, store, _settings, send_id = console
    pending = store.ledger.plan_send("issue", "issue:pending", now=web_clock()).send.id
    empty = store.ledger.plan_send("issue", "issue:empty", now=web_clock()).send.id
    with store.write() as conn:  # an old send whose deliveries rows were pruned
        conn.execute(sa.delete(deliveries).where(deliveries.c.send_id == empty))
        rows = conn.execute(
            sa.select(deliveries.c.send_id, deliveries.c.status, sa.func.count()).group_by(
                deliveries.c.send_id, deliveries.c.status
            )
        ).all()
    tallies: dict[int, dict[str, int]] = {}
    for sid, status, n in rows:
        tallies.setdefault(sid, {})[status] = n
    counts = store.ledger.all_counts([send_id, pending, empty, 10**9])
    assert set(counts) == {send_id, pending, empty}
    for sid, c in counts.items():
        assert (c.pending, c.sent, c.failed, c.skipped) == tuple(
            tallies.get(sid, {}).get(s, 0) for s in ("pending", "sent", "failed", "skipped")
        )
    assert counts[send_id].failed == 1 and counts[pending].pending == counts[pending].planned > 0
    assert counts[empty] == SendCounts(planned=counts[pending].planned)
    assert store.ledger.all_counts() == counts  # these are all the sends there are


def test_report_by_domain_matches_the_store(console) -> None:
    client, store, _settings, send_id = console
    sign_in(client, "ann@example.org")
    r = client.get(f"/admin/sends/{send_id}")
    assert r.status_code == 200, r.text
    expected = [
        [
            domain,
            str(found.get("sent", 0)),
            str(found.get("hard_bounce", 0) + found.get("soft_bounce", 0)),
            str(found.get("complaint", 0)),
            str(found.get("unsubscribe", 0)),
        ]
        for domain, found in store.feedback.outcomes_by_domain(send_id).items()
    ]
    assert _table(r.text, "domains-caption") == expected
    assert expected[0] == ["gmail.com", "5", "1", "1", "0"]
    api_like = store.feedback.outcomes_by_send(send_id)
    assert api_like == {"hard_bounce": 1, "complaint": 1, "unsubscribe": 1}
    assert 'id="chart-domains"' in r.text


def test_report_shows_clicks_per_link_with_machines_apart(console) -> None:
    client, store, _settings, send_id = console
    sign_in(client, "ann@example.org")
    info = store.ledger.get_send_by_id(send_id)
    assert info is not None
    before = client.get(f"/admin/sends/{send_id}").text
    assert "links-caption" not in before and "No clicks recorded" in before  # links not rewritten
    at = datetime.now(info.created_at.tzinfo) if info.created_at.tzinfo else datetime.now()
    store.clicks.record_links(info.key, ["https://example.org/a", "https://example.org/b?x=<1>"], now=at)
    a, b = store.clicks.target(info.key, 1), store.clicks.target(info.key, 2)
    assert a is not None and b is not None
    store.clicks.record(
        [Click(b.link_id, at, "human")] * 3 + [Click(a.link_id, at, "human"), Click(b.link_id, at, "scanner")]
    )
    r = client.get(f"/admin/sends/{send_id}")
    assert r.status_code == 200
    assert _table(r.text, "links-caption") == [
        ["2. https://example.org/b?x=<1>", "3", "1"],  # escaped in the page, read back as text
        ["1. https://example.org/a", "1", "0"],
    ]
    assert 'id="chart-links"' in r.text and "&lt;1&gt;" in r.text


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("abc", 422),
        ("-1", 422),
        ("0", 422),
        ("9" * 30, 422),
        ("1.5", 422),
        ("4611686018427387905", 422),
        ("4611686018427387904", 404),
    ],
)
def test_hostile_send_ids_are_refused(console, path: str, status: int) -> None:
    client, *_ = console
    sign_in(client, "ann@example.org")
    assert client.get(f"/admin/sends/{path}").status_code == status


def test_unknown_send_is_404(console) -> None:
    client, _store, _settings, send_id = console
    sign_in(client, "ann@example.org")
    assert client.get(f"/admin/sends/{send_id + 1000}").status_code == 404


def test_viewer_sees_dashboard_and_reports(console) -> None:
    client, _store, _settings, send_id = console
    sign_in(client, "vic@example.org")
    assert client.get("/admin/dashboard").status_code == 200
    assert client.get(f"/admin/sends/{send_id}").status_code == 200


def test_without_a_session_pages_redirect_and_the_stream_is_401(console) -> None:
    client, _store, _settings, send_id = console
    for path in ("/admin/dashboard", f"/admin/sends/{send_id}"):
        r = client.get(path, headers={"Accept": "text/html"})
        assert r.status_code == 303 and "/admin/login?next=" in r.headers["location"]
    r = client.get("/admin/events", headers={"Accept": "text/event-stream"})
    assert r.status_code == 401


def _events(lines: Iterator[str]) -> Iterator[dict]:
    """The data of each ``progress`` event read from an SSE stream."""
    name = ""
    for line in lines:
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and name == "progress":
            yield json.loads(line.split(":", 1)[1])


def test_event_stream_follows_a_running_send_to_done(
    web_settings: Callable[..., Settings], store: Store, make_app, web_clock: Clock, live_server
) -> None:
    add_editor(store, "ann@example.org", PASSWORD, role="viewer", name="", actor="cli", now=web_clock())
    for i in range(4):
        store.subscribers.add(f"r{i}@example.org", now=web_clock())
    send = store.ledger.plan_send("issue", "issue:live", now=web_clock(), issue_slug="live").send
    store.ledger.acquire(send.id, "test-drain", now=web_clock(), ttl=timedelta(minutes=5))
    rows = store.ledger.pending(send.id)
    half = Outcomes()
    half.sent.extend((r.id, f"<m{r.id}@t>") for r in rows[:2])
    store.ledger.record(half, now=web_clock())  # as the drain records accepted messages

    sock = bound_socket()
    host, port = sock.getsockname()
    settings = web_settings(site={"url": f"http://{host}:{port}"})
    app = make_app(settings, store)
    app.state.admin_events = StreamPolicy(poll=0.05, lifetime=20, keepalive=1)
    handle = live_server(settings, app, sock=sock)
    with httpx.Client(base_url=handle.url, follow_redirects=False, timeout=10) as client:
        assert client.get("/admin/events", headers={"Accept": "text/event-stream"}).status_code == 401
        sign_in(client, "ann@example.org")
        with client.stream("GET", "/admin/events", headers={"Accept": "text/event-stream"}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = _events(stream.iter_lines())
            first = next(events)["sends"]
            assert [(s["id"], s["status"], s["sent"], s["planned"], s["percent"]) for s in first] == [
                (send.id, "running", 2, 4, 50)
            ]
            rest = Outcomes()
            rest.sent.extend((r.id, f"<m{r.id}@t>") for r in rows[2:])
            store.ledger.record(rest, now=web_clock())
            store.ledger.release(send.id, "test-drain", now=web_clock())
            for event in events:  # the drain's last batch, then the lease released: done
                last = event["sends"]
                if last and last[0]["status"] != "running":
                    break
            assert [(s["status"], s["sent"], s["percent"]) for s in last] == [("done", 4, 100)]


def test_charts_are_named_images_with_no_script_or_inline_style() -> None:
    svg = bar_chart(DOMAIN_CHART, "By domain", "what it shows", ["ok.org", "x\x00<script>y"], [[1, 2]] * 4)
    assert 'role="img"' in svg and 'aria-labelledby="chart-domains-title chart-domains-desc"' in svg
    assert '<desc id="chart-domains-desc">what it shows</desc>' in svg
    assert "<script" not in svg and "<style" not in svg and "style=" not in svg
    assert "&lt;script&gt;" in svg  # a hostile label is text, not markup
    assert "#chart-domains" in charts_css()  # the styles pygal would have inlined, served instead
