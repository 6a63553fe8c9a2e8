"""`publisher worker [--concurrency N]`: a scale-out worker (PostgreSQL + procrastinate)."""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Annotated

import typer

from publisher.cli.common import ConfigOption, err_console, escape, reports_errors, settings
from publisher.deliver import describe_transport
from publisher.store import open_store
from publisher.worker import BatchRunner, build_app, conninfo, run_worker


def register(app: typer.Typer) -> None:
    app.command("worker")(worker_command)


@reports_errors
def worker_command(
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            "-n",
            min=1,
            max=4,  # each batch holds two of the store's ten pooled connections
            help="Batches this worker sends at once, each over email.concurrency SMTP connections "
            "(for more, start more workers).",
        ),
    ] = 1,
    stalled_after: Annotated[
        float,
        typer.Option(
            "--stalled-after",
            min=1.0,
            help="Seconds without a heartbeat before a worker's jobs are retried (use one value everywhere).",
        ),
    ] = 30.0,
    config: ConfigOption = None,
) -> None:
    """Send queued batches: run on any number of machines against one PostgreSQL database (Ctrl-C stops)."""
    cfg = settings(config)
    conninfo(cfg.database.url)  # refuses SQLite before anything opens
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    name = f"{socket.gethostname()}:{os.getpid()}"
    if not os.environ.get(cfg.secret_env):
        err_console.print(
            f"[yellow]warning:[/] {cfg.secret_env} is not set, so this worker signs links with the key in "
            f"{escape(str(cfg.paths.state))}; jobs planned with another key are refused",
            soft_wrap=True,
        )
    with open_store(cfg.database.url) as store:  # also applies the queue's schema on first use
        app = build_app(cfg, BatchRunner(cfg, store), stalled_after=stalled_after)
        err_console.print(
            f"worker {escape(name)}: up to {concurrency} batch(es) at once via "
            f"{escape(describe_transport(cfg, 'worker'))}; waiting for jobs (Ctrl-C stops)",
            highlight=False,
            soft_wrap=True,
        )
        run_worker(app, concurrency=concurrency, stalled_after=stalled_after, name=name)
    err_console.print(f"worker {escape(name)}: stopped", highlight=False)
