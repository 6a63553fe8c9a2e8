"""The suppression list from the command line: add, list, export, remove; import and erase respect it."""

from __future__ import annotations

import csv
import io

import pytest

from publisher.store import open_store
from tests.fixtures_send import SLUG
from tests.fixtures_store import subscriber


def test_suppress_add_list_export_remove_and_the_test_copy_refused(cli) -> None:
    assert cli("subscribers", "add", "ann@example.org").exit_code == 0
    r = cli("suppress", "add", "Ann@Example.org", "--reason", "complained")
    assert r.exit_code == 0, r.output
    assert cli("suppress", "add", "ann@example.org").exit_code == 0  # idempotent, and manual < complained
    listed = cli("suppress", "list").output
    assert "ann@example.org\tcomplained" in listed
    exported = list(csv.reader(io.StringIO(cli("suppress", "export").output)))
    assert exported[0] == ["address", "reason", "since"] and exported[1][:2] == [
        "ann@example.org",
        "complained",
    ]
    copy = cli("send", SLUG, "--to", "ann@example.org")
    assert copy.exit_code == 1 and "suppression list" in copy.output
    assert cli.server.count() == 0
    bad = cli("suppress", "add", "x@example.org", "--reason", "=cmd|' /C calc'!A0")
    assert bad.exit_code == 2
    assert cli("suppress", "remove", "ann@example.org").exit_code == 0
    assert cli("suppress", "remove", "ann@example.org").exit_code == 1
    assert cli("send", SLUG, "--to", "ann@example.org").exit_code == 0


@pytest.mark.parametrize(
    "address",
    ["a\r\nBcc: x@example.org", "a\x00@example.org", "a\u202e@example.org", "a" * 10_000 + "@x.org"],
    ids=["crlf", "nul", "bidi", "10k"],
)
def test_suppress_refuses_what_is_no_address(cli, address: str) -> None:
    r = cli("suppress", "add", address)
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "the suppression list is empty" in cli("suppress", "list").output


def test_an_encoded_word_address_is_kept_as_its_literal_text(cli) -> None:
    """'=' and '?' are legal in a local part: such an address is listed as typed, never decoded."""
    assert cli("suppress", "add", "=?utf-8?q?A=0D=0Ab?=@example.org").exit_code == 0
    listed = cli("suppress", "list").output
    assert "=?utf-8?q?a=0d=0ab?=@example.org\tmanual" in listed and "\r" not in listed


def test_import_leaves_suppressed_addresses_out_unless_resubscribe(cli, tmp_path) -> None:
    data = tmp_path / "list.csv"
    data.write_text("email,name\nann@example.org,Ann\nbob@example.org,Bob\n")
    assert cli("subscribers", "import", str(data)).exit_code == 0
    assert cli("suppress", "add", "bob@example.org", "--reason", "bounced").exit_code == 0
    with open_store(cli.db_url) as store:
        store.subscribers.set_status("bob@example.org", "bounced", now=store_now())
    again = cli("subscribers", "import", str(data))
    assert again.exit_code == 0 and "1 suppressed" in again.output
    with open_store(cli.db_url) as store:
        assert subscriber(store, "bob@example.org").status.value == "bounced"
    forced = cli("subscribers", "import", str(data), "--resubscribe")
    assert forced.exit_code == 0 and "suppressed" not in forced.output
    with open_store(cli.db_url) as store:
        assert subscriber(store, "bob@example.org").status.value == "confirmed"
    assert "bob@example.org" not in cli("suppress", "list").output


def test_erasing_keeps_only_a_hash_that_still_stops_a_reimport(cli, tmp_path) -> None:
    from publisher.models import Feedback, FeedbackKind
    from publisher.ops.feedback import apply_feedback
    from publisher.tokens import read_bounce_address

    data = tmp_path / "list.csv"
    data.write_text("email,name\ngone@example.org,Gone\n")
    cli("subscribers", "import", str(data))
    assert cli("send", SLUG).exit_code == 0
    [sent] = cli.server.received()
    soft = Feedback(
        FeedbackKind.SOFT_BOUNCE,
        "s-gone",
        address="gone@example.org",
        delivery_id=read_bounce_address(cli.settings.secret_key(), sent.mail_from),
        detail="452 4.2.2 <gone@example.org> mailbox full",
    )
    with open_store(cli.db_url) as store:
        assert apply_feedback(store, cli.settings, [soft], now=store_now()).outcomes == {"soft bounce": 1}
    assert cli("subscribers", "remove", "gone@example.org").exit_code == 0
    listed = cli("suppress", "list").output
    assert "(erased)" in listed and "gone@example.org" not in listed
    with open_store(cli.db_url) as store, store.read() as conn:
        dump = "\n".join(
            str(r)
            for t in ("subscribers", "suppressions", "inbound_events", "deliveries")
            for r in conn.exec_driver_sql(f"SELECT * FROM {t}")
        )
    assert "gone@example.org" not in dump
    reimport = cli("subscribers", "import", str(data))
    assert "1 suppressed" in reimport.output
    with open_store(cli.db_url) as store:
        assert store.subscribers.get("gone@example.org") is None


def store_now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_status_shows_what_came_back_and_warns_on_rates(cli) -> None:
    from publisher.models import Feedback, FeedbackKind
    from publisher.ops.feedback import apply_feedback
    from publisher.tokens import read_bounce_address

    for i in range(20):
        cli("subscribers", "add", f"r{i}@example.org")
    assert cli("send", SLUG).exit_code == 0
    secret = cli.settings.secret_key()
    ids = {m.rcpt: read_bounce_address(secret, m.mail_from) for m in cli.server.received()}
    facts = [
        Feedback(FeedbackKind.COMPLAINT, "c1", delivery_id=ids["r1@example.org"]),
        Feedback(FeedbackKind.HARD_BOUNCE, "b1", delivery_id=ids["r2@example.org"]),
        Feedback(FeedbackKind.SOFT_BOUNCE, "s1", delivery_id=ids["r3@example.org"]),
    ]
    with open_store(cli.db_url) as store:
        apply_feedback(store, cli.settings, facts, now=store_now())
    r = cli("status")
    assert r.exit_code == 0
    row = next(line for line in r.output.splitlines() if line.startswith(f"issue:{SLUG}"))
    assert "\t1+1 soft\t1\t0\t" in row
    assert "1 complaint(s) for 20 sent" in r.output and "2 bounce(s) for 20 sent" in r.output
    by_domain = cli("status", "--send", f"issue:{SLUG}")
    assert by_domain.exit_code == 0
    assert "example.org\t20\t1+1 soft\t1\t0" in by_domain.output
    missing = cli("status", "--send", "issue:nothing")
    assert (
        missing.exit_code == 1
        and "no send issue:nothing" in missing.output
        and "Traceback" not in missing.output
    )
