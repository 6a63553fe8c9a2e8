"""`publisher run` serves the web app beside the scheduler, and runs without it when it cannot."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

import httpx
import pytest

from publisher.config import Settings
from publisher.schedule.web import start_web


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_start_web_serves_on_the_configured_port_until_stopped(
    web_settings: Callable[..., Settings],
) -> None:
    port = _free_port()
    web = start_web(web_settings(web={"host": "127.0.0.1", "port": port}))
    assert web is not None
    assert web.url == f"http://127.0.0.1:{port}"
    assert httpx.get(web.url + "/subscribe").status_code == 200
    web.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(web.url + "/subscribe", timeout=2)


def test_start_web_leaves_the_scheduler_alone_when_the_port_is_taken(
    web_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = web_settings(web={"host": "127.0.0.1", "port": taken.getsockname()[1]})
        with caplog.at_level(logging.ERROR, logger="publisher.run"):
            assert start_web(settings) is None
    assert "running the scheduler only" in caplog.text
