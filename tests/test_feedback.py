"""The feedback loop's core: VERP return paths, facts applied exactly once, the suppression list.

A real issue goes out over SMTP to the test server; its envelope senders carry
the tokens the facts then name; the next send, digest and test copy skip whoever
bounced, complained or unsubscribed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from publisher.models import Feedback, FeedbackKind, SubscriberStatus
from publisher.ops.feedback import apply_feedback, hasher_for
from publisher.ops.send import FatalDeliveryError, issue_key, send_issue, send_test_copy
from publisher.tokens import bounce_address, read_bounce_address
from tests.fixtures_content import article
from tests.fixtures_send import FAST, SLUG, Clock

T1 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def sent_ids(server, settings) -> dict[str, int]:
    """address -> delivery id, read back from the VERP senders the SMTP server saw."""
    secret = settings.secret_key()
    return {m.rcpt: read_bounce_address(secret, m.mail_from) for m in server.received()}


def first_send(sending, n: int = 4):
    settings, store, server = sending
    for i in range(n):
        store.subscribers.add(f"r{i}@example.org", now=T1 - timedelta(days=1))
    send_issue(settings, store, SLUG, clock=Clock(), retry=FAST)
    return settings, store, server


def test_every_message_carries_its_own_verp_sender(sending) -> None:
    settings, _, server = first_send(sending)
    secret = settings.secret_key()
    received = server.received()
    assert len(received) == 4
    ids = {}
    for got in received:
        local, _, domain = got.mail_from.partition("@")
        assert local.startswith("bounces+") and domain == "example.org"
        assert len(local) <= 64 and got.rcpt.split("@")[0] not in got.mail_from
        ids[got.rcpt] = read_bounce_address(secret, got.mail_from)
    assert len(set(ids.values())) == 4 and None not in ids.values()
    # a token of another secret, a mangled one, or a stranger's address names nothing
    assert read_bounce_address(b"z" * 32, received[0].mail_from) is None
    assert read_bounce_address(secret, received[0].mail_from.replace("bounces+", "bounces+a")) is None
    assert read_bounce_address(secret, "bounces@example.org") is None


def fact(kind: FeedbackKind, key: str, **kw) -> Feedback:
    return Feedback(kind=kind, key=key, **kw)


def test_a_hard_bounce_takes_effect_once_and_the_next_send_skips_the_address(sending, write_issue) -> None:
    settings, store, server = first_send(sending)
    secret = settings.secret_key()
    delivery = read_bounce_address(
        secret, next(m.mail_from for m in server.received() if m.rcpt == "r1@example.org")
    )
    bounce = fact(FeedbackKind.HARD_BOUNCE, "<dsn-1@mx.example.net>", delivery_id=delivery, status="5.1.1")
    report = apply_feedback(store, settings, [bounce, bounce], now=T1)
    assert (report.applied, report.duplicates) == (1, 1)
    assert apply_feedback(store, settings, [bounce], now=T1).duplicates == 1  # a retried delivery
    assert store.subscribers.get("r1@example.org").status is SubscriberStatus.BOUNCED
    assert store.feedback.suppressed("R1@Example.org", hasher=hasher_for(secret)) == "bounced"
    send = store.ledger.get_send(issue_key(SLUG))
    assert store.feedback.outcomes_by_send(send.id) == {"hard_bounce": 1}
    # even if someone sets the row back to confirmed, the suppression list keeps it out
    store.subscribers.set_status("r1@example.org", SubscriberStatus.CONFIRMED, now=T1)
    write_issue("issues/next.md", article(title="Next", date="2026-03-04", body="More."))
    send_issue(settings, store, "next", clock=Clock(), retry=FAST)
    got = [m.rcpt for m in server.received() if m.rcpt == "r1@example.org"]
    assert len(got) == 1  # only the first issue
    with pytest.raises(FatalDeliveryError, match="suppress"):
        send_test_copy(settings, SLUG, "r1@example.org", now=T1, retry=FAST, store=store)


def test_soft_bounces_count_in_the_window_and_a_delivery_resets_them(sending) -> None:
    settings, store, server = first_send(sending)
    ids = sent_ids(server, settings)
    soft = [fact(FeedbackKind.SOFT_BOUNCE, f"s{i}", delivery_id=ids["r2@example.org"]) for i in range(5)]
    apply_feedback(store, settings, soft[:2], now=T1)
    assert store.subscribers.get("r2@example.org").status is SubscriberStatus.CONFIRMED
    apply_feedback(
        store,
        settings,
        [fact(FeedbackKind.DELIVERED, "d1", delivery_id=ids["r2@example.org"])],
        now=T1 + timedelta(hours=1),
    )
    apply_feedback(store, settings, soft[2:4], now=T1 + timedelta(hours=2))
    assert (
        store.subscribers.get("r2@example.org").status is SubscriberStatus.CONFIRMED
    )  # reset by the delivery
    report = apply_feedback(store, settings, soft[4:], now=T1 + timedelta(hours=3))
    assert report.outcomes == {"bounced (soft limit)": 1}
    assert store.subscribers.get("r2@example.org").status is SubscriberStatus.BOUNCED
    # old soft bounces fall out of the window
    old = [fact(FeedbackKind.SOFT_BOUNCE, f"o{i}", delivery_id=ids["r3@example.org"]) for i in range(3)]
    for i, item in enumerate(old):
        apply_feedback(store, settings, [item], now=T1 + timedelta(days=20 * i))
    assert store.subscribers.get("r3@example.org").status is SubscriberStatus.CONFIRMED


def test_a_complaint_is_final_and_an_unsubscribe_does_not_soften_it(sending) -> None:
    settings, store, server = first_send(sending)
    ids = sent_ids(server, settings)
    hasher = hasher_for(settings.secret_key())
    apply_feedback(
        store, settings, [fact(FeedbackKind.COMPLAINT, "arf-1", delivery_id=ids["r0@example.org"])], now=T1
    )
    apply_feedback(store, settings, [fact(FeedbackKind.UNSUBSCRIBE, "u-1", address="r0@example.org")], now=T1)
    assert store.subscribers.get("r0@example.org").status is SubscriberStatus.COMPLAINED
    assert store.feedback.suppressed("r0@example.org", hasher=hasher) == "complained"


def test_a_mailto_unsubscribe_names_its_sender(sending) -> None:
    settings, store, _ = first_send(sending)
    apply_feedback(
        store,
        settings,
        [fact(FeedbackKind.UNSUBSCRIBE, "m-1", address="R3@example.org", source="smtp")],
        now=T1,
    )
    assert store.subscribers.get("r3@example.org").status is SubscriberStatus.UNSUBSCRIBED


@pytest.mark.parametrize(
    "item",
    [
        fact(FeedbackKind.HARD_BOUNCE, "forged-1", address="never@example.org", source="smtp"),
        fact(FeedbackKind.COMPLAINT, "forged-2", address="never@example.org", source="imap"),
        fact(FeedbackKind.HARD_BOUNCE, "forged-3", delivery_id=987654321),
        fact(FeedbackKind.HARD_BOUNCE, "forged-4", address="=?utf-8?q?x=0D=0A?=@example.org\x00"),
        fact(FeedbackKind.HARD_BOUNCE, "forged-5", address="x" * 10_000, detail="y" * 10_000),
    ],
    ids=["never-mailed", "complaint-never-mailed", "no-such-delivery", "hostile-address", "huge"],
)
def test_facts_about_nobody_we_mailed_change_nothing(sending, item: Feedback) -> None:
    settings, store, _ = first_send(sending)
    store.subscribers.add("never@example.org", now=T1)  # on the list, but no issue went to them yet
    before = [store.subscribers.get(a) for a in ("never@example.org", "r0@example.org")]
    report = apply_feedback(store, settings, [item], now=T1)
    assert (report.applied, report.unattributed) == (1, 1)
    assert [store.subscribers.get(a) for a in ("never@example.org", "r0@example.org")] == before
    assert store.feedback.suppressions() == []


def test_bounce_address_without_a_delivery_is_the_plain_mailbox() -> None:
    assert bounce_address(b"k" * 32, None, "example.org") == "bounces@example.org"


def test_a_suppression_during_a_send_stops_the_mail_not_yet_sent(sending) -> None:
    """The drain re-checks the list batch by batch: an address suppressed after planning is skipped."""
    settings, store, server = sending
    for i in range(5):
        store.subscribers.add(f"late{i}@example.org", now=T1)
    store.ledger.plan_send("issue", issue_key(SLUG), now=T1, issue_slug=SLUG)
    apply_feedback(
        store, settings, [fact(FeedbackKind.UNSUBSCRIBE, "mid-send", address="late2@example.org")], now=T1
    )
    store.feedback.suppress("late4@example.org", "manual", now=T1, hasher=hasher_for(settings.secret_key()))
    outcome = send_issue(settings, store, SLUG, clock=Clock(), retry=FAST)
    assert sorted(m.rcpt for m in server.received()) == [
        "late0@example.org",
        "late1@example.org",
        "late3@example.org",
    ]
    assert outcome.drain is not None and outcome.drain.skipped == 2
