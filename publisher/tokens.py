"""Signed, purpose-scoped tokens for links, and deterministic Message-IDs.

A token carries the subscriber's address (never a database id) signed with the
site secret and salted with its purpose, so a confirm token cannot unsubscribe
and nothing in a link can be guessed or enumerated.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from enum import StrEnum

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from publisher.errors import PublisherError


class Purpose(StrEnum):
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"


# Confirm links expire; unsubscribe links in old mail must keep working for good.
MAX_AGE = {Purpose.CONFIRM: 7 * 24 * 3600, Purpose.UNSUBSCRIBE: None, Purpose.PREFERENCES: None}


class TokenError(PublisherError):
    """A token that is forged, tampered with, expired or for another purpose."""


def _serializer(secret: bytes, purpose: Purpose, now: datetime | None) -> URLSafeTimedSerializer:
    salt = f"publisher.{purpose.value}"
    if now is None:
        return URLSafeTimedSerializer(secret, salt=salt)
    stamp = int(now.timestamp())

    class _ClockSigner(TimestampSigner):
        """Signs and checks ages against the clock the caller passed in, not the wall clock."""

        def get_timestamp(self) -> int:
            return stamp

    return URLSafeTimedSerializer(secret, salt=salt, signer=_ClockSigner)


def make_token(secret: bytes, purpose: Purpose, email: str, *, now: datetime | None = None) -> str:
    return _serializer(secret, purpose, now).dumps(email)


def read_token(
    secret: bytes, purpose: Purpose, token: str, max_age: int | None = -1, *, now: datetime | None = None
) -> str:
    """The address a token was made for; TokenError if it is not a valid token of ``purpose``."""
    age = MAX_AGE[purpose] if max_age == -1 else max_age
    try:
        value = _serializer(secret, purpose, now).loads(token, max_age=age)
    except SignatureExpired:
        raise TokenError("this link has expired", hint="ask for a new one") from None
    except BadSignature:
        raise TokenError("this link is not valid") from None
    if not isinstance(value, str):
        raise TokenError("this link is not valid")
    return value


def message_id(secret: bytes, send_key: str, email: str, domain: str) -> str:
    """A Message-ID that is the same every time for one send and one subscriber.

    A retry after a crash then carries the same id, so clients and servers that
    deduplicate on Message-ID hide the rare duplicate.
    """
    digest = hmac.new(secret, f"{send_key}\0{email.lower()}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def site_link(site_url: str, path: str) -> str:
    return f"{site_url.rstrip('/')}/{path.lstrip('/')}"


def recipient_links(
    secret: bytes, site_url: str, email: str, *, now: datetime | None = None
) -> tuple[str, str]:
    """(unsubscribe URL, preferences URL) for one subscriber; the web app serves both."""
    unsub = site_link(site_url, f"unsubscribe/{make_token(secret, Purpose.UNSUBSCRIBE, email, now=now)}")
    prefs = site_link(site_url, f"preferences/{make_token(secret, Purpose.PREFERENCES, email, now=now)}")
    return unsub, prefs
