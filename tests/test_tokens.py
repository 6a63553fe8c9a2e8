"""Signed tokens: purpose-scoped, tamper-evident, expiring on the caller's clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from publisher.tokens import Purpose, TokenError, make_token, message_id, read_token, recipient_links

SECRET = b"k" * 32
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def test_round_trip_and_no_plain_id() -> None:
    tok = make_token(SECRET, Purpose.UNSUBSCRIBE, "ana@example.org", now=NOW)
    assert read_token(SECRET, Purpose.UNSUBSCRIBE, tok, now=NOW) == "ana@example.org"


def test_purpose_is_enforced() -> None:
    tok = make_token(SECRET, Purpose.CONFIRM, "ana@example.org", now=NOW)
    with pytest.raises(TokenError):
        read_token(SECRET, Purpose.UNSUBSCRIBE, tok, now=NOW)


def test_tampered_and_foreign_secret_refused() -> None:
    tok = make_token(SECRET, Purpose.PREFERENCES, "ana@example.org", now=NOW)
    with pytest.raises(TokenError):
        read_token(
            SECRET, Purpose.PREFERENCES, tok[:-2] + ("A" if tok[-2] != "A" else "B") + tok[-1], now=NOW
        )
    with pytest.raises(TokenError):
        read_token(b"other" * 8, Purpose.PREFERENCES, tok, now=NOW)


def test_confirm_expires_on_given_clock_unsubscribe_never() -> None:
    confirm = make_token(SECRET, Purpose.CONFIRM, "a@example.org", now=NOW)
    unsub = make_token(SECRET, Purpose.UNSUBSCRIBE, "a@example.org", now=NOW)
    later = NOW + timedelta(days=8)
    with pytest.raises(TokenError, match="expired"):
        read_token(SECRET, Purpose.CONFIRM, confirm, now=later)
    assert read_token(SECRET, Purpose.CONFIRM, confirm, now=NOW + timedelta(days=6)) == "a@example.org"
    assert read_token(SECRET, Purpose.UNSUBSCRIBE, unsub, now=NOW + timedelta(days=3650)) == "a@example.org"


def test_tokens_with_fixed_clock_are_deterministic() -> None:
    assert recipient_links(SECRET, "https://x.org", "a@x.org", now=NOW) == recipient_links(
        SECRET, "https://x.org", "a@x.org", now=NOW
    )


def test_message_id_is_deterministic_and_per_subscriber() -> None:
    a = message_id(SECRET, "issue:one", "A@x.org", "x.org")
    assert a == message_id(SECRET, "issue:one", "a@x.org", "x.org")
    assert a != message_id(SECRET, "issue:one", "b@x.org", "x.org")
    assert a != message_id(SECRET, "issue:two", "a@x.org", "x.org")
    assert a.startswith("<") and a.endswith("@x.org>")


def test_links_that_never_expire_are_stable_without_a_clock() -> None:
    a = make_token(SECRET, Purpose.UNSUBSCRIBE, "a@x.org")
    assert a == make_token(SECRET, Purpose.UNSUBSCRIBE, "a@x.org")
    assert a != make_token(SECRET, Purpose.PREFERENCES, "a@x.org")


def test_non_ascii_and_garbage_tokens() -> None:
    tok = make_token(SECRET, Purpose.PREFERENCES, "zoë@example.org")
    assert read_token(SECRET, Purpose.PREFERENCES, tok) == "zoë@example.org"
    for junk in ("", ".", "a.b.c", "é" * 10, "x" * 5000, tok + "é"):
        with pytest.raises(TokenError):
            read_token(SECRET, Purpose.PREFERENCES, junk)


@pytest.mark.parametrize("purpose", [Purpose.UNSUBSCRIBE, Purpose.PREFERENCES])
def test_links_are_plain_itsdangerous_signatures(purpose: Purpose) -> None:
    """The faster signer changes no byte: links in mail already sent keep working."""
    import base64

    from itsdangerous import Signer

    for email in ("a@x.org", "zoë@example.org", "reader0001234@example.org"):
        payload = base64.urlsafe_b64encode(email.encode()).rstrip(b"=")
        stock = Signer(SECRET, salt=f"publisher.{purpose.value}").sign(payload).decode()
        assert make_token(SECRET, purpose, email) == stock
        assert read_token(SECRET, purpose, stock) == email
