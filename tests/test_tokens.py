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


@pytest.mark.parametrize("purpose", list(Purpose))
def test_tokens_are_opaque(purpose: Purpose) -> None:
    """No link reveals the address, plainly or encoded (base64, hex, quoted), nor its domain."""
    import base64
    from urllib.parse import quote

    for email in ("anna.lee@xmpl.org", "zoë@example.org", "reader0001234@example.org"):
        tok = make_token(SECRET, purpose, email, now=NOW)
        raw = base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4))
        local, _, domain = email.partition("@")
        for needle in (local, domain, quote(email)):
            assert needle not in tok and needle.encode() not in raw
        for shift in range(3):  # the address base64-encoded at any offset
            piece = base64.urlsafe_b64encode(b"x" * shift + email.encode()).decode()[4:-4]
            assert piece not in tok
        assert email.encode().hex() not in tok
        assert read_token(SECRET, purpose, tok, now=NOW) == email


def test_token_spelling_is_canonical() -> None:
    """Only the token we issued opens; base64 variants of it (padding bits, '=') do not."""
    tok = make_token(SECRET, Purpose.UNSUBSCRIBE, "a@x.org")
    for variant in (tok + "=", tok + "==", tok[:-1] + chr(ord(tok[-1]) ^ 1), " " + tok, tok + "\n"):
        if variant != tok:
            with pytest.raises(TokenError):
                read_token(SECRET, Purpose.UNSUBSCRIBE, variant)


def test_confirm_stamp_has_microseconds() -> None:
    from publisher.tokens import read_token_info

    early = NOW.replace(microsecond=100)
    tok = make_token(SECRET, Purpose.CONFIRM, "a@x.org", now=early)
    assert read_token_info(SECRET, Purpose.CONFIRM, tok, now=NOW).issued_us == int(early.timestamp() * 1e6)
    with pytest.raises(TokenError):  # stamped well ahead of the reader's clock
        read_token(SECRET, Purpose.CONFIRM, tok, now=NOW - timedelta(minutes=5))
