"""Running the app with uvicorn: in the foreground (``publisher serve``) or in a thread.

``start_server`` is for ``publisher run`` (the scheduler owns the main thread)
and for tests: uvicorn's ``Server`` in a daemon thread, started before it
returns (so the port is known, also for port 0) and stopped cleanly by
``stop()``, which lets in-flight requests finish and runs the app's shutdown.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from publisher.config import Settings
from publisher.errors import PublisherError


def _config(
    settings: Settings, app: FastAPI, host: str | None, port: int | None, log_level: str
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host or settings.web.host,
        port=settings.web.port if port is None else port,
        log_level=log_level,
        proxy_headers=True,  # trust X-Forwarded-For from forwarded_allow_ips (127.0.0.1 by default)
        server_header=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )


def serve(
    settings: Settings, *, host: str | None = None, port: int | None = None, app: FastAPI | None = None
) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM stop it gracefully)."""
    from publisher.web.app import create_app

    where = f"{host or settings.web.host}:{settings.web.port if port is None else port}"
    server = uvicorn.Server(_config(settings, app or create_app(settings), host, port, "info"))
    server.run()
    if not server.started:
        raise PublisherError(
            f"the web server could not start on {where}",
            hint="is the port already in use? pick another with --port or web.port",
        )


@dataclass
class ServerHandle:
    """A server running in a background thread."""

    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 15.0) -> None:
        """Stop accepting, finish in-flight requests, run shutdown, and join the thread."""
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(5)


def start_server(
    settings: Settings,
    app: FastAPI | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    sock: socket.socket | None = None,
    log_level: str = "warning",
    timeout: float = 15.0,
) -> ServerHandle:
    """Start uvicorn in a thread and return once it accepts connections.

    ``sock``: an already bound socket to serve on (lets a caller learn the port
    before building settings that name it, e.g. ``site.url`` in tests).
    """
    from publisher.web.app import create_app

    app = app or create_app(settings)
    bind_host = sock.getsockname()[0] if sock else host or settings.web.host
    server = uvicorn.Server(_config(settings, app, bind_host, port, log_level))
    errors: list[BaseException] = []
    where = f"{bind_host}:{port if port is not None else settings.web.port}"

    def run() -> None:
        try:
            server.run(sockets=[sock] if sock else None)
        except BaseException as exc:  # SystemExit from uvicorn when the bind fails
            errors.append(exc)

    thread = threading.Thread(target=run, name="publisher-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5)
            raise PublisherError(
                f"the web server did not start on {where}" + (f": {errors[0]!r}" if errors else ""),
                hint="is the port already in use? pick another with web.port",
            )
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname() if server.servers else (bind_host, port or 0)
    return ServerHandle(server=server, thread=thread, host=bound[0], port=int(bound[1]))
