"""Running the app with uvicorn: in the foreground (``publisher serve``) or in a thread.

``start_server`` is for ``publisher run`` (the scheduler owns the main thread)
and for tests: uvicorn's ``Server`` in a daemon thread, started before it
returns (so the port is known, also for port 0) and stopped cleanly by
``stop()``, which lets in-flight requests finish and runs the app's shutdown.

Both run uvicorn's h11 protocol with the limits of the ``web:`` section:
``max_header_bytes`` (h11's incomplete-event cap: a bigger request line plus
headers is a 400), ``keep_alive_timeout`` (an idle connection is closed) and
``header_timeout``. uvicorn has no deadline for reading a request's headers
(its keep-alive timer is only armed after a response, and any byte disarms
it), so one client trickling a header byte every few seconds could hold a
connection for ever; ``HeaderDeadlineH11`` closes a connection whose headers
are not all in ``header_timeout`` seconds after it opened or after the last
response. X-Forwarded-For/-Proto are believed only from ``trusted_proxies``
(uvicorn's own default trusts 127.0.0.1, which would let any local process,
or a proxy we did not configure, pick the client address the limits count).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from publisher.config import Settings
from publisher.errors import PublisherError
from publisher.ops.scaleout import WorkerQueue
from publisher.web.app import create_app


class HeaderDeadlineH11(H11Protocol):
    """uvicorn's h11 protocol, plus a deadline for each request's headers (against slow-loris)."""

    header_timeout = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # the headers are in; the app's own reading has no deadline here

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()  # the next request's headers get the same time

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def _protocol(header_timeout: float) -> type[HeaderDeadlineH11]:
    """The protocol class with this server's header deadline (uvicorn builds one per connection)."""
    return type("PublisherH11", (HeaderDeadlineH11,), {"header_timeout": header_timeout})


def _config(
    settings: Settings, app: FastAPI, host: str | None, port: int | None, log_level: str
) -> uvicorn.Config:
    web = settings.web
    return uvicorn.Config(
        app,
        host=host or web.host,
        port=web.port if port is None else port,
        log_level=log_level,
        http=_protocol(web.header_timeout),
        h11_max_incomplete_event_size=web.max_header_bytes,
        timeout_keep_alive=web.keep_alive_timeout,
        proxy_headers=bool(web.trusted_proxies),
        forwarded_allow_ips=[str(network) for network in web.trusted_proxies],
        server_header=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )


def serve(
    settings: Settings, *, host: str | None = None, port: int | None = None, app: FastAPI | None = None
) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM stop it gracefully)."""
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
    workers: WorkerQueue | None = None,
) -> ServerHandle:
    """Start uvicorn in a thread and return once it accepts connections.

    ``sock``: an already bound socket to serve on (lets a caller learn the port
    before building settings that name it, e.g. ``site.url`` in tests); ``workers``: see ``create_app``.
    """
    app = app or create_app(settings, workers=workers)
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
