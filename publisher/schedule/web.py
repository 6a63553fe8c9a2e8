"""Serving the web app beside the scheduler (`publisher run`).

``publisher.web`` is a sibling layer of ``publisher.schedule`` (the layer contract in
pyproject.toml keeps siblings apart), so it is looked up by name at start rather than
imported: if it cannot be imported, or its server cannot start, `publisher run` is a
scheduler only and says so, since sending on time matters more than the web pages.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

from publisher.config import Settings
from publisher.errors import PublisherError
from publisher.ops.scaleout import WorkerQueue

log = logging.getLogger("publisher.run")


@dataclass
class WebServer:
    """The running web app: where it listens, and the handle that stops it."""

    url: str
    handle: Any  # publisher.web.ServerHandle

    def stop(self) -> None:
        self.handle.stop()


def start_web(settings: Settings, workers: WorkerQueue | None = None) -> WebServer | None:
    """Start ``publisher.web.start_server`` in its thread, or None (logged) when it cannot run."""
    try:
        web = importlib.import_module("publisher.web")
    except ImportError as exc:
        log.info("no web app (%s): running the scheduler only", exc)
        return None
    try:
        handle = web.start_server(settings, workers=workers)  # API sends scale out like scheduled ones
    except PublisherError as exc:  # sending on time matters more than the web pages
        log.error("%s (%s); running the scheduler only", exc.message, exc.hint or "use --no-web")
        return None
    return WebServer(handle.url, handle)
