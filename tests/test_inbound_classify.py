"""publisher.inbound.classify: what comes back after the 250, on realistic and hostile mail."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.inbound.classify import Classified, Ignored, classify
from publisher.models import FeedbackKind
from publisher.tokens import bounce_address

SAMPLES = Path(__file__).parent / "fixtures" / "inbound"
SECRET = b"inbound-fixtures-secret-0123456789abcdef"
DOMAIN = "news.example.org"
UNSUB = "unsubscribe@news.example.org"
PLAIN = f"bounces@{DOMAIN}"
HARD, SOFT = FeedbackKind.HARD_BOUNCE, FeedbackKind.SOFT_BOUNCE


def run(data: bytes, rcpts: list[str] | None = None, **kw: object) -> Classified:
    args: dict = {"secret": SECRET, "bounce_domain": DOMAIN, "unsubscribe_mailbox": UNSUB} | kw
    return classify(data, rcpts=[PLAIN] if rcpts is None else rcpts, **args)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def verp(delivery_id: int) -> str:
    return bounce_address(SECRET, delivery_id, DOMAIN)


def one(result: Classified):
    assert result.ignored is None, result
    assert len(result.feedback) == 1, result.feedback
    return result.feedback[0]


# -- RFC 3464 DSNs and the text formats --------------------------------------------------------

BOUNCES = [
    # file, kind, address, status, delivery quoted in the report, a word of the detail
    ("dsn-postfix-hard.eml", HARD, "ann.lee@example.net", "5.1.1", 101, "User unknown"),
    ("dsn-postfix-delayed.eml", SOFT, "bo@example.com", "4.4.1", 102, "Connection timed out"),
    ("dsn-gmail-hard.eml", HARD, "nobody.here@gmail.com", "5.1.1", 103, "does not exist"),
    ("qmail.eml", HARD, "carla@example.com", "5.1.1", 105, "no mailbox here"),
    ("yahoo.eml", HARD, "gina.rossi@yahoo.com", "5.0.0", 101, "doesn't have a yahoo.com account"),
    ("exim-failed.eml", HARD, "dan@example.co.uk", "5.1.1", 106, "User unknown"),
    ("exim-delayed.eml", SOFT, "eve@example.co.uk", "4.2.2", None, "Mailbox full"),
    ("exchange-ndr-text.eml", HARD, "frank.ortiz@corp.example.com", "5.1.1", 108, "RecipNotFound"),
    ("aol-screenname.eml", HARD, "hank4garden@aol.com", "5.0.0", None, "not accepting mail"),
]


@pytest.mark.parametrize(("name", "kind", "address", "status", "quoted", "word"), BOUNCES)
def test_bounce_samples_at_the_plain_address(name, kind, address, status, quoted, word) -> None:
    fact = one(run(sample(name)))
    assert (fact.kind, fact.address, fact.status) == (kind, address, status)
    assert fact.delivery_id == quoted  # only from our token in the quoted original's Return-Path
    assert word in fact.detail and len(fact.detail) <= 500 and "\n" not in fact.detail
    assert fact.source == ""


@pytest.mark.parametrize("name", [b[0] for b in BOUNCES])
def test_the_verp_address_the_bounce_reached_attributes_it(name: str) -> None:
    fact = one(run(sample(name), rcpts=[f"<{verp(7)}>"]))
    assert fact.delivery_id == 7  # the envelope recipient wins over anything quoted


def test_key_is_the_message_id_else_a_hash_of_the_bytes() -> None:
    assert one(run(sample("dsn-postfix-hard.eml"))).key == "<20261006080112.4Q1w2x3y4z@mail.example.net>"
    qmail = sample("qmail.eml")  # qmail writes no Message-ID
    assert one(run(qmail)).key == one(run(qmail)).key
    assert one(run(qmail)).key.startswith("sha256:")
    assert one(run(qmail + b"\n")).key != one(run(qmail)).key
    insane = sample("dsn-postfix-hard.eml").replace(
        b"Message-Id: <20261006080112.4Q1w2x3y4z@mail.example.net>", b"Message-Id: not an id \x01"
    )
    assert one(run(insane)).key.startswith("sha256:")


def test_several_recipients_get_one_key_each_and_delivered_ones_give_nothing() -> None:
    result = run(sample("dsn-multi-recipient.eml"))
    assert [(f.kind, f.address, f.status) for f in result.feedback] == [
        (HARD, "kai@example.de", "5.1.1"),
        (SOFT, "lena@example.de", "4.2.2"),
    ]
    mid = "<202610090820.49K8KUa1012345@relay.example.de>"
    assert [f.key for f in result.feedback] == [f"{mid}#1", f"{mid}#2"]
    assert {f.delivery_id for f in result.feedback} == {104}


def dsn(*recipient_blocks: str, original: str = "", mid: str = "<dsn-1@mta.example>") -> bytes:
    blocks = "\n\n".join(recipient_blocks)
    quoted = f"--b\nContent-Type: text/rfc822-headers\n\n{original}\n" if original else ""
    return (
        f"From: MAILER-DAEMON@mta.example\nMessage-ID: {mid}\nMIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
        "--b\nContent-Type: text/plain\n\nfailed\n"
        f"--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mta.example\n\n{blocks}\n\n"
        f"{quoted}--b--\n"
    ).encode()


@pytest.mark.parametrize(
    ("block", "kind", "status"),
    [
        ("Action: failed\nStatus: 5.2.2", HARD, "5.2.2"),
        ("Action: failed\nStatus: 4.2.2", SOFT, "4.2.2"),
        ("Action: delayed\nStatus: 5.0.0", SOFT, "5.0.0"),
        ("Action: FAILED (permanent)\nStatus: 5.1.10 (no such user)", HARD, "5.1.10"),
        ("Status: 5.7.1", HARD, "5.7.1"),  # no Action: the class decides
        ("Action: failed\nStatus: banana\nDiagnostic-Code: smtp; 550 5.1.1 no", HARD, "5.1.1"),
        ("Action: failed\nStatus: 9.9.9\nDiagnostic-Code: smtp; 452 over quota", SOFT, "4.0.0"),
        ("Action: failed\nStatus: 55.1.1", HARD, ""),
        ("Action: explode\nStatus: 7.1.1", None, ""),
    ],
)
def test_action_and_status(block: str, kind, status: str) -> None:
    result = run(dsn(f"Final-Recipient: rfc822; x@example.com\n{block}"), rcpts=[verp(3)])
    if kind is None:
        assert result.feedback == () and result.ignored == Ignored.NO_FAILURE
    else:
        assert (one(result).kind, one(result).status) == (kind, status)


@pytest.mark.parametrize("action", ["delivered", "relayed", "expanded"])
def test_success_reports_give_nothing(action: str) -> None:
    result = run(dsn(f"Final-Recipient: rfc822; x@example.com\nAction: {action}\nStatus: 2.0.0"))
    assert result == Classified(ignored=Ignored.NO_FAILURE)


def test_a_forged_dsn_without_our_token_is_never_attributed() -> None:
    forged = dsn(
        "Final-Recipient: rfc822; victim@example.com\nAction: failed\nStatus: 5.1.1",
        original="Return-Path: <bounces+notarealtoken@news.example.org>\nTo: victim@example.com",
    )
    fact = one(run(forged))
    assert (fact.address, fact.delivery_id) == ("victim@example.com", None)
    other_secret = bounce_address(b"another-secret-0123456789abcdef-xyz", 5, DOMAIN)
    assert one(run(forged, rcpts=[other_secret])).delivery_id is None
    two_tokens = run(forged, rcpts=[verp(1), verp(2)])
    assert one(two_tokens).delivery_id is None  # two deliveries named: trust neither


def test_a_token_quoted_in_the_report_attributes_it() -> None:
    data = dsn(
        "Final-Recipient: rfc822; x@example.com\nAction: failed\nStatus: 5.1.1",
        original=f"Return-Path: <{verp(42)}>\nTo: x@example.com",
    )
    assert one(run(data)).delivery_id == 42


def test_a_recipient_block_without_an_address_is_kept_when_the_delivery_is_known() -> None:
    data = dsn("Final-Recipient: x-unix; bob\nAction: failed\nStatus: 5.1.1")
    assert run(data).ignored == Ignored.NO_RECIPIENT
    fact = one(run(data, rcpts=[verp(9)]))
    assert (fact.address, fact.delivery_id) == (None, 9)


def test_a_bounce_of_a_bounce_is_ignored() -> None:
    assert run(sample("dsn-loop.eml"), rcpts=[verp(101)]).ignored == Ignored.LOOP
    to_us = dsn(
        "Final-Recipient: rfc822; x@example.com\nAction: failed\nStatus: 5.1.1",
        original=f"From: MAILER-DAEMON@a.example\nTo: {verp(5)}\nContent-Type: text/plain",
    )
    assert run(to_us).ignored == Ignored.LOOP


def test_reports_win_over_the_auto_reply_rule() -> None:
    for name in ("dsn-postfix-hard.eml", "exim-failed.eml"):
        assert b"Auto-Submitted: auto-replied" in sample(name)
        assert one(run(sample(name))).kind is HARD


# -- ARF complaints ------------------------------------------------------------------------------


def test_arf_abuse_report_is_a_complaint_for_the_original_recipient() -> None:
    fact = one(run(sample("arf-abuse.eml")))
    assert fact.kind is FeedbackKind.COMPLAINT
    assert (fact.address, fact.delivery_id) == ("ivy.chen@example.com", 104)
    assert fact.key == "<arf-1791547559-77c1@feedback.example.com>"
    assert "abuse" in fact.detail


def test_arf_with_a_redacted_recipient_falls_back_to_the_original_to() -> None:
    fact = one(run(sample("arf-redacted-headers.eml")))
    assert (fact.kind, fact.address, fact.delivery_id) == (FeedbackKind.COMPLAINT, "jack.b@yahoo.com", 105)


def test_arf_token_from_rcpts_when_nothing_is_quoted_and_unknown_addresses_are_reported() -> None:
    data = sample("arf-abuse.eml").split(b"--part1_13d.2e68ed54_boundary\nContent-Type: message/rfc822")[0]
    data = data.replace(b"Original-Mail-From: <bounces+", b"Original-Mail-From: <someone+")
    fact = one(run(data + b"--part1_13d.2e68ed54_boundary--\n", rcpts=[verp(77)]))
    assert (fact.address, fact.delivery_id) == ("ivy.chen@example.com", 77)  # the caller decides


@pytest.mark.parametrize("feedback_type", ["not-spam", "auth-failure", "virus", ""])
def test_other_feedback_types_are_not_complaints(feedback_type: str) -> None:
    data = sample("arf-abuse.eml").replace(
        b"Feedback-Type: abuse", f"Feedback-Type: {feedback_type}".encode()
    )
    assert run(data).ignored == Ignored.NOT_A_COMPLAINT


# -- unsubscribe mailbox and auto-replies --------------------------------------------------------


@pytest.mark.parametrize("rcpt", [UNSUB, "Unsubscribe@News.Example.org", "unsubscribe+x7@news.example.org"])
def test_mail_to_the_unsubscribe_mailbox_unsubscribes_the_sender(rcpt: str) -> None:
    fact = one(run(sample("unsubscribe-gmail.eml"), rcpts=[rcpt]))
    assert (fact.kind, fact.address, fact.delivery_id) == (
        FeedbackKind.UNSUBSCRIBE,
        "mia.s@example.com",
        None,
    )
    assert fact.key == "<CAB+x1y2z3=unsub-7a8b9c0d@mail.gmail.com>"


def test_a_token_in_the_unsubscribe_plus_address_names_the_delivery() -> None:
    tag = verp(31).partition("+")[2].partition("@")[0]
    fact = one(run(sample("unsubscribe-gmail.eml"), rcpts=[f"unsubscribe+{tag}@{DOMAIN}"]))
    assert fact.delivery_id == 31


def test_unsubscribe_without_a_usable_sender_or_mailbox() -> None:
    data = sample("unsubscribe-gmail.eml").replace(b"<Mia.S@Example.com>", b"<not an address>")
    assert run(data, rcpts=[UNSUB]).ignored == Ignored.NO_SENDER
    assert run(sample("unsubscribe-gmail.eml"), rcpts=[UNSUB], unsubscribe_mailbox=None).ignored == (
        Ignored.NOT_OURS
    )
    assert run(sample("unsubscribe-gmail.eml"), rcpts=[PLAIN]).ignored == Ignored.NOT_A_REPORT


@pytest.mark.parametrize("name", ["autoreply-outlook.eml", "autoreply-vacation-de.eml"])
@pytest.mark.parametrize("rcpt", [PLAIN, UNSUB])
def test_auto_replies_are_ignored_never_a_bounce(name: str, rcpt: str) -> None:
    assert run(sample(name), rcpts=[rcpt]) == Classified(ignored=Ignored.AUTO_REPLY)


@pytest.mark.parametrize(
    "field",
    [
        "X-Autoreply: yes",
        "X-Autorespond: Out of office",
        "Precedence: auto_reply",
        "Subject: Out of Office: re your mail",
        "Subject: =?iso-8859-1?q?R=E9ponse_automatique?=",
    ],
)
def test_auto_reply_signals(field: str) -> None:
    data = f"From: a@example.com\nTo: {UNSUB}\n{field}\n\nback soon\n".encode()
    assert run(data, rcpts=[UNSUB]).ignored == Ignored.AUTO_REPLY


def test_mail_to_none_of_our_addresses_is_not_parsed() -> None:
    for rcpts in ([], ["someone@news.example.org"], ["bounces@elsewhere.example"], ["x" * 5000]):
        assert run(sample("dsn-postfix-hard.eml"), rcpts=rcpts).ignored == Ignored.NOT_OURS
    imap_style = [f"Example Bounces <{verp(12)}>", "Delivered-To: junk"]
    assert one(run(sample("dsn-postfix-hard.eml"), rcpts=imap_style)).delivery_id == 12


# -- hostile input -------------------------------------------------------------------------------


def test_a_huge_returned_message_is_cut_not_read() -> None:
    big = sample("dsn-gmail-hard.eml").replace(b"A cold frame is a box", b"x" * (50 * 1024 * 1024))
    fact = one(run(big))
    assert (fact.kind, fact.address) == (HARD, "nobody.here@gmail.com")


def test_nul_bytes_controls_and_encoded_words_stay_out_of_the_detail() -> None:
    data = dsn(
        "Final-Recipient: rfc822; x@example.com\nAction: failed\nStatus: 5.1.1\n"
        "Diagnostic-Code: smtp; 550 5.1.1 bad\x00\x1b[31mred \u202eevil =?utf-8?b?w6k=?= " + "y" * 900
    )
    detail = one(run(data)).detail
    assert not any(c in detail for c in "\x00\x1b\u202e\n")
    assert len(detail) == 500


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00" * 100,
        b"Content-Type: multipart/report; boundary=\n\n--\n--\n",
        b"Content-Type: multipart/report; report-type=delivery-status\n\nno boundary",
        b"Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@b.example\nAction: failed\n",
        b"Content-Type: multipart/mixed; boundary=a\n\n"
        + b"--a\nContent-Type: multipart/mixed; boundary=a\n\n" * 3000,
        b"Subject: =?utf-8?x?broken?= =?nonesuch?q?x?=\nFrom: =?utf-8?b?!!!?=\n\n",
        "From: Ünï <ü@例え.jp>\nSubject: Automatische Antwort\n\n".encode(),
        b"Content-Type: text/plain; charset=nonesuch\n\nHi. This is the qmail-send program\n\n<a@b.c>:\nno",
        b"Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n!!!!",
    ],
)
def test_malformed_mail_never_raises(data: bytes) -> None:
    for rcpts in ([PLAIN], [UNSUB], [verp(1)]):
        result = run(data, rcpts=rcpts)
        assert (result.ignored is None) == bool(result.feedback)


def mutate(data: bytes, cuts: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(data)
    for position, length, insert in cuts:
        at = position % (len(out) + 1)
        out[at : at + length] = insert
    return bytes(out)


_NAMES = sorted(p.name for p in SAMPLES.glob("*.eml"))
_SAMPLES = {name: sample(name) for name in _NAMES}
_HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_HYPOTHESIS
@given(st.binary(max_size=3000), st.sampled_from([PLAIN, UNSUB, verp(1)]))
def test_arbitrary_bytes_never_raise(data: bytes, rcpt: str) -> None:
    result = run(data, rcpts=[rcpt])
    assert (result.ignored is None) == bool(result.feedback)


@_HYPOTHESIS
@given(
    st.sampled_from(_NAMES),
    st.lists(
        st.tuples(
            st.integers(0, 10_000),
            st.integers(0, 40),
            st.sampled_from([b"", b"\x00", b"\n", b"\r\n", b"--", b":", b";", b"=?", b"<", b"\xff\xfe", b" "])
            | st.binary(max_size=8),
        ),
        max_size=6,
    ),
)
def test_mutated_samples_never_raise(name: str, cuts: list[tuple[int, int, bytes]]) -> None:
    result = run(mutate(_SAMPLES[name], cuts), rcpts=[PLAIN, UNSUB])
    assert (result.ignored is None) == bool(result.feedback)
    for fact in result.feedback:
        assert len(fact.detail) <= 500 and fact.kind is not FeedbackKind.DELIVERED
        assert fact.address is None or fact.address == fact.address.lower()


def test_facts_are_plain_values_the_caller_can_tag() -> None:
    fact = one(run(sample("qmail.eml")))
    assert dataclasses.replace(fact, source="smtp").source == "smtp"
