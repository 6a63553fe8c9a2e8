"""The delivery commands as a user runs them: exit codes, messages, and crashes mid-send."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from publisher.store import open_store
from tests.fixtures_send import SLUG
from tests.fixtures_store import add_subscribers

ROOT = Path(__file__).resolve().parent.parent


def test_subscribers_add_list_export_import_remove(cli, tmp_path: Path) -> None:
    r = cli(
        "subscribers", "add", "Ann@Example.org", "--name", "Ann", "--frequency", "weekly", "--topics", "a;b"
    )
    assert r.exit_code == 0, r.output
    assert "added ann@example.org" in r.stdout
    r = cli("subscribers", "add", "ann@example.org")
    assert r.exit_code == 1 and "already subscribed" in r.stderr
    r = cli("subscribers", "add", "not an address")
    assert r.exit_code == 1 and "not a valid email" in r.stderr and "Traceback" not in r.output
    cli("subscribers", "add", "bob@example.org", "--status", "pending")
    r = cli("subscribers", "list", "--status", "pending")
    assert r.exit_code == 0 and "bob@example.org" in r.stdout and "ann@" not in r.stdout
    out = tmp_path / "list.csv"
    r = cli("subscribers", "export", str(out))
    assert (
        r.exit_code == 0 and out.read_text().splitlines()[0] == "email,name,status,frequency,topics,timezone"
    )
    r = cli("subscribers", "remove", "ann@example.org")
    assert r.exit_code == 0
    r = cli("subscribers", "remove", "ann@example.org")
    assert r.exit_code == 1 and "no subscriber" in r.stderr
    r = cli("subscribers", "import", str(out))  # erased: the keyed hash keeps the address out
    assert r.exit_code == 0 and "0 added" in r.stdout and "1 suppressed" in r.stdout, r.output
    r = cli("subscribers", "import", str(out), "--resubscribe")  # with their renewed consent
    assert r.exit_code == 0 and "1 added" in r.stdout, r.output
    r = cli("subscribers", "export")
    assert "ann@example.org,Ann,confirmed,weekly,a;b,UTC" in r.stdout


def test_import_reports_each_bad_row_and_exits_3(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(
        b"email,name,timezone\n"
        b"good@example.org,Good,Europe/Paris\n"
        b"nope,No,\n"
        b'evil@example.org,"Eve\r\nBcc: all@x.org <script>",\n'
        b"good@example.org,Dup,\n"
        b"tz@example.org,T,Moon/Crater\n"
        b"latin@example.org,\xe9t\xe9,\n"
    )
    r = cli("subscribers", "import", str(bad))
    assert r.exit_code == 3, r.output
    assert f"{bad}:3:" in r.stderr and "not a valid email" in r.stderr
    assert f"{bad}:6:" in r.stderr and "time zone" in r.stderr
    assert f"{bad}:7:" in r.stderr and "UTF-8" in r.stderr
    assert f"{bad}:4: name:" in r.stderr  # a line break in a name is refused, not cleaned
    assert "1 duplicate(s) merged" in r.stdout and "4 refused" in r.stdout
    with open_store(cli.db_url) as store:
        assert store.subscribers.get("good@example.org").name == "Dup"
        assert store.subscribers.get("evil@example.org") is None
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("email,shoe\na@example.org,9\n")
    r = cli("subscribers", "import", str(unknown))
    assert r.exit_code == 1 and "unknown column" in r.stderr and "shoe" in r.stderr
    r = cli("subscribers", "import", str(tmp_path / "missing.csv"))
    assert r.exit_code == 1 and "cannot read" in r.stderr


def test_send_dry_run_then_send_then_rerun_and_status(cli) -> None:
    with open_store(cli.db_url) as store:
        add_subscribers(store, 25)
    r = cli("send", SLUG, "--dry-run")
    assert r.exit_code == 0 and "would send spring-news to 25 subscriber(s)" in r.stdout, r.output
    assert cli.server.count() == 0
    r = cli("send", SLUG)
    assert r.exit_code == 0, r.output
    assert "sent 25" in r.stdout and "25 sent, 0 failed, 0 pending of 25 planned" in r.stdout
    assert cli.server.count() == 25
    r = cli("send", SLUG)
    assert r.exit_code == 0 and "already sent" in r.stdout and cli.server.count() == 25
    r = cli("status")
    assert r.exit_code == 0 and "issue:spring-news" in r.stdout and "done" in r.stdout
    assert "subscribers: 25 (0 pending, 25 confirmed" in r.stdout


def test_send_with_refused_recipients_exits_3_and_names_them(cli) -> None:
    with open_store(cli.db_url) as store:
        emails = add_subscribers(store, 10)
    cli.server.set_faults(reject={emails[2]: "550 5.1.1 User unknown"})
    r = cli("send", SLUG)
    assert r.exit_code == 3, r.output
    assert f"failed: {emails[2]}: 550 5.1.1 User unknown" in r.stderr
    assert "9 sent, 1 failed" in r.stdout
    assert cli.server.count() == 9


def test_send_test_copy_and_errors(cli) -> None:
    r = cli("send", SLUG, "--to", "editor@example.org")
    assert r.exit_code == 0 and "test copy" in r.stdout
    assert [m.rcpt for m in cli.server.received()] == ["editor@example.org"]
    r = cli("send", "no-such-issue")
    assert r.exit_code == 1 and "no issue" in r.stderr
    r = cli("status")
    assert "no sends yet" in r.stdout


def test_db_upgrade(cli) -> None:
    from publisher.store.engine import head_revision

    r = cli("db", "upgrade")
    assert r.exit_code == 0 and f"revision {head_revision()} (newest)" in r.stdout


# -- crashes and concurrent senders (real processes) -----------------------------------------------------


def _send_process(project: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PUBLISHER_SECRET_KEY": "test-secret-0123456789abcdef0123456789"}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from publisher.cli import main; main()",
            "send",
            SLUG,
            *args,
            "--config",
            str(project / "config.yaml"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_kill_9_mid_send_then_rerun_loses_nothing_and_doubles_little(cli, project: Path) -> None:
    n, kills = 240, 3
    concurrency = cli.settings.email.concurrency
    with open_store(cli.db_url) as store:
        emails = add_subscribers(store, n)
    cli.server.set_faults(data_delay_ms=8)  # slow enough that each kill lands mid-send
    rng = random.Random(7)
    for _ in range(kills):
        before = cli.server.count()
        target = before + rng.randint(5, 60)
        proc = _send_process(project)
        deadline = time.monotonic() + 60
        while cli.server.count() < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, f"the send ended before the kill: {proc.communicate()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    proc = _send_process(project)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (out, err)
    received = cli.server.received()
    per_address = Counter(m.rcpt for m in received)
    assert set(per_address) == set(emails)  # everyone got it
    duplicates = sum(c - 1 for c in per_address.values())
    assert duplicates <= kills * concurrency, per_address.most_common(5)
    ids: dict[str, set[str]] = {}
    for m in received:  # a re-sent message carries the same Message-ID
        ids.setdefault(m.rcpt, set()).add(m.message()["Message-ID"])
    assert all(len(v) == 1 for v in ids.values())
    with open_store(cli.db_url) as store:
        send = store.ledger.get_send(f"issue:{SLUG}")
        counts = store.ledger.counts(send.id)
    assert (counts.sent, counts.pending, send.status) == (n, 0, "done")


@pytest.mark.slow
def test_two_senders_at_once_never_double(cli, project: Path) -> None:
    n = 150
    with open_store(cli.db_url) as store:
        emails = add_subscribers(store, n)
    cli.server.set_faults(data_delay_ms=5)
    first, second = _send_process(project), _send_process(project)
    results = [(*p.communicate(timeout=120), p.returncode) for p in (first, second)]
    codes = sorted(code for _, _, code in results)
    assert codes in ([0, 0], [0, 1]), results
    if codes == [0, 1]:
        loser = next(r for r in results if r[2] == 1)
        assert "being sent by another process" in loser[1]
    per_address = Counter(m.rcpt for m in cli.server.received())
    assert per_address == Counter(emails)  # exactly once each
