"""SendGrid (``/hooks/sendgrid``): the Signed Event Webhook, ECDSA P-256 over timestamp + raw body.

The public key is ``hooks.sendgrid.public_key`` (base64 DER, as SendGrid's
settings page shows it; it is public, so it may live in config.yaml). The
signature (``X-Twilio-Email-Event-Webhook-Signature``, base64 DER) covers the
``X-Twilio-Email-Event-Webhook-Timestamp`` header followed by the body bytes
exactly as received, so the body is verified before it is parsed. A timestamp
more than five minutes off our clock is refused, and so is a signature seen
within that window; each event's ``sg_event_id`` is its exactly-once key.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from publisher.config import SendgridHookConfig
from publisher.models import Feedback, FeedbackKind
from publisher.web.hooks_common import (
    Call,
    HookError,
    Verified,
    check_count,
    check_fresh,
    enhanced_status,
    feedback,
    keep,
    mapping,
    parse_json,
    text,
)

SIGNATURE = "x-twilio-email-event-webhook-signature"
TIMESTAMP = "x-twilio-email-event-webhook-timestamp"
WINDOW = timedelta(minutes=5)
_SIMPLE = {
    "spamreport": FeedbackKind.COMPLAINT,
    "unsubscribe": FeedbackKind.UNSUBSCRIBE,
    "group_unsubscribe": FeedbackKind.UNSUBSCRIBE,
    "delivered": FeedbackKind.DELIVERED,
}


class SendgridHook:
    """``/hooks/sendgrid``: bounce, dropped, spamreport, (group_)unsubscribe and delivered events."""

    name = "sendgrid"

    def __init__(self, config: SendgridHookConfig) -> None:
        self._key: ec.EllipticCurvePublicKey | None = None
        if config.public_key:  # validated by the config: an ECDSA P-256 key
            key = serialization.load_der_public_key(base64.b64decode(config.public_key))
            self._key = key if isinstance(key, ec.EllipticCurvePublicKey) else None

    @property
    def configured(self) -> bool:
        return self._key is not None

    def read(self, call: Call) -> Verified:
        signature, timestamp = call.headers.get(SIGNATURE), call.headers.get(TIMESTAMP)
        if not signature or not timestamp or self._key is None:
            raise HookError(401, "the call is not signed")
        try:
            der = base64.b64decode(signature, validate=True)
            self._key.verify(der, timestamp.encode() + call.body, ec.ECDSA(hashes.SHA256()))
        except (binascii.Error, ValueError, InvalidSignature):
            raise HookError(401, "the signature does not match") from None
        if not timestamp.isdigit() or len(timestamp) > 12:
            raise HookError(400, "the timestamp is not a time")
        check_fresh(datetime.fromtimestamp(int(timestamp), UTC), call.now, WINDOW, WINDOW)
        events = parse_json(call.body)
        if not isinstance(events, list):
            raise HookError(400, "the body is not a list of SendGrid events")
        check_count(len(events))
        return Verified(keep(*(sendgrid_feedback(mapping(e)) for e in events)), signature, 2 * WINDOW)


def sendgrid_feedback(event: dict[str, Any]) -> Feedback | None:
    """The fact in one SendGrid event, or None (processed, deferred, open, click...)."""
    name, key, address = text(event.get("event")), event.get("sg_event_id"), event.get("email")
    status = enhanced_status(event.get("status"), event.get("reason"))
    if name == "bounce":
        hard = text(event.get("type")) != "blocked"
        kind = FeedbackKind.HARD_BOUNCE if hard else FeedbackKind.SOFT_BOUNCE
        return feedback("sendgrid", kind, key, address, status, event.get("reason"))
    if name == "dropped":
        if text(event.get("reason")) != "Bounced Address":
            return None  # dropped for SendGrid's own suppressions or content: no new fact about the reader
        return feedback("sendgrid", FeedbackKind.HARD_BOUNCE, key, address, status, "Bounced Address")
    if name in _SIMPLE:
        return feedback("sendgrid", _SIMPLE[name], key, address, status, event.get("response") or name)
    return None
