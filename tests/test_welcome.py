"""The welcome mail: once per subscriber ever, over a real SMTP server, SQLite and PostgreSQL.

Confirm on the web, add through the API, import with ``--welcome``: each plans one ledger
row (``welcome:<file slug>``) and drains it; a second confirmation, a resubscription or a
suppressed address gets nothing more, and a plan left undrained (a crash) is sent once by
the scheduler's catch-up. A hostile welcome file is refused with file:line; a hostile
name leaves the headers as written.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from typer.testing import CliRunner

from publisher.cli import app as cli_app
from publisher.config import Settings
from publisher.content.sequences import VARIABLES, SequenceStep, load_welcome
from publisher.deliver import RetryPolicy
from publisher.errors import ContentError
from publisher.models import SubscriberStatus
from publisher.ops.drain import LEASE_TTL
from publisher.ops.feedback import suppress
from publisher.ops.welcome import Sending, catch_up_welcome, plan_welcome, send_welcome
from publisher.render.email import make_recipient
from publisher.render.email_mime import SLOTS
from publisher.render.welcome import prepare_welcome
from publisher.store import Store
from publisher.store.welcome import WelcomeLedger
from publisher.tokens import Purpose, read_token
from tests.fixtures_email import SECRET
from tests.fixtures_web import API_TOKEN, Clock, link_from
from tests.polling import wait_for
from tests.test_mail_headers_hostile import ADDRESS, LIST_HEADERS, check, hostile_names
from tests.test_run import Proc
from tests.test_web_subscribe import confirm, path_of, subscribe

ROOT = Path(__file__).resolve().parent.parent
SUBJECT = "Welcome to the Bench"
WELCOME = f"""\
---
title: Glad you are here
subject: {SUBJECT}
preheader: What comes next
---

