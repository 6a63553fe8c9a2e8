"""Running the app: `publisher serve` in a subprocess, and start_server's clean stop in a thread."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from publisher.config import Settings
from publisher.errors import PublisherError
from publisher.web import create_app, start_server
from tests.fixtures_web import SECRET, bound_socket, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_publisher_serve_runs_and_stops_on_sigterm(built_site: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PUBLISHER_SECRET_KEY": SECRET,
        "PUBLISHER_API_TOKEN": "t0ken-0123456789abcdef0123456789abcdef",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", "from publisher.cli import main; main()", "serve"]  # noqa: RUF005
        + ["--config", str(built_site / "config.yaml"), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def up() -> httpx.Response | None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/feed.xml", timeout=2)
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()
                return None

        feed = wait_for(up, timeout=20)
        assert feed.status_code == 200 and feed.headers["content-type"].startswith("application/rss+xml")
        assert httpx.get(f"http://127.0.0.1:{port}/subscribe").status_code == 200
        api = httpx.get(
            f"http://127.0.0.1:{port}/api/issues",
            headers={"Authorization": "Bearer t0ken-0123456789abcdef0123456789abcdef"},
        )
        assert api.status_code == 200
        slugs = {i["slug"] for i in api.json()}
        assert {"summer-of-water", "why-bread-rises"} <= slugs
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    # uvicorn shuts down gracefully, then re-raises the signal (so the exit says SIGTERM)
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert "Application shutdown complete" in err
    assert f"127.0.0.1:{port}" in out


def test_start_server_stops_cleanly_and_frees_the_port(web_settings: Callable[..., Settings]) -> None:
    settings = web_settings()
    app = create_app(settings, environ={})
    handle = start_server(settings, app, sock=bound_socket())
    assert httpx.get(handle.url + "/subscribe").status_code == 200
    # the app's own store (opened on first use) is closed at shutdown
    assert httpx.get(handle.url + "/api/issues").status_code == 503
    started = time.monotonic()
    handle.stop()
    assert not handle.thread.is_alive() and time.monotonic() - started < 10
    assert app.state.web.stopping.is_set()
    with pytest.raises(httpx.ConnectError):
        httpx.get(handle.url + "/subscribe", timeout=2)
    with socket.socket() as s:  # the port is free again
        s.bind(("127.0.0.1", handle.port))


def test_start_server_reports_a_port_in_use(web_settings: Callable[..., Settings]) -> None:
    settings = web_settings()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(PublisherError, match="did not start"):
            start_server(
                settings, create_app(settings), host="127.0.0.1", port=taken.getsockname()[1], timeout=5
            )
