"""`publisher demo`: the README's one command — build the sample site and send its newest issue.

It runs the real pipeline on the embedded defaults (SQLite, .eml files in the
outbox) with a few sample subscribers, and is safe to run again: subscribers
are added once and an issue already sent is not sent twice. Outside a project
(no config.yaml here) it first writes the starter project, as `publisher init` does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from publisher.cli.build import build_command
from publisher.cli.common import DEFAULT_CONFIG, ConfigOption, console, escape, reports_errors, settings
from publisher.cli.delivery import send
from publisher.cli.init import scaffold
from publisher.content import load_library
from publisher.deliver import describe_transport
from publisher.errors import PublisherError, relpath
from publisher.ops.send import issue_key
from publisher.store import open_store

SAMPLE_SUBSCRIBERS = (
    ("ana.lima@example.org", "Ana Lima"),
    ("bjorn@example.org", "Björn Østergaard"),
    ("chidi.okafor@example.net", "Chidi Okafor"),
    ("reader@example.com", ""),
)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@reports_errors
def demo(config: ConfigOption = None) -> None:
    """Build the site and send the newest issue to a few sample subscribers (safe to re-run)."""
    if config is None and not DEFAULT_CONFIG.is_file():
        made, _ = scaffold(Path("."))
        console.print(
            f"no config.yaml here: made the sample project ({escape(', '.join(made))})", highlight=False
        )
    cfg = settings(config)
    build_command(config=config, out=None, watch=False, jobs=None, emails=True)
    library = load_library(cfg)
    if not library.published_issues:
        raise PublisherError("there is no published issue to send", hint="add one under issues/")
    newest = library.published_issues[0]
    now = datetime.now(UTC)
    added = 0
    with open_store(cfg.database.url) as store:
        for email, name in SAMPLE_SUBSCRIBERS:
            if store.subscribers.get(email) is None:
                store.subscribers.add(email, name=name, now=now)
                added += 1
        total = store.subscribers.count()
    console.print(
        f"subscribers: {added} sample subscriber(s) added, {total} in {escape(_db(cfg.database.url))}",
        highlight=False,
    )
    send(issue=newest.slug, to=None, dry_run=False, config=config)
    console.print(
        f"messages: {escape(describe_transport(cfg, issue_key(newest.slug)))}"
        f" (open them with any mail client); status: `publisher status`",
        highlight=False,
        soft_wrap=True,
    )


def _db(url: str) -> str:
    if url.startswith("sqlite:///"):
        return relpath(Path(url.removeprefix("sqlite:///")))
    return url.split("@")[-1]