Thank you, {{{{ name }}}}. Change what you get on [your preferences page]({{{{ preferences_url }}}}).
"""
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def welcome_settings(make_settings, db_url: str, smtp_server, project: Path) -> Settings:
    """A project with the welcome mail, on ``db_url``, sending over SMTP to the test server."""
    (project / "sequences" / "welcome").mkdir(parents=True)
    (project / "sequences" / "welcome" / "01-hello.md").write_text(WELCOME, encoding="utf-8")
    return make_settings(
        database={"url": db_url},
        email={"transport": "smtp", "smtp": {"host": "127.0.0.1", "port": smtp_server.port, "timeout": 10}},
    )


@pytest.fixture
def client(welcome_settings: Settings, store: Store, make_app: Callable[..., FastAPI]) -> TestClient:
    with TestClient(make_app(welcome_settings, store), follow_redirects=False) as c:
        yield c


def welcomes(server, to: str | None = None) -> list:
    return [
        r for r in server.received() if r.message()["Subject"] == SUBJECT and (to is None or r.rcpt == to)
    ]


def sign_up_and_confirm(client: TestClient, server, address: str, name: str) -> None:
    """Subscribe, then follow the newest confirmation link the server received for ``address``."""
    before = len(server.received())
    assert subscribe(client, address, name=name).status_code == 200
    [msg] = [r.message() for r in server.received()[before:] if r.rcpt == address]
    page = confirm(client, path_of(link_from(msg, "confirm")))
    assert page.status_code == 200, page.text


# -- the web: confirm ----------------------------------------------------------------------------


def test_confirm_sends_one_welcome_with_the_name_and_preferences_link(
    client: TestClient, smtp_server, welcome_settings: Settings, store: Store
) -> None:
    sign_up_and_confirm(client, smtp_server, "ann@example.org", "Ann Lee")
    [got] = welcomes(smtp_server)
    msg = got.message()
    assert got.rcpt == "ann@example.org" and msg["To"].addresses[0].display_name == "Ann Lee"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Thank you, Ann Lee." in text and "Thank you, Ann Lee." in html
    prefs = link_from(msg, "preferences")
    assert prefs.startswith(welcome_settings.site.url + "/preferences/")
    token = prefs.rstrip(").").rsplit("/", 1)[1]
    assert read_token(welcome_settings.secret_key(), Purpose.PREFERENCES, token) == "ann@example.org"
    assert 'href="' + welcome_settings.site.url + "/preferences/" in html
    assert "XPSLOT" not in got.data.decode("ascii", "replace")
    assert msg["List-Unsubscribe"] and msg["Feedback-ID"].startswith("01-hello:welcome:")
    send = store.ledger.get_send("welcome:01-hello")
    assert send is not None and store.ledger.counts(send.id).sent == 1


def test_confirming_twice_still_sends_one(client: TestClient, smtp_server) -> None:
    assert subscribe(client, "two@example.org", name="Two").status_code == 200
    [msg] = [r.message() for r in smtp_server.received() if r.rcpt == "two@example.org"]
    path = path_of(link_from(msg, "confirm"))
    assert confirm(client, path).status_code == 200
    assert confirm(client, path).status_code == 200
    assert len(welcomes(smtp_server)) == 1


def test_unsubscribe_then_resubscribe_gets_no_second_welcome(
    client: TestClient, smtp_server, store: Store, web_clock: Clock
) -> None:
    sign_up_and_confirm(client, smtp_server, "back@example.org", "Back")
    store.subscribers.set_status("back@example.org", SubscriberStatus.UNSUBSCRIBED, now=web_clock())
    web_clock.advance(seconds=1)
    sign_up_and_confirm(client, smtp_server, "back@example.org", "Back")
    assert store.subscribers.get("back@example.org").status is SubscriberStatus.CONFIRMED
    assert len(welcomes(smtp_server, "back@example.org")) == 1


def test_without_a_welcome_folder_nothing_happens(
    make_settings, db_url: str, smtp_server, store: Store, make_app: Callable[..., FastAPI]
) -> None:
    settings = make_settings(
        database={"url": db_url}, email={"transport": "smtp", "smtp": {"port": smtp_server.port}}
    )
    with TestClient(make_app(settings, store)) as c:
        sign_up_and_confirm(c, smtp_server, "none@example.org", "None")
    assert [r.message()["Subject"] for r in smtp_server.received()] == [
        smtp_server.received()[0].message()["Subject"]
    ]  # the confirmation only
    assert store.ledger.sends() == []
    assert catch_up_welcome(settings, store, clock=Clock()) == []


# -- suppressed addresses --------------------------------------------------------------------------


def test_a_suppressed_address_is_never_welcomed(
    welcome_settings: Settings, store: Store, smtp_server
) -> None:
    clock = Clock()
    sub = store.subscribers.add("gone@example.org", now=clock(), name="Gone")
    suppress(store, welcome_settings, "gone@example.org", reason="complained", now=clock())
    report = send_welcome(welcome_settings, store, clock=clock, subscriber_ids=[sub.id])
    assert report.planned == 0 and welcomes(smtp_server) == []


def test_suppressed_between_plan_and_drain_is_skipped(
    welcome_settings: Settings, store: Store, smtp_server
) -> None:
    clock = Clock()
    sub = store.subscribers.add("late@example.org", now=clock(), name="Late")
    _, added = plan_welcome(welcome_settings, store, now=clock(), subscriber_ids=[sub.id])
    assert added == 1
    suppress(store, welcome_settings, "late@example.org", reason="bounced", now=clock())
    [report] = catch_up_welcome(welcome_settings, store, clock=clock)
    assert report.sent == 0 and report.skipped == 1 and welcomes(smtp_server) == []


# -- the admin API ------------------------------------------------------------------------------------


def test_api_created_confirmed_subscriber_gets_one_welcome(client: TestClient, smtp_server) -> None:
    r = client.post("/api/subscribers", json={"email": "api@example.org", "name": "Api"}, headers=AUTH)
    assert r.status_code == 201, r.text
    body = {"email": "later@example.org", "status": "unsubscribed"}
    assert client.post("/api/subscribers", json=body, headers=AUTH).status_code == 201
    assert [w.rcpt for w in welcomes(smtp_server)] == ["api@example.org"]
    for address in ("later@example.org", "api@example.org"):  # confirmed by hand: a welcome unless had
        for status in ("unsubscribed", "confirmed"):
            r = client.patch(f"/api/subscribers/{address}", json={"status": status}, headers=AUTH)
            assert r.status_code == 200, r.text
    assert sorted(w.rcpt for w in welcomes(smtp_server)) == ["api@example.org", "later@example.org"]


# -- import --welcome ---------------------------------------------------------------------------------


def test_import_with_welcome_sends_one_each_and_without_it_none(
    welcome_settings: Settings, store: Store, smtp_server, project: Path, tmp_path: Path
) -> None:
    store.subscribers.add("old@example.org", now=Clock()(), name="Old")  # on the list already
    runner = CliRunner()

    def run(csv: str, *flags: str):
        (tmp_path / "in.csv").write_text(csv, encoding="utf-8")
        args = ["subscribers", "import", str(tmp_path / "in.csv"), *flags]
        return runner.invoke(cli_app, [*args, "--config", str(project / "config.yaml")])

    plain = run("email,name\nquiet@example.org,Quiet\n")
    assert plain.exit_code == 0, plain.output
    assert welcomes(smtp_server) == []
    result = run(
        "email,name,status\nold@example.org,Old,confirmed\na@example.org,A,confirmed\n"
        "b@example.org,B,confirmed\np@example.org,P,pending\nquiet@example.org,Quiet,confirmed\n",
        "--welcome",
    )
    assert result.exit_code == 0, result.output
    assert "welcome mail: 2 planned, 2 sent, 0 failed" in result.stdout
    assert sorted(w.rcpt for w in welcomes(smtp_server)) == ["a@example.org", "b@example.org"]
    again = run("email,name\na@example.org,A again\n", "--welcome")
    assert again.exit_code == 0 and "welcome mail: 0 planned" in again.stdout
    assert len(welcomes(smtp_server)) == 2


# -- crash safety: the scheduler's catch-up ------------------------------------------------------------


def test_a_plan_left_by_a_crash_is_sent_once_by_the_catch_up(
    welcome_settings: Settings, store: Store, smtp_server
) -> None:
    clock = Clock()
    ids = [store.subscribers.add(f"c{i}@example.org", now=clock(), name=f"C{i}").id for i in range(3)]
    plan_welcome(welcome_settings, store, now=clock(), subscriber_ids=ids)  # then the process died
    send = store.ledger.get_send("welcome:01-hello")
    # ...in the middle of a drain, holding the lease: a process on this machine that is gone
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.ledger.acquire(send.id, f"{socket.gethostname()}:{dead.pid}:x", now=clock(), ttl=LEASE_TTL)
    [report] = catch_up_welcome(welcome_settings, store, clock=clock)
    assert report.sent == 3 and report.counts.pending == 0
    assert catch_up_welcome(welcome_settings, store, clock=clock) == []
    plan_welcome(welcome_settings, store, now=clock(), subscriber_ids=ids)
    assert catch_up_welcome(welcome_settings, store, clock=clock) == []
    assert sorted(w.rcpt for w in welcomes(smtp_server)) == [f"c{i}@example.org" for i in range(3)]


def test_the_catch_up_waits_while_the_file_is_broken_then_sends(
    welcome_settings: Settings, store: Store, smtp_server, project: Path, caplog
) -> None:
    clock = Clock()
    sub = store.subscribers.add("wait@example.org", now=clock(), name="Wait")
    plan_welcome(welcome_settings, store, now=clock(), subscriber_ids=[sub.id])
    path = project / "sequences/welcome/01-hello.md"
    path.write_text('---\ntitle: Hi\nsubject: "a\\nb"\n---\n\nHi.\n')
    assert catch_up_welcome(welcome_settings, store, clock=clock) == []
    assert "sequences/welcome/01-hello.md:3: subject:" in caplog.text and welcomes(smtp_server) == []
    path.write_text(WELCOME, encoding="utf-8")
    [report] = catch_up_welcome(welcome_settings, store, clock=clock)
    assert report.sent == 1 and [w.rcpt for w in welcomes(smtp_server)] == ["wait@example.org"]


def test_a_temporary_failure_stays_pending_and_the_catch_up_sends_it(
    welcome_settings: Settings, store: Store, smtp_server
) -> None:
    clock = Clock()
    sub = store.subscribers.add("retry@example.org", now=clock(), name="Retry")
    smtp_server.set_faults(reject={"retry@example.org": "451 4.3.0 Try again later"})
    once = Sending(retry=RetryPolicy(attempts=1, initial=0.01, maximum=0.01, give_up_after=1))
    first = send_welcome(welcome_settings, store, clock=clock, subscriber_ids=[sub.id], sending=once)
    assert first.sent == 0 and WelcomeLedger(store).unfinished()
    smtp_server.set_faults()
    [report] = catch_up_welcome(welcome_settings, store, clock=clock)
    assert report.sent == 1 and len(welcomes(smtp_server)) == 1


# -- a hostile welcome file ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('subject: "Hi\\r\\nBcc: all@evil.example"', "line break or control character"),
        ('subject: "Hi\\0there"', "line break or control character"),
        ("subject: " + "x" * 10_240, "keep it under 200"),
        ("subject: =?utf-8?q?Hi=0D=0ABcc:_all@evil.example?=", "'=?'"),
        ('title: "Tab\\there"', "line break or control character"),
    ],
)
def test_a_hostile_front_matter_is_refused_with_file_and_line_and_nothing_is_sent(
    line: str,
    expected: str,
    welcome_settings: Settings,
    project: Path,
    client: TestClient,
    smtp_server,
    store,
) -> None:
    front = line if line.startswith("title:") else f"title: Hello\n{line}"
    (project / "sequences/welcome/01-hello.md").write_text(f"---\n{front}\n---\n\nHi.\n")
    with pytest.raises(ContentError) as err:
        load_welcome(welcome_settings)
    [problem] = err.value.lines()
    key = line.split(":", 1)[0]
    want_line = 2 if key == "title" else 3
    assert problem.startswith(f"sequences/welcome/01-hello.md:{want_line}: {key}:") and expected in problem
    sign_up_and_confirm(client, smtp_server, "safe@example.org", "Safe")
    assert len(smtp_server.received()) == 1  # the confirmation only
    assert store.ledger.get_send("welcome:01-hello") is None


def test_a_nul_byte_or_an_unknown_variable_in_the_body_is_refused(
    welcome_settings: Settings, project: Path
) -> None:
    path = project / "sequences/welcome/01-hello.md"
    path.write_bytes(b"---\ntitle: Hello\n---\n\nHi {{ nmae }}.\n\nA \x00 here.\n")
    with pytest.raises(ContentError) as err:
        load_welcome(welcome_settings)
    lines = err.value.lines()
    assert lines[0].startswith("sequences/welcome/01-hello.md:5: unknown variable {{ nmae }}")
    assert lines[1].startswith("sequences/welcome/01-hello.md:7: contains a NUL")


def test_the_variables_are_the_slots_every_message_fills() -> None:
    assert sorted(VARIABLES) == sorted(SLOTS)


def test_the_repos_sample_welcome_mail_loads_and_the_skeleton_links_it(mail_settings: Settings) -> None:
    step = load_welcome(mail_settings)
    assert step is not None and step.key == "welcome:01-hello" and "{{ preferences_url }}" in step.body
    linked = ROOT / "publisher/skeleton/sequences/welcome/01-hello.md"
    assert linked.is_symlink() and linked.resolve() == (ROOT / "sequences/welcome/01-hello.md").resolve()


# -- a hostile subscriber name ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def welcome_prepared(mail_settings: Settings):
    step = SequenceStep(
        "welcome",
        "01-hello",
        "Hello",
        "Welcome",
        "",
        "Hi {{ name }}, see {{ preferences_url }}.\n",
        ROOT / "sequences/welcome/01-hello.md",
        6,
    )
    return prepare_welcome(mail_settings, step, send_key="welcome:01-hello", date=Clock()())


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=hostile_names)
def test_hostile_names_leave_the_welcome_headers_as_written(
    name: str, welcome_prepared, mail_settings: Settings
) -> None:
    raw = welcome_prepared.personalise(
        make_recipient(mail_settings, SECRET, "welcome:01-hello", ADDRESS, name)
    )
    check(raw, name, LIST_HEADERS, bool(mail_settings.email.reply_to))
    assert b"<h1>Win</h1>" not in raw


# -- a real `publisher run` picks up what a killed process planned -------------------------------------

KILLED_AFTER_PLAN = """
import os, signal, sys
from datetime import UTC, datetime
from publisher.config import load_settings
from publisher.ops.welcome import plan_welcome
from publisher.store import open_store
settings = load_settings(sys.argv[1])
store = open_store(settings.database.url)
sub = store.subscribers.add("killed@example.org", now=datetime.now(UTC), name="Killed")
plan_welcome(settings, store, now=datetime.now(UTC), subscriber_ids=[sub.id])
os.kill(os.getpid(), signal.SIGKILL)  # after the plan, before any drain
"""


@pytest.fixture
def start_run(project: Path) -> Iterator[Callable[[], Proc]]:
    """Start real `publisher run --no-web` processes on ``project``; killed at teardown if still up."""
    procs: list[Proc] = []

    def start() -> Proc:
        procs.append(Proc(project, len(procs)))
        return procs[-1]

    yield start
    for p in procs:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()
        p.fh.close()


@pytest.mark.slow
def test_kill_9_after_the_plan_then_publisher_run_sends_it_once(
    welcome_settings: Settings, start_run: Callable[[], Proc], project: Path, smtp_server
) -> None:
    env = {**os.environ, "PUBLISHER_SECRET_KEY": "test-secret-0123456789abcdef0123456789"}
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_PLAN, str(project / "config.yaml")], cwd=ROOT, env=env
    )
    assert killed.returncode == -signal.SIGKILL
    assert smtp_server.count() == 0
    run = start_run()
    run.wait_up()
    try:
        wait_for(lambda: welcomes(smtp_server), timeout=10)
    finally:
        assert run.stop() == 0
    assert [w.rcpt for w in welcomes(smtp_server)] == ["killed@example.org"]
    run = start_run()  # a second run finds nothing left to do
    run.wait_up()
    time.sleep(1.0)  # several ticks (poll 0.3 s)
    assert run.stop() == 0
    assert len(welcomes(smtp_server)) == 1
