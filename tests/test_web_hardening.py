"""Deployment hardening: HSTS and no-store, secret lengths, the API-token throttle, text rules,
auth before the body, uvicorn's limits, trusted proxies, and limits shared across processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from publisher.config import Settings
from publisher.errors import ConfigError
from publisher.store import Store, open_store
from publisher.store.buckets import StoreBuckets
from publisher.web import ServerHandle, create_app
from publisher.web.ratelimit import TokenBuckets
from tests.fixtures_web import API_TOKEN, SECRET, Clock, main_text, wait_for

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
WRONG = {"Authorization": "Bearer " + "w" * 40}
HSTS = "max-age=31536000; includeSubDomains"


@pytest.fixture
def client(
    web_settings: Callable[..., Settings], store: Store, make_app: Callable[..., FastAPI]
) -> TestClient:
    return TestClient(make_app(web_settings(), store))


# -- headers -------------------------------------------------------------------------------------


def test_hsts_on_every_response_of_an_https_site_only(
    web_settings: Callable[..., Settings], store: Store, make_app: Callable[..., FastAPI]
) -> None:
    https = TestClient(make_app(web_settings(), store))
    for r in (
        https.get("/subscribe"),
        https.get("/no-such-page"),
        https.get("/api/issues", headers=AUTH),
        https.get("/api/issues"),
        https.post("/subscribe", content=b"x" * 70_000),
        https.get("/confirm/a%00b"),
    ):
        assert r.headers["strict-transport-security"] == HSTS, r.status_code
    plain = TestClient(make_app(web_settings(site={"url": "http://news.example.org"}), store))
    assert "strict-transport-security" not in plain.get("/subscribe").headers


def test_every_api_answer_is_no_store_errors_included(
    client: TestClient, web_settings: Callable[..., Settings], store: Store
) -> None:
    answers = [
        client.get("/api/issues", headers=AUTH),  # 200
        client.get("/api/issues"),  # 401
        client.get("/api/subscribers/nobody@example.org", headers=AUTH),  # 404
        client.get("/api/nothing-here", headers=AUTH),  # 404 from the catch-all
        client.get("/api/sends?limit=0", headers=AUTH),  # 422
        client.delete("/api/issues/a%00b/queue", headers=AUTH),  # 422 from the guard
        client.request("DELETE", "/api/subscribers/x", content=b"x" * 70_000, headers=AUTH),  # 413
        TestClient(create_app(web_settings(), store=store, environ={})).get("/api/issues"),  # 503
    ]
    assert [r.status_code for r in answers] == [200, 401, 404, 404, 422, 422, 413, 503]
    assert all(r.headers["cache-control"] == "no-store" for r in answers)


# -- secrets -------------------------------------------------------------------------------------


def test_short_secret_key_is_refused_with_a_hint(
    web_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = web_settings()
    monkeypatch.setenv("PUBLISHER_SECRET_KEY", "x" * 31)
    with pytest.raises(ConfigError) as err:
        settings.secret_key()
    assert "PUBLISHER_SECRET_KEY" in str(err.value) and "31 bytes" in str(err.value)
    assert "secrets.token_urlsafe(32)" in (err.value.hint or "")
    with pytest.raises(ConfigError):
        create_app(settings, environ={})
    monkeypatch.setenv("PUBLISHER_SECRET_KEY", "x" * 32)
    assert settings.secret_key() == b"x" * 32


def test_generated_key_file_is_long_enough_and_a_short_one_is_refused(
    web_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = web_settings()
    monkeypatch.delenv("PUBLISHER_SECRET_KEY")
    assert len(settings.secret_key()) == 43  # generated on first use
    (settings.paths.state / "secret.key").write_text("short\n")
    with pytest.raises(ConfigError, match=r"secret\.key"):
        settings.secret_key()


def test_short_api_token_stops_the_app_and_serve(
    web_settings: Callable[..., Settings], built_site: Path
) -> None:
    with pytest.raises(ConfigError) as err:
        create_app(web_settings(), environ={"PUBLISHER_API_TOKEN": "t0ken"})
    assert "PUBLISHER_API_TOKEN" in str(err.value) and "secrets.token_urlsafe(32)" in (err.value.hint or "")
    env = {**os.environ, "PUBLISHER_SECRET_KEY": SECRET, "PUBLISHER_API_TOKEN": "t0ken"}
    cmd = [sys.executable, "-c", "from publisher.cli import main; main()", "serve"]
    done = subprocess.run(
        [*cmd, "--config", str(built_site / "config.yaml"), "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "PUBLISHER_API_TOKEN" in done.stdout + done.stderr


# -- the API token throttle ----------------------------------------------------------------------


def test_wrong_tokens_are_throttled_per_client(
    web_settings: Callable[..., Settings], store: Store, make_app: Callable[..., FastAPI], web_clock: Clock
) -> None:
    app = make_app(web_settings(), store)
    attacker = TestClient(app, client=("203.0.113.9", 4000))
    editor = TestClient(app, client=("198.51.100.2", 4000))
    assert [attacker.get("/api/issues", headers=WRONG).status_code for _ in range(10)] == [401] * 10
    r = attacker.get("/api/issues", headers=WRONG)
    assert r.status_code == 429 and 300 <= int(r.headers["retry-after"]) <= 400
    assert r.json()["error"] and r.headers["cache-control"] == "no-store"
    assert attacker.get("/api/issues", headers=AUTH).status_code == 429  # no oracle while throttled
    assert attacker.put("/api/issues/x/queue", content=b"{", headers=AUTH).status_code == 429
    assert editor.get("/api/issues", headers=AUTH).status_code == 200  # others go on working
    web_clock.advance(seconds=int(r.headers["retry-after"]))
    assert attacker.get("/api/issues", headers=AUTH).status_code == 200
    assert attacker.get("/api/issues", headers=WRONG).status_code == 401
    assert attacker.get("/api/issues", headers=WRONG).status_code == 429


# -- invalid text and auth before the body -------------------------------------------------------


def test_nul_and_control_characters_in_paths_are_422_never_500(client: TestClient) -> None:
    for method, path in [
        ("DELETE", "/api/issues/a%00b/queue"),
        ("PUT", "/api/issues/a%00b/queue"),
        ("GET", "/api/subscribers/a%00@example.org"),
        ("DELETE", "/api/subscribers/a%0d%0aBcc:x@example.org"),
        ("GET", "/api/subscribers/a%07b/export"),
        ("GET", "/api/sends?limit=%00"),
        ("GET", "/confirm/a%00b"),
        ("POST", "/unsubscribe/a%00b"),
        ("GET", "/preferences/%1b"),
        ("GET", "/feed.xml%00.html"),
        ("GET", "/subscribe?email=a%00b"),
    ]:
        r = client.request(method, path, headers=AUTH, json={"at": "2030-01-01T08:00:00Z"})
        assert r.status_code == 422, (method, path, r.text[:200])
        if path.startswith("/api"):
            assert "character" in r.json()["error"]
        else:
            assert "text/html" in r.headers["content-type"]


def test_bad_text_in_api_json_bodies_is_422(client: TestClient) -> None:
    for raw in [
        b'{"at": "2030-01-01T08:00:00Z\\u0000"}',
        b'{"at": "\\ud800"}',
        b'{"at\\u0000": "2030-01-01T08:00:00Z"}',
        b'{"at": "2030-01-01T08:00:00Z", "x": ["ok", "\\u0007"]}',
        b'{"at": "2030-01-01T08:00:00Z", "x": {"y": "\\udfff tail"}}',
    ]:
        r = client.put(
            "/api/issues/nope/queue", content=raw, headers={**AUTH, "Content-Type": "application/json"}
        )
        assert r.status_code == 422, (raw, r.text)
        [problem] = r.json()["problems"]  # ours, not pydantic's "not a valid datetime"
        assert problem.startswith("body.") and ("character" in problem or "surrogate" in problem), problem


def test_long_and_odd_values_are_answered_never_500(client: TestClient) -> None:
    long = "x" * 10_000
    assert client.delete(f"/api/issues/{long}/queue", headers=AUTH).json() == {
        "slug": long,
        "unqueued": False,
    }
    assert client.get(f"/api/subscribers/{long}@example.org", headers=AUTH).status_code == 404
    assert client.get("/api/subscribers/%ED%A0%80@example.org", headers=AUTH).status_code == 404
    r = client.put("/api/issues/nope/queue", json={"at": long}, headers=AUTH)
    assert r.status_code == 422
    r = client.put("/api/issues/nope/queue", json={"at": "2030-01-01T08:00:00Z\t"}, headers=AUTH)
    assert r.status_code < 500  # a tab is allowed text; whether it is a time is the model's business


def test_unauthenticated_api_bodies_are_not_parsed(client: TestClient) -> None:
    for headers in ({}, WRONG):
        r = client.put(
            "/api/issues/x/queue",
            content=b"{not json",
            headers={**headers, "Content-Type": "application/json"},
        )
        assert r.status_code == 401, r.text
        assert client.put("/api/issues/x/queue", json={"at": "\x00"}, headers=headers).status_code == 401
    r = client.put(
        "/api/issues/x/queue", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert r.status_code == 422


# -- uvicorn: header deadline, keep-alive, header size, CR/LF; trusted proxies ------------------


def raw_connection(handle: ServerHandle) -> socket.socket:
    return socket.create_connection((handle.host, handle.port), timeout=10)


def closed_after(sock: socket.socket, drip: bytes = b"", every: float = 0.2, limit: float = 8.0) -> float:
    """Seconds until the server closes ``sock`` while ``drip`` is sent every ``every`` seconds."""
    started = time.monotonic()
    sock.settimeout(every)
    while time.monotonic() - started < limit:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            pass
        except ConnectionResetError:
            return time.monotonic() - started
        if drip:
            try:
                sock.sendall(drip)
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started
    return limit


@pytest.fixture
def timed_server(
    web_settings: Callable[..., Settings],
    store: Store,
    make_app: Callable[..., FastAPI],
    live_server: Callable[..., ServerHandle],
) -> ServerHandle:
    settings = web_settings(web={"header_timeout": 1, "keep_alive_timeout": 1, "max_header_bytes": 4096})
    return live_server(settings, make_app(settings, store))


def test_slow_headers_and_idle_connections_are_closed(timed_server: ServerHandle) -> None:
    with raw_connection(timed_server) as silent:
        assert closed_after(silent) < 3
    with raw_connection(timed_server) as slow:
        slow.sendall(b"GET /subscribe HTTP/1.1\r\nHost: x\r\n")
        assert closed_after(slow, drip=b"X-A: b\r\n") < 3  # still trickling headers, cut off anyway
    with raw_connection(timed_server) as idle:
        idle.sendall(b"GET /subscribe HTTP/1.1\r\nHost: x\r\n\r\n")
        idle.settimeout(5)
        assert idle.recv(65536).startswith(b"HTTP/1.1 200")
        assert closed_after(idle) < 3


def test_oversized_headers_and_cr_lf_in_headers_are_400(timed_server: ServerHandle) -> None:
    with raw_connection(timed_server) as sock:  # h11 holds at most max_header_bytes of unfinished headers
        sock.sendall(b"GET /subscribe HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * 10_000)
        assert sock.recv(65536).startswith(b"HTTP/1.1 400")
    with httpx.Client(base_url=timed_server.url) as http:
        assert http.get("/subscribe", headers={"X-Ok": "x" * 1000}).status_code == 200
    for header in (b"X-A: a\rb", b"X-A: a\nb", b"X-A: a\x00b", b"X-\r\nA: b"):
        with raw_connection(timed_server) as sock:
            sock.sendall(b"GET /subscribe HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 400"), header


def throttled_after_ten_failures(url: str, first: str, second: str) -> int:
    """Fail ten times as ``first`` (X-Forwarded-For), then answer for one try as ``second``."""
    with httpx.Client(base_url=url) as http:
        for _ in range(10):
            assert http.get("/api/issues", headers={**WRONG, "X-Forwarded-For": first}).status_code == 401
        return http.get("/api/issues", headers={**WRONG, "X-Forwarded-For": second}).status_code


@pytest.mark.parametrize(("trusted", "expected"), [(["127.0.0.1"], 401), ([], 429)])
def test_x_forwarded_for_counts_only_from_trusted_proxies(
    web_settings: Callable[..., Settings],
    store: Store,
    make_app: Callable[..., FastAPI],
    live_server: Callable[..., ServerHandle],
    trusted: list[str],
    expected: int,
) -> None:
    """Behind a trusted proxy each real client has its own bucket; from anyone else the header
    is ignored, so a client cannot escape its bucket by sending X-Forwarded-For itself."""
    settings = web_settings(web={"trusted_proxies": trusted})
    server = live_server(settings, make_app(settings, store))
    assert throttled_after_ten_failures(server.url, "203.0.113.7", "203.0.113.8") == expected


def test_trusted_proxies_must_be_addresses(web_settings: Callable[..., Settings]) -> None:
    for wrong in ("proxy.example.org", "10.0.0.1/8", "*"):
        with pytest.raises(ConfigError, match=r"web\.trusted_proxies"):
            web_settings(web={"trusted_proxies": [wrong]})
    assert len(web_settings(web={"trusted_proxies": ["10.0.0.0/8", "::1"]}).web.trusted_proxies) == 2


# -- buckets in the database ---------------------------------------------------------------------


@pytest.mark.postgres
def test_store_buckets_behave_like_memory_buckets(pg_schema_url: Callable[[], str]) -> None:
    store = open_store(pg_schema_url())
    try:
        memory, shared = TokenBuckets(3, 6.0), StoreBuckets("t", 3, 6.0, lambda: store)
        keys = ["a@example.org", "\x00", "\ud800", "x" * 10_000, "a@example.org\r\nBcc: b"]
        now = 1_800_000_000.0
        for step in range(40):
            key = keys[step % len(keys)] if step % 3 else keys[0]
            now += [0.0, 1.0, 700.0, -5.0][step % 4]  # a clock that stands, moves, jumps, goes back
            assert shared.take(key, now) == memory.take(key, now), step
            assert shared.retry_after(key) == memory.retry_after(key), step
            assert shared.retry_after(key, now + 600) == memory.retry_after(key, now + 600), step
        with store.read() as conn:
            stored = {row[0] for row in conn.exec_driver_sql("SELECT key FROM web_buckets")}
        assert len(stored) == len(keys) and all(len(k) == 64 for k in stored)
    finally:
        store.close()


def start_serve(project: Path, db_url: str) -> tuple[subprocess.Popen[str], str]:
    """`publisher serve` on a free port of 127.0.0.1, in a subprocess; returns it and its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {**os.environ, "PUBLISHER_SECRET_KEY": SECRET, "PUBLISHER_API_TOKEN": API_TOKEN}
    cmd = [sys.executable, "-c", "from publisher.cli import main; main()", "serve"]
    proc = subprocess.Popen(
        [*cmd, "--config", str(project / "config.yaml"), "--port", str(port)],
        env={**env, "PUBLISHER_DATABASE__URL": db_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture
def two_servers(built_site: Path, tmp_path: Path, pg_schema_url: Callable[[], str]) -> Iterator[list[str]]:
    """Two `publisher serve` processes on one PostgreSQL database (a fresh schema)."""
    project = tmp_path / "site"
    shutil.copytree(built_site, project)
    db_url = pg_schema_url()
    open_store(db_url).close()  # migrated once, before both start
    procs, urls = zip(*(start_serve(project, db_url) for _ in range(2)), strict=True)
    try:
        for url, proc in zip(urls, procs, strict=True):

            def up(url: str = url, proc: subprocess.Popen[str] = proc) -> bool:
                assert proc.poll() is None, proc.communicate()
                try:
                    return httpx.get(url + "/subscribe", timeout=2).status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(up, timeout=30)
        yield list(urls)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.communicate(timeout=20)


@pytest.mark.postgres
def test_sign_up_limit_holds_across_two_processes(two_servers: list[str]) -> None:
    a, b = two_servers
    address = f"reader-{uuid.uuid4().hex[:8]}@example.org"
    form = {"email": address, "frequency": "daily", "timezone": "Europe/Paris"}
    answers = [httpx.post(url + "/subscribe", data=form, timeout=10) for url in (a, b, a, b)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429], [
        main_text(r.text)[:300] for r in answers
    ]
    assert int(answers[-1].headers["retry-after"]) > 0
    other = httpx.post(b + "/subscribe", data={**form, "email": "x" + address}, timeout=10)
    assert other.status_code == 200  # a per-address limit: another address is not held up


@pytest.mark.postgres
def test_api_token_throttle_holds_across_two_processes(two_servers: list[str]) -> None:
    a, b = two_servers
    codes = [httpx.get(url + "/api/issues", headers=WRONG).status_code for url in (a, b) * 5]
    assert codes == [401] * 10
    assert httpx.get(b + "/api/issues", headers=WRONG).status_code == 429
    assert httpx.get(a + "/api/issues", headers=AUTH).status_code == 429
