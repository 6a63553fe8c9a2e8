"""Mailgun (``/hooks/mailgun``): HMAC-SHA256 of timestamp + token under the webhook signing key.

The signature sits inside the JSON body (``signature: {timestamp, token,
signature}``), so the body is parsed before it is verified; nothing in it is
used until the HMAC matches (compared in constant time). A timestamp more than
five minutes off our clock, either way, is refused, and so is a token seen
within that window (``RecentSet``); the store's exactly-once keys (event-data
id) stop the effect of anything that slips past a restart.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from publisher.config import MailgunHookConfig
from publisher.models import Feedback, FeedbackKind
from publisher.web.hooks_common import (
    Call,
    HookError,
    Verified,
    check_fresh,
    enhanced_status,
    feedback,
    keep,
    mapping,
    parse_json,
    text,
)

WINDOW = timedelta(minutes=5)
_SIMPLE = {
    "complained": FeedbackKind.COMPLAINT,
    "unsubscribed": FeedbackKind.UNSUBSCRIBE,
    "delivered": FeedbackKind.DELIVERED,
}


class MailgunHook:
    """``/hooks/mailgun``: failed, complained, unsubscribed and delivered events."""

    name = "mailgun"

    def __init__(self, config: MailgunHookConfig, environ: Mapping[str, str]) -> None:
        key = environ.get(config.signing_key_env) or None
        self._key = key.encode() if key else None

    @property
    def configured(self) -> bool:
        return self._key is not None

    def read(self, call: Call) -> Verified:
        body = parse_json(call.body)
        if not isinstance(body, dict):
            raise HookError(400, "the body is not a Mailgun event")
        sig = mapping(body.get("signature"))
        timestamp, token, signature = (sig.get(k) for k in ("timestamp", "token", "signature"))
        if not (isinstance(timestamp, str) and isinstance(token, str) and isinstance(signature, str)):
            raise HookError(401, "the call is not signed")
        if self._key is None or not hmac.compare_digest(
            signature.lower().encode(), sign(self._key, timestamp, token)
        ):
            raise HookError(401, "the signature does not match")
        if not timestamp.isdigit() or len(timestamp) > 12:
            raise HookError(400, "the timestamp is not a time")
        check_fresh(datetime.fromtimestamp(int(timestamp), UTC), call.now, WINDOW, WINDOW)
        return Verified(keep(mailgun_feedback(mapping(body.get("event-data")))), token, 2 * WINDOW)


def sign(key: bytes, timestamp: str, token: str) -> bytes:
    """Mailgun's signature: HMAC-SHA256 of timestamp + token, as lower-case hex."""
    return hmac.new(key, (timestamp + token).encode(), hashlib.sha256).hexdigest().encode()


def mailgun_feedback(event: dict[str, object]) -> Feedback | None:
    """The fact in one Mailgun event, or None (opens, clicks, accepted, storage...)."""
    name = text(event.get("event"))
    key, address = event.get("id"), event.get("recipient")
    if name == "failed":
        status = mapping(event.get("delivery-status"))
        kind = (
            FeedbackKind.HARD_BOUNCE
            if text(event.get("severity")) == "permanent"
            else FeedbackKind.SOFT_BOUNCE
        )
        code = enhanced_status(status.get("enhanced-code"), status.get("message"), status.get("description"))
        detail = status.get("message") or status.get("description") or event.get("reason")
        return feedback("mailgun", kind, key, address, code, detail)
    if name in _SIMPLE:
        return feedback("mailgun", _SIMPLE[name], key, address, "", name)
    return None
