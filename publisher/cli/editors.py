"""`publisher editors add|remove|list|passwd`: who may sign in to the console at /admin.

Passwords are never taken from the command line (argv is visible to every
user of the machine in ``ps`` and lands in shell history): they are typed at a
hidden prompt, twice, or read from standard input with ``--password-stdin``
for scripts. Every change is written to the audit log with 'cli' as the actor.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from publisher.cli.common import ConfigOption, reports_errors, settings
from publisher.ops.editors import (
    CLI_ACTOR,
    ROLES,
    EditorError,
    add_editor,
    change_password,
    editor_address,
    list_editors,
    remove_editor,
)
from publisher.store import open_store

PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from standard input (one line) instead of a prompt."
    ),
]


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Accounts for the web console at /admin: 'editor' may change things, 'viewer' only look.",
        no_args_is_help=True,
    )
    group.command("add")(editors_add)
    group.command("remove")(editors_remove)
    group.command("list")(editors_list)
    group.command("passwd")(editors_passwd)
    app.add_typer(group, name="editors")


def _password(from_stdin: bool) -> str:
    """The new password: one line of stdin, or typed twice at a hidden prompt."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise EditorError(
                "no password on standard input", hint="pipe it in: printf '%s\\n' \"$PW\" | ..."
            )
        return line.removesuffix("\n").removesuffix("\r")
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@reports_errors
def editors_add(
    email: Annotated[str, typer.Argument(help="The editor's email address (their sign-in name).")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")] = "editor",
    name: Annotated[str, typer.Option(help="The name shown in the console.")] = "",
    password_stdin: PasswordStdin = False,
    config: ConfigOption = None,
) -> None:
    """Give someone an account (the password is prompted for, never an argument)."""
    cfg = settings(config)
    password = _password(password_stdin)
    with open_store(cfg.database.url) as store:
        editor = add_editor(
            store, email, password, role=role, name=name, actor=CLI_ACTOR, now=datetime.now(UTC)
        )
    typer.echo(f"added {editor.email} ({editor.role})")


@reports_errors
def editors_remove(
    email: Annotated[str, typer.Argument(help="The editor's email address.")],
    config: ConfigOption = None,
) -> None:
    """Delete an account and sign it out everywhere (nothing to do if there is none)."""
    cfg = settings(config)
    address = editor_address(email)
    with open_store(cfg.database.url) as store:
        removed = remove_editor(store, address, actor=CLI_ACTOR, now=datetime.now(UTC))
    typer.echo(f"removed {address}" if removed else f"{address} is not an editor: nothing to remove")


@reports_errors
def editors_list(config: ConfigOption = None) -> None:
    """Print every account: address, role, name, since when."""
    cfg = settings(config)
    with open_store(cfg.database.url) as store:
        editors = list_editors(store)
    for e in editors:
        state = "\tdisabled" if e.disabled_at else ""
        typer.echo(f"{e.email}\t{e.role}\t{e.name}\t{e.created_at:%Y-%m-%d %H:%M}{state}")
    if not editors:
        typer.echo("no editors yet: add one with `publisher editors add EMAIL`")


@reports_errors
def editors_passwd(
    email: Annotated[str, typer.Argument(help="The editor's email address.")],
    password_stdin: PasswordStdin = False,
    config: ConfigOption = None,
) -> None:
    """Set a new password (signs the account out of every browser)."""
    cfg = settings(config)
    address = editor_address(email)
    password = _password(password_stdin)
    with open_store(cfg.database.url) as store:
        change_password(store, address, password, actor=CLI_ACTOR, now=datetime.now(UTC))
    typer.echo(f"changed the password of {address}")
