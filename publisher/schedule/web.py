"""Serving the web app beside the scheduler, when ``publisher.web`` provides one.

``publisher.web`` is optional here: if it offers ``start_server(settings)`` we
use it (and stop what it returns); if it offers ``create_app(settings)`` we
run that under uvicorn on ``web.host``/``web.port`` in a thread; otherwise
`publisher run` is a scheduler only and says so.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from publisher.config import Settings
from publisher.errors import PublisherError

log = logging.getLogger("publisher.run")


@dataclass
class WebServer:
    url: str
    handle: Any
    thread: threading.Thread | None = None

    def stop(self) -> None:
        h = self.handle
        if hasattr(h, "should_exit"):  # a uvicorn.Server we started
            h.should_exit = True
        else:
            for name in ("stop", "shutdown", "close"):
                if callable(getattr(h, name, None)):
                    getattr(h, name)()
                    break
        if self.thread is not None:
            self.thread.join(timeout=10)


def start_web(settings: Settings) -> WebServer | None:
    try:
        web = importlib.import_module("publisher.web")
    except ImportError as exc:
        log.info("no web app (%s): running the scheduler only", exc)
        return None
    url = f"http://{settings.web.host}:{settings.web.port}"
    if callable(getattr(web, "start_server", None)):
        try:
            handle = web.start_server(settings)
        except PublisherError as exc:  # sending on time matters more than the web pages
            log.error("%s (%s); running the scheduler only", exc.message, exc.hint or "use --no-web")
            return None
        return WebServer(getattr(handle, "url", url), handle)
    if callable(getattr(web, "create_app", None)):
        import uvicorn

        config = uvicorn.Config(
            web.create_app(settings), host=settings.web.host, port=settings.web.port, log_level="warning"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="web", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not server.started:
            log.error("the web app did not start on %s; running the scheduler only", url)
            server.should_exit = True
            return None
        return WebServer(url, server, thread)
    log.info("publisher.web has no start_server/create_app yet: running the scheduler only")
    return None
