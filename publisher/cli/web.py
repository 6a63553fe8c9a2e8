"""`publisher serve [--host --port]`: the web app alone (sign-up, links from mail, archive, admin API)."""

from __future__ import annotations

from typing import Annotated

import typer

from publisher.cli.common import ConfigOption, console, reports_errors, settings
from publisher.ops.confirm import confirmations_go_to
from publisher.web import create_app, serve
from publisher.web.pages import public_url
from publisher.worker import JobQueue


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)


@reports_errors
def serve_command(
    host: Annotated[
        str | None,
        typer.Option("--host", help="Address to listen on (default: web.host).", show_default=False),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", "-p", min=0, max=65535, help="Port (default: web.port).", show_default=False),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Serve the web app: subscribe, confirm, unsubscribe, preferences, the archive, feeds and /api."""
    cfg = settings(config)
    # refuses to start without the web templates, before binding the port
    app = create_app(cfg, workers=JobQueue())
    where = f"{host or cfg.web.host}:{cfg.web.port if port is None else port}"
    console.print(
        f"serving {cfg.site.title} on http://{where} (Ctrl-C stops)", highlight=False, soft_wrap=True
    )
    # where a trial's confirmation mail lands, and where its links lead: the first things one looks for
    console.print(
        f"confirmation mails: {confirmations_go_to(cfg)}; their links lead to {public_url(cfg)}/",
        highlight=False,
        soft_wrap=True,
    )
    if not (cfg.paths.output / "index.html").exists():
        console.print("note: the site is not built yet; run `publisher build` for the archive and feeds")
    serve(cfg, host=host, port=port, app=app)
