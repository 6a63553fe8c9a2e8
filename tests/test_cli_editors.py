"""`publisher editors add|remove|list|passwd`: accounts for the console, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from publisher.cli import app
from publisher.ops.editors import authenticate
from publisher.store import open_store
from tests.fixtures_store import NOW

PASSWORD = "correct horse battery staple"


@pytest.fixture
def cli(project: Path, make_settings, db_url: str):
    make_settings(database={"url": db_url})
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None):
        return runner.invoke(app, [*args, "--config", str(project / "config.yaml")], input=stdin)

    run.db_url = db_url  # type: ignore[attr-defined]
    return run


def _audit(db_url: str) -> list[tuple[str, str, str]]:
    with open_store(db_url) as store:
        return [(e.actor, e.action, e.target) for e in store.editors.audit(50)]


def test_add_list_passwd_remove_round_trip(cli) -> None:
    r = cli("editors", "add", "Ann@Example.org", "--name", "Ann", "--password-stdin", stdin=PASSWORD + "\n")
    assert r.exit_code == 0, r.output
    assert "added ann@example.org (editor)" in r.stdout
    r = cli("editors", "add", "vic@example.org", "--role", "viewer", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert r.exit_code == 0, r.output  # the hidden prompt, typed twice
    listed = cli("editors", "list").stdout
    assert "ann@example.org\teditor\tAnn\t" in listed and "vic@example.org\tviewer\t\t" in listed

    with open_store(cli.db_url) as store:
        stored = store.editors.get("ann@example.org")
        assert stored is not None and stored.password_hash.startswith("$argon2id$")
        assert PASSWORD not in stored.password_hash
        assert authenticate(store, "ann@example.org", PASSWORD, now=NOW) is not None

    new = "a different long passphrase"
    assert cli("editors", "passwd", "ann@example.org", "--password-stdin", stdin=new + "\n").exit_code == 0
    with open_store(cli.db_url) as store:
        assert authenticate(store, "ann@example.org", PASSWORD, now=NOW) is None
        assert authenticate(store, "ann@example.org", new, now=NOW) is not None

    r = cli("editors", "remove", "ANN@example.org")
    assert r.exit_code == 0 and "removed ann@example.org" in r.stdout
    r = cli("editors", "remove", "ann@example.org")  # idempotent: nothing to do, not an error
    assert r.exit_code == 0 and "not an editor" in r.stdout
    assert "ann@example.org" not in cli("editors", "list").stdout
    actions = [(actor, action) for actor, action, _ in _audit(cli.db_url) if actor == "cli"]
    assert actions == [
        ("cli", "editor.remove"),
        ("cli", "editor.passwd"),
        ("cli", "editor.add"),
        ("cli", "editor.add"),
    ]


def test_errors_are_plain_and_change_nothing(cli) -> None:
    assert cli("editors", "add", "ann@example.org", "--password-stdin", stdin=PASSWORD + "\n").exit_code == 0
    again = cli("editors", "add", "ann@example.org", "--password-stdin", stdin=PASSWORD + "\n")
    assert again.exit_code == 1 and "already an editor" in again.output and "editors passwd" in again.output
    short = cli("editors", "add", "bob@example.org", "--password-stdin", stdin="short\n")
    assert short.exit_code == 1 and "shorter than 12" in short.output
    role = cli("editors", "add", "bob@example.org", "--role", "admin", "--password-stdin", stdin=PASSWORD)
    assert role.exit_code == 1 and "unknown role" in role.output
    mismatch = cli("editors", "add", "bob@example.org", stdin=f"{PASSWORD}\nsomething else entirely\n")
    assert mismatch.exit_code != 0
    unknown = cli("editors", "passwd", "nobody@example.org", "--password-stdin", stdin=PASSWORD + "\n")
    assert unknown.exit_code == 1 and "not an editor" in unknown.output
    assert "Traceback" not in (again.output + short.output + role.output + unknown.output)
    listed = cli("editors", "list").stdout
    assert "bob@example.org" not in listed


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "a\r\nBcc: x@example.org"),
        ("email", "a\x00@example.org"),
        ("email", "a\u202e@example.org"),
        ("email", "a" * 10_000 + "@example.org"),
        ("email", "=?utf-8?q?A=0D=0Ab?=@example.org"),
        ("name", "Ann\r\nBcc: x@example.org"),
        ("name", "Ann\x00"),
        ("name", "Ann \u202eevil"),
        ("name", "A" * 10_000),
        ("name", "=?utf-8?b?QW5u?="),
        ("password", "long enough but\x00nul"),
        ("password", "long enough \u202e bidi"),
        ("password", "p" * 10_000),
    ],
    ids=lambda v: repr(v)[:20],
)
def test_hostile_input_is_refused_and_nothing_stored(cli, field: str, value: str) -> None:
    email = value if field == "email" else "ann@example.org"
    name = value if field == "name" else "Ann"
    password = value if field == "password" else PASSWORD
    r = cli("editors", "add", email, "--name", name, "--password-stdin", stdin=password + "\n")
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert "no editors yet" in cli("editors", "list").stdout
    assert not [a for a in _audit(cli.db_url) if a[1] == "editor.add"]


def test_the_password_is_never_an_argument(cli) -> None:
    r = cli("editors", "add", "ann@example.org", "--password", PASSWORD)
    assert r.exit_code == 2  # no such option
    assert "no editors yet" in cli("editors", "list").stdout
    help_text = cli("editors", "add", "--help").stdout
    assert "--password-stdin" in help_text
